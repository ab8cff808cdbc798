import CurbsideClient
import CurbsideTLS
import CurbsideTestSupport
import CurbsideWire
import Foundation

/// A power cut, simulated: the relay's data directory lives on ext4 in a loop device; under load the relay is
/// paused (SIGSTOP) and the loop device's backing file copied. The copy holds exactly what the file system had
/// written to its block device — what a disk would hold after the power went — and not what sat in the page cache.
/// The copy is checked with `e2fsck`, mounted, served by a new relay and read back: every consult acknowledged
/// before the cut must be there. A control run with fsync switched off must lose some, which shows that the test
/// can see loss.
struct PowerCutRun {
    var executable: String
    var senders = 4
    /// Load before the cut.
    var loadDuration: Duration = .seconds(2)
    /// The relay does not fsync (CURBSIDE_TESTONLY_UNSAFE_NO_SYNC): the run is expected to lose consults.
    var control = false
    var seed: UInt64 = 1
    var keepDirectory = false

    struct Report: Codable {
        var control = false
        var acknowledgedBeforeCut = 0
        var found = 0
        var lost = 0
        var fsckStatus: Int32 = -1
        var integrity = ""
        var seconds = 0.0
        var note = ""

        /// A durable run loses nothing and leaves a sound file system and database; a control run must lose.
        var passed: Bool {
            let sound = fsckStatus >= 0 && fsckStatus <= 1 && integrity == "ok"
            return control ? lost > 0 : (sound && lost == 0 && acknowledgedBeforeCut > 0)
        }
    }

    /// Why the run cannot happen here (no root, no loop devices, no ext4 tools).
    struct Unavailable: Error, CustomStringConvertible {
        let description: String
    }

    func run(log: @Sendable (String) -> Void) async throws -> Report {
        guard getuid() == 0 else { throw Unavailable(description: "mounting a loop device needs root") }
        for tool in ["/usr/sbin/mkfs.ext4", "/usr/sbin/e2fsck", "/usr/bin/mount", "/usr/bin/umount"]
        where !FileManager.default.isExecutableFile(atPath: tool) {
            throw Unavailable(description: "\(tool) is missing (Debian's e2fsprogs and mount)")
        }
        let start = ContinuousClock.now
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-powercut-\(UUID())").path
        let image = "\(work)/disk.img", copy = "\(work)/cut.img"
        let mountPoint = "\(work)/disk", copyMountPoint = "\(work)/cut"
        for directory in [mountPoint, copyMountPoint] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        var mounted: [String] = []
        var relays: [RelayProcess] = []
        defer {
            for relay in relays { relay.kill() }
            for point in mounted.reversed() { _ = try? RelayProcess.run("/usr/bin/umount", [point]) }
            if !keepDirectory { try? FileManager.default.removeItem(atPath: work) }
        }
        // 400 MiB, sparse: room for the relay's 256 MiB free-space reserve.
        guard FileManager.default.createFile(atPath: image, contents: nil) else { throw FaultRunError("cannot create \(image)") }
        try FileHandle(forWritingTo: URL(fileURLWithPath: image)).truncate(atOffset: 400 << 20)
        try Self.check("/usr/sbin/mkfs.ext4", ["-q", "-F", image])
        let attach = try RelayProcess.run("/usr/bin/mount", ["-o", "loop", image, mountPoint])
        guard attach.status == 0 else { throw Unavailable(description: "cannot mount a loop device here: \(attach.output)") }
        mounted.append(mountPoint)

        let relay = RelayProcess(executable: executable, dataDirectory: "\(mountPoint)/relay")
        relays.append(relay)
        // Four recipients in turn: a sender may send a few thousand consults in the load time, and holds at most its
        // share of each recipient's queue.
        let (tls, accounts) = try await relay.startWithAccounts((0..<senders).map { "cut.sender\($0)" } + (0..<4).map { "cut.sink\($0)" })
        let recipients = Array(accounts[senders...])
        if control {
            // Accounts are registered durably; only the consults of the control run go without fsync.
            try await relay.stopGracefully()
            try await relay.start(environment: ["CURBSIDE_TESTONLY_UNSAFE_NO_SYNC": "1"])
        }
        log("power cut\(control ? " (control: no fsync)" : ""): \(senders) senders for \(loadDuration), then SIGSTOP and a copy of the disk")

        var report = Report(control: control)
        let tally = CrashRun.Tally(port: relay.port)
        // Senders run past the cut until their deadline; nothing they hear after the copy is counted.
        let deadline = ContinuousClock.now + loadDuration + .seconds(1)
        let senderAccounts = accounts, senders = senders
        let load = Task {
            await withTaskGroup(of: Void.self) { group in
                for index in 0..<senders {
                    let (handle, key) = senderAccounts[index]
                    let numbers = stride(from: index, to: 10_000_000, by: senders).map { $0 }
                    group.addTask {
                        _ = await CrashRun.send(numbers, from: index, as: handle, key: key, to: recipients.map(\.0), tls: tls, tally: tally, deadline: deadline)
                    }
                }
            }
        }
        try await Task.sleep(for: loadDuration)
        relay.pause()
        try Self.check("/usr/bin/cp", ["--sparse=always", image, copy])
        // Every answer that reached a sender by now left the relay before it stopped, so after its commit.
        let acknowledged = await tally.acknowledgedNumbers
        report.acknowledgedBeforeCut = acknowledged.count
        relay.kill()
        log("cut: \(report.acknowledgedBeforeCut) acknowledged; waiting for the senders")
        await load.value
        log("senders stopped; checking the copy")

        let fsck = try RelayProcess.run("/usr/sbin/e2fsck", ["-f", "-y", copy])
        report.fsckStatus = fsck.status
        let remount = try RelayProcess.run("/usr/bin/mount", ["-o", "loop", copy, copyMountPoint])
        guard remount.status == 0 else { throw FaultRunError("the copy does not mount: \(remount.output)") }
        mounted.append(copyMountPoint)

        let survivor = RelayProcess(executable: executable, dataDirectory: "\(copyMountPoint)/relay")
        relays.append(survivor)
        report.integrity = try survivor.integrityCheck()
        try await survivor.start()
        do {
            let seen = try await CrashRun.readBack(ports: [survivor.port], tls: tls, as: recipients)
            report.found = acknowledged.intersection(seen.keys).count
            let missing = acknowledged.subtracting(seen.keys).sorted()
            if !missing.isEmpty {
                log("missing: \(missing.prefix(40).map(String.init).joined(separator: " ")); highest acknowledged \(acknowledged.max() ?? 0), highest found \(seen.keys.max() ?? 0)")
            }
        } catch {
            report.note = "reading the copy back failed: \(error)"
            report.found = 0
        }
        report.lost = report.acknowledgedBeforeCut - report.found
        try await survivor.stopGracefully()
        report.seconds = Double((ContinuousClock.now - start).components.seconds)
        return report
    }

    private static func check(_ executable: String, _ arguments: [String]) throws {
        let result = try RelayProcess.run(executable, arguments)
        guard result.status == 0 else { throw FaultRunError("\(executable) \(arguments.joined(separator: " ")): \(result.output)") }
    }
}
