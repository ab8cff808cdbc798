import CurbsideClient
import CurbsideTLS
import CurbsideTestSupport
import CurbsideWire
import Foundation

/// Crash durability: senders send consults while the relay is killed with SIGKILL at random moments and started
/// again; senders retry what was not acknowledged with the same bytes. At the end the recipient fetches everything
/// and every consult the relay acknowledged `stored` must be there, once.
struct CrashRun {
    var senders = 4
    var consults = 10_000
    var kills = 20
    var seed: UInt64 = 1
    /// The whole run is abandoned (and reported as a failure) after this long.
    var timeLimit: Duration = .seconds(900)
    var executable: String
    var keepDirectory = false

    struct Report: Codable {
        var senders = 0
        var consults = 0
        var acknowledged = 0
        var delivered = 0
        var lost = 0
        var duplicated = 0
        /// Resends the relay answered with an earlier `stored_at`: it had committed the consult, then was killed
        /// before the answer reached the sender. Stored once all the same (duplicated counts any second copy).
        var resendsAlreadyStored = 0
        var kills = 0
        var integrityChecks = 0
        var integrityFailures: [String] = []
        var resends = 0
        var refusals = 0
        var seconds = 0.0
        var unfinished = 0

        var passed: Bool {
            lost == 0 && duplicated == 0 && integrityFailures.isEmpty && unfinished == 0 && acknowledged == consults
        }
    }

    /// Progress shared by the senders and the killer.
    actor Tally {
        var acknowledged = 0
        /// The consults answered `stored` so far, by number.
        var acknowledgedNumbers = Set<Int>()
        var port: Int
        var resends = 0
        var refusals = 0
        var resendsAlreadyStored = 0
        /// `PRAGMA integrity_check` after each kill, before the relay starts again.
        var integrityResults: [String] = []
        init(port: Int) { self.port = port }
        func record(kill integrity: String) { integrityResults.append(integrity) }
        func acknowledge(_ number: Int) {
            acknowledged += 1
            acknowledgedNumbers.insert(number)
        }
        func resent() { resends += 1 }
        func refused() { refusals += 1 }
        func alreadyStored() { resendsAlreadyStored += 1 }
        func setPort(_ port: Int) { self.port = port }
    }

