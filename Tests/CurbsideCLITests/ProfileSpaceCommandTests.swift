import CurbsideTestSupport
import Foundation
import Testing

@testable import CurbsideCLI

/// A profile that does not grow for ever, and progress for every phase that moves a file's bytes (issue 17, items 12
/// and 7), through the real binary.
@Suite("curbside prune and progress", .serialized)
struct ProfileSpaceCommandTests {
    func curbside(_ arguments: String..., home: String) throws -> (status: Int32, stdout: String, stderr: String) {
        try Executable.provider(arguments, home: home)
    }

    func base() throws -> String { try Executable.scratchDirectory("space") }

    func encryptedFiles(_ home: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(home)/attachments")) ?? []).filter {
            $0.hasSuffix(".age")
        }.sorted()
    }

    /// The GP's encrypted copy of a photo goes once the dermatologist's device has it; `prune` frees copies the
    /// relay stored long enough ago and files nothing refers to, says how much, and keeps received photos.
    @Test func sentCopiesGoOnceDeliveredAndPruneFreesTheRest() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { _ in
            let photo = "\(base)/forearm.jpg"
            try Data(SamplePhoto.jpeg()).write(to: URL(fileURLWithPath: photo))
            let sent = try curbside(
                "send",
                "osei.derm",
                "--subject",
                "Lesion",
                "--question",
                "Excise?",
                "--image",
                photo,
                home: gp
            )
            #expect(sent.status == 0, "\(sent.stderr)")
            let id = sent.stdout.trimmingCharacters(in: .newlines)
            #expect(encryptedFiles(gp) == ["\(id)-0.age"])

            #expect(try curbside("inbox", home: derm).status == 0)
            #expect(encryptedFiles(derm).count == 1, "the dermatologist keeps the received photo")
            #expect(try curbside("sync", home: gp).status == 0)
            #expect(encryptedFiles(gp).isEmpty, "delivered: the GP's encrypted copy is deleted")
            let shown = try curbside("show", id, home: gp).stdout
            #expect(shown.contains("  forearm.jpg, JPEG, "), "\(shown)")
            #expect(shown.contains("not on this device: its encrypted copy was deleted once the recipient's device had it"), "the sent attachment says its copy is gone: \(shown)")

            // A second consult the dermatologist has not fetched, and a file left by an interrupted send two days ago.
            let second = try curbside(
                "send",
                "osei.derm",
                "--subject",
                "Second",
                "--question",
                "Excise?",
                "--image",
                photo,
                home: gp
            )
            let secondID = second.stdout.trimmingCharacters(in: .newlines)
            let leftover = "\(gp)/attachments/0123456789abcdef0123456789abcdef-0.age"
            try Data(count: 5000).write(to: URL(fileURLWithPath: leftover))
            try FileManager.default.setAttributes(
                [.modificationDate: Date().addingTimeInterval(-2 * 86_400)],
                ofItemAtPath: leftover
            )
            let fresh = "\(gp)/attachments/fedcba9876543210fedcba9876543210-0.age"
            try Data(count: 100).write(to: URL(fileURLWithPath: fresh))  // a send encrypting right now: kept

            let pruned = try curbside("prune", home: gp)
            #expect(pruned.status == 0, "\(pruned.stderr)")
            #expect(pruned.stdout == "freed 4.9 KiB: 0 sent copies, 1 leftover\n", "\(pruned.stdout)")
            #expect(encryptedFiles(gp) == ["\(secondID)-0.age", "fedcba9876543210fedcba9876543210-0.age"])
            let all = try curbside("prune", "--sent-days", "0", "--json", home: gp)
            let report = try JSONSerialization.jsonObject(with: Data(all.stdout.utf8)) as? [String: Any]
            #expect(report?["sent_copies"] as? Int == 1 && report?["leftovers"] as? Int == 0, "\(all.stdout)")
            #expect(encryptedFiles(gp) == ["fedcba9876543210fedcba9876543210-0.age"])
            #expect(try curbside("prune", home: gp).stdout == "nothing to free\n")
            // The relay still has it: the dermatologist receives the second consult whole.
            #expect(try curbside("inbox", home: derm).status == 0)
            let received = try curbside("show", secondID, home: derm).stdout
            #expect(received.contains("--save-dir DIR` to export"), "\(received)")
        }
    }

    /// On a terminal, every phase that moves a photo's bytes draws its progress: encrypting and uploading on send,
    /// downloading and checking on inbox (the check runs as the bytes arrive and is drawn complete once it passed),
    /// decrypting on show --save-dir. Without a terminal, none is drawn.
    @Test func everyPhaseShowsProgressOnATerminal() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { _ in
            let photo = "\(base)/forearm.jpg"
            try Data(SamplePhoto.jpeg(scan: 3 << 20)).write(to: URL(fileURLWithPath: photo))
            let sent = try Terminal.run([
                "send", "osei.derm", "--subject", "Lesion", "--question", "Excise?", "--image", photo, "--home", gp,
            ])
            #expect(sent.status == 0, "\(sent.terminal)")
            let id = sent.stdout.trimmingCharacters(in: .newlines)
            #expect(sent.terminal.contains(/encrypt forearm.jpg \[#{24}\] 100%/), "\(sent.terminal)")
            #expect(sent.terminal.contains(/up      forearm.jpg \[#{24}\] 100%/), "\(sent.terminal)")

            let inbox = try Terminal.run(["inbox", "--home", derm])
            #expect(inbox.status == 0 && inbox.stdout.contains(id), "\(inbox.terminal)")
            #expect(inbox.terminal.contains(/down    forearm.jpg \[#{24}\] 100%/), "\(inbox.terminal)")
            #expect(inbox.terminal.contains(/check   forearm.jpg \[#{24}\] 100%/), "\(inbox.terminal)")
            let shown = try Terminal.run(["show", id, "--save-dir", "\(base)/saved", "--home", derm])
            #expect(shown.terminal.contains(/decrypt forearm.jpg \[#{24}\] 100%/), "\(shown.terminal)")

            let piped = try curbside(
                "send",
                "osei.derm",
                "--subject",
                "Again",
                "--question",
                "Excise?",
                "--image",
                photo,
                home: gp
            )
            #expect(piped.status == 0 && !piped.stderr.contains("%"), "\(piped.stderr)")
        }
    }
}