    /// One consult's bytes: sender and number first (the recipient reads them back), then filler that depends on
    /// both, so every resend is byte-identical and no two consults are.
    static func body(sender: Int, number: Int) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(1024)
        withUnsafeBytes(of: UInt64(sender).bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt64(number).bigEndian) { bytes.append(contentsOf: $0) }
        var state = UInt64(sender) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(number)
        while bytes.count < 1024 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            bytes.append(UInt8(truncatingIfNeeded: state >> 33))
        }
        return bytes
    }

    func run(log: @Sendable (String) -> Void) async throws -> Report {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-crash-\(UUID())").path
        let relay = RelayProcess(executable: executable, dataDirectory: "\(directory)/relay")
        defer {
            relay.kill()
            if !keepDirectory { try? FileManager.default.removeItem(atPath: directory) }
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Enough recipients that no sender holds more than its share of any one queue.
        let sinks = Self.sinks(forEachSender: (consults + senders - 1) / senders)
        let (tls, accounts) = try await relay.startWithAccounts((0..<senders).map { "crash.sender\($0)" } + sinks)
        let recipients = Array(accounts[senders...])

        var generator = SplitMix64(seed: seed)  // the same seed gives the same kill schedule
        let thresholds = (0..<kills).map { _ in Int.random(in: 1..<max(2, consults), using: &generator) }.sorted()
        let delays = (0..<kills).map { _ in Int.random(in: 0...5_000, using: &generator) }
        let tally = Tally(port: relay.port)
        let deadline = ContinuousClock.now + timeLimit
        let start = ContinuousClock.now
        var report = Report(senders: senders, consults: consults)
        log("crash: \(senders) senders, \(consults) consults, \(kills) kills with SIGKILL, seed \(seed)")

        let perSender = (0..<senders).map { index in
            stride(from: index, to: consults, by: senders).map { $0 }
        }
        let sent = try await withThrowingTaskGroup(of: Set<Int>?.self) { group in
            for index in 0..<senders {
                let (handle, key) = accounts[index]
                group.addTask {
                    await Self.send(
                        perSender[index],
                        from: index,
                        as: handle,
                        key: key,
                        to: recipients.map(\.0),
                        tls: tls,
                        tally: tally,
                        deadline: deadline
                    )
                }
            }
            // The killer: each kill waits for the acknowledged count to pass its threshold, so every kill lands
            // while consults are in flight, then waits up to 5 ms more.
            group.addTask {
                for (threshold, delay) in zip(thresholds, delays) {
                    while await tally.acknowledged < threshold, ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(1))
                    }
                    try await Task.sleep(for: .microseconds(delay))
                    relay.kill()
                    let integrity = try relay.integrityCheck()
                    await tally.record(kill: integrity)
                    try relay.start()
                    await tally.setPort(relay.port)
                }
                return nil
            }
            var acknowledged = Set<Int>()
            for try await result in group {
                if let result { acknowledged.formUnion(result) }
            }
            return acknowledged
        }
        report.acknowledged = sent.count
        report.unfinished = consults - sent.count
        report.kills = await tally.integrityResults.count
        report.integrityChecks = await tally.integrityResults.count
        report.integrityFailures = await tally.integrityResults.filter { $0 != "ok" }
        report.resends = await tally.resends
        report.refusals = await tally.refusals

        let seen = try await Self.readBack(port: relay.port, tls: tls, as: recipients)
        relay.stop()
        let finalIntegrity = try relay.integrityCheck()
        report.integrityChecks += 1
        if finalIntegrity != "ok" { report.integrityFailures.append(finalIntegrity) }

        report.delivered = seen.count
        report.lost = sent.subtracting(seen.keys).count
        report.duplicated = seen.values.reduce(0) { $0 + max(0, $1 - 1) }
        report.resendsAlreadyStored = await tally.resendsAlreadyStored
        // Anything the relay holds that no sender saw acknowledged would mean a sender gave up on a stored consult.
        report.unfinished = max(report.unfinished, Set(seen.keys).subtracting(sent).count)
        report.seconds = Double((ContinuousClock.now - start).components.seconds)
            + Double((ContinuousClock.now - start).components.attoseconds) / 1e18
        return report
    }

    /// The relay's default share of one recipient's queue per sender (spec/relay.md §Limits).
    static let sharePerSender = 1_000

    /// The recipients' handles for a run in which each sender sends `count` consults, spread over the recipients in
    /// turn: enough that no (sender, recipient) pair passes the relay's per-sender share of a queue.
    static func sinks(forEachSender count: Int) -> [String] {
        let needed = max(1, (count + sharePerSender - 1) / sharePerSender)
        return (0..<needed).map { $0 == 0 ? "crash.sink" : "crash.sink\($0)" }
    }

    /// Everything queued for each of `recipients`, merged: how many times each consult number came back.
    static func readBack(port: Int, tls: TLSContext, as recipients: [(Handle, SigningKey)]) async throws -> [Int: Int] {
        var seen: [Int: Int] = [:]
        for (recipient, key) in recipients {
            seen.merge(try await readBack(port: port, tls: tls, as: recipient, key: key), uniquingKeysWith: +)
        }
        return seen
    }

    /// Everything queued for `recipient`, read back by cursor (nothing acknowledged, so nothing is deleted): how many
    /// times each consult number came back. Throws if any envelope is not exactly the bytes a sender sent.
    static func readBack(port: Int, tls: TLSContext, as recipient: Handle, key: SigningKey) async throws -> [Int: Int] {
        let reader = try await RelayConnection.open(host: "127.0.0.1", port: port, tls: tls)
        do {
            let seen = try await readAll(reader, as: recipient, key: key)
            await reader.close()
            return seen
        } catch {
            await reader.close()
            throw error
        }
    }

    private static func readAll(_ reader: RelayConnection, as recipient: Handle, key: SigningKey) async throws -> [Int: Int] {
        try await reader.login(as: recipient, identity: key)
        var seen: [Int: Int] = [:]
        var cursor: UInt64 = 0
        while true {
            guard case .envelopes(let batch) = try await reader.request(.fetch(after: cursor, limit: 1000)) else {
                throw FaultRunError("the relay did not answer fetch with envelopes")
            }
            guard let last = batch.last else { break }
            for envelope in batch {
                let bytes = envelope.envelope
                guard bytes.count == 1024 else { throw FaultRunError("an envelope of \(bytes.count) bytes came back") }
                let sender = Int(bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
                let number = Int(bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
                guard bytes == Self.body(sender: sender, number: number) else {
                    throw FaultRunError("consult \(number) came back with different bytes")
                }
                seen[number, default: 0] += 1
            }
            cursor = last.sequence
        }
        return seen
    }

    /// One sender: each consult until `stored`, reconnecting (to whatever port the relay has now) after a drop.
    static func send(
        _ numbers: [Int],
        from index: Int,
        as handle: Handle,
        key: SigningKey,
        to recipients: [Handle],
        tls: TLSContext,
        tally: Tally,
        deadline: ContinuousClock.Instant
    ) async -> Set<Int> {
        var acknowledged = Set<Int>()
        var connection: RelayConnection?
        for (position, number) in numbers.enumerated() {
            guard ContinuousClock.now < deadline else { break }
            let body = body(sender: index, number: number)
            // In turn, so each recipient gets an even part; a resend goes to the same one.
            let recipient = recipients[position % recipients.count]
            var attempts = 0
            while ContinuousClock.now < deadline {
                if connection == nil {
                    do {
                        let opened = try await RelayConnection.open(host: "127.0.0.1", port: await tally.port, tls: tls, timeout: .seconds(5))
                        do {
                            try await opened.login(as: handle, identity: key)
                            connection = opened
                        } catch {
                            await opened.close()
                            throw error
                        }
                    } catch {
                        try? await Task.sleep(for: .milliseconds(20))
                        continue
                    }
                }
                guard let current = connection else { continue }
                if attempts > 0 { await tally.resent() }
                attempts += 1
                do {
                    let request = try SendRequest(recipient: recipient, envelope: body)
                    let asked = Timestamp.now()
                    guard case .stored(let receipt) = try await current.request(.send(request), timeout: .seconds(10)) else {
                        await tally.refused()
                        continue
                    }
                    if attempts > 1, receipt.storedAt.millisecondsSince1970 < asked.millisecondsSince1970 {
                        await tally.alreadyStored()
                    }
                    acknowledged.insert(number)
                    await tally.acknowledge(number)
                    break
                } catch RelayClientError.refused {
                    await tally.refused()
                    try? await Task.sleep(for: .milliseconds(50))
                } catch {
                    // Lost, timed out or broken: the relay may or may not have stored it; the same bytes go again.
                    await current.close()
                    connection = nil
                }
            }
        }
        await connection?.close()
        return acknowledged
    }
}