/// Runs `curbside` with its standard error on a pseudo-terminal, as a person at a terminal sees it.
enum Terminal {
    struct Unavailable: Error { let reason: String }

    static func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, terminal: String) {
        // posix_openpt and friends are not imported into Swift here: the same steps through /dev/ptmx's ioctls.
        let master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        var unlock: CInt = 0
        var number: CInt = 0
        guard master >= 0, ioctl(master, 0x4004_5431 /* TIOCSPTLCK */, &unlock) == 0,
            ioctl(master, 0x8004_5430 /* TIOCGPTN */, &number) == 0
        else { throw Unavailable(reason: "no pseudo-terminal") }
        let slave = open("/dev/pts/\(number)", O_RDWR | O_NOCTTY)
        guard slave >= 0 else { throw Unavailable(reason: "cannot open /dev/pts/\(number)") }
        let process = Process()
        process.executableURL = Executable.url
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(ProviderCommandTests.environment) { $1 }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle(fileDescriptor: slave, closeOnDealloc: false)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        close(slave)
        // The terminal is read on its own thread until the child closes its end (EIO), so it never fills up.
        let collected = Collected()
        let reader = Thread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = read(master, &buffer, buffer.count)
                if n <= 0 { break }
                collected.append(buffer[0..<n])
            }
            collected.finish()
        }
        reader.start()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        collected.waitUntilFinished()
        close(master)
        return (process.terminationStatus, stdout, String(decoding: collected.bytes, as: UTF8.self))
    }

    /// Bytes from the reader thread; the condition guards them (a thread, not a task, since reading blocks).
    final class Collected: @unchecked Sendable {
        private let condition = NSCondition()
        private var data: [UInt8] = []
        private var done = false

        func append(_ bytes: ArraySlice<UInt8>) {
            condition.lock()
            data += bytes
            condition.unlock()
        }

        func finish() {
            condition.lock()
            done = true
            condition.broadcast()
            condition.unlock()
        }

        func waitUntilFinished() {
            condition.lock()
            while !done { condition.wait() }
            condition.unlock()
        }

        var bytes: [UInt8] {
            condition.lock()
            defer { condition.unlock() }
            return data
        }
    }
}
