import CurbsideClient
import CurbsideTLS
import CurbsideTestSupport
import CurbsideWire
import Foundation

/// Crash durability: senders send consults while the relay is killed with SIGKILL at random moments and started
/// again; senders retry what was not acknowledged with the same bytes. At the end the recipients fetch everything
/// and every consult the relay acknowledged `stored` must be there, once.
///
/// On SQLite there is one relay process. On PostgreSQL there are several over one database (a throw-away cluster
/// with fsync on), the senders spread over them; each kill takes one of them, and its senders resend through another
/// until it is back, so a consult committed through one process may be sent again through the next.
struct CrashRun {
    /// Where the relays keep their store.
    enum Store: Sendable {
        case sqlite
        /// `relays` relay processes sharing one PostgreSQL database.
        case postgres(relays: Int)
    }

    var senders = 4
    var consults = 10_000
    var kills = 20
    var seed: UInt64 = 1
    var store = Store.sqlite
    /// The whole run is abandoned (and reported as a failure) after this long.
    var timeLimit: Duration = .seconds(900)
    var executable: String
    var keepDirectory = false

    struct Report: Codable {
        /// `sqlite` or `postgres`.
        var store = "sqlite"
        var relays = 1
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
        /// SQLite: `PRAGMA integrity_check` after each kill and at the end. PostgreSQL: the store's queue counters
        /// against its envelope rows, and amcheck over every index (`SharedDatabase.consistencyCheck`).
        var integrityChecks = 0
        var integrityFailures: [String] = []
        var resends = 0
        /// Resends that went through another relay process than the first attempt (its relay had been killed).
        var resendsThroughAnotherRelay = 0
        var refusals = 0
        var seconds = 0.0
        var unfinished = 0

        var passed: Bool {
            lost == 0 && duplicated == 0 && integrityFailures.isEmpty && unfinished == 0 && acknowledged == consults
        }
    }

    /// Progress shared by the senders and whoever kills relays or databases.
    actor Tally {
        var acknowledged = 0
        /// The consults answered `stored` so far, by number.
        var acknowledgedNumbers = Set<Int>()
        /// Each relay process's port now (a restarted relay listens on another); 0 while it is down.
        var ports: [Int]
        var resends = 0
        var resendsThroughAnotherRelay = 0
        var refusals = 0
        var resendsAlreadyStored = 0
        /// `PRAGMA integrity_check` (or the PostgreSQL consistency check) after each kill, before the relay starts again.
        var integrityResults: [String] = []
        /// The outage the failover run measures: from the first failure after `watchForOutage()` to the first
        /// consult stored after that failure, and what failed in between.
        private(set) var outage = Outage()

        struct Outage: Sendable {
            var watching = false
            var start: ContinuousClock.Instant?
            var end: ContinuousClock.Instant?
            /// Error frames by code, connections that could not be opened or logged in, connections that broke.
            var refusals: [String: Int] = [:]
            var connectFailures = 0
            var connectionsLost = 0
            var retries: Int { refusals.values.reduce(0, +) + connectFailures + connectionsLost }
            var seconds: Double? {
                guard let start, let end else { return nil }
                return (end - start).inSeconds
            }
        }

        init(ports: [Int]) { self.ports = ports }
        init(port: Int) { self.init(ports: [port]) }

        func record(kill integrity: String) { integrityResults.append(integrity) }
        func acknowledge(_ number: Int) {
            acknowledged += 1
            acknowledgedNumbers.insert(number)
            if outage.start != nil, outage.end == nil { outage.end = .now }
        }
        func resent(throughAnotherRelay: Bool) {
            resends += 1
            if throughAnotherRelay { resendsThroughAnotherRelay += 1 }
        }
        func refused(_ code: String) {
            refusals += 1
            if failing() { outage.refusals[code, default: 0] += 1 }
        }
        func connectFailed(_ error: any Error) {
            if case RelayClientError.refused(let refusal) = error { refused(refusal.code.identifier) }
            else if failing() { outage.connectFailures += 1 }
        }
        func connectionLost() {
            if failing() { outage.connectionsLost += 1 }
        }
        func alreadyStored() { resendsAlreadyStored += 1 }
        func setPort(_ port: Int, of relay: Int = 0) { ports[relay] = port }
        func setDown(_ relay: Int) { ports[relay] = 0 }
        /// From now on the first failure starts the outage.
        func watchForOutage() { outage.watching = true }

        /// Whether a failure now falls in the outage (starting it if it is the first).
        private func failing() -> Bool {
            guard outage.watching, outage.end == nil else { return false }
            if outage.start == nil { outage.start = .now }
            return true
        }
    }

    /// How long a sender waits before trying again after a refusal or a connection it could not open: doubling from
    /// `initial` up to `maximum`, each wait drawn from its upper half so senders do not retry in step; back to
    /// `initial` once a consult is stored. A broken connection is opened again at once.
    struct BackOff: Sendable {
        var initial: Duration = .milliseconds(20)
        var maximum: Duration = .milliseconds(250)

        func wait(_ delay: inout Duration) async {
            try? await Task.sleep(for: delay * Double.random(in: 0.5...1))
            delay = min(delay * 2, maximum)
        }
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
        var relays: [RelayProcess] = []
        var cluster: PostgresCluster?
        defer {
            for relay in relays { relay.kill() }
            cluster?.stop()
            if keepDirectory { log("crash: relay data directories kept in \(directory)") }
            else { try? FileManager.default.removeItem(atPath: directory) }
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // Enough recipients that no sender holds more than its share of any one queue.
        let sinks = Self.sinks(forEachSender: (consults + senders - 1) / senders)
        let names = (0..<senders).map { "crash.sender\($0)" } + sinks
        let tls: TLSContext
        let accounts: [(Handle, SigningKey)]
        /// What is checked after each kill of relay `index` (before it starts again), and at the end.
        let check: @Sendable (Int) throws -> String
        var report = Report(senders: senders, consults: consults)
        switch store {
        case .sqlite:
            relays = [RelayProcess(executable: executable, dataDirectory: "\(directory)/relay")]
            (tls, accounts) = try await relays[0].startWithAccounts(names)
            check = { [relays] in try relays[$0].integrityCheck() }
        case .postgres(let count):
            let database = try SharedDatabase.startCluster(name: "crash")
            cluster = database
            relays = SharedDatabase.relays(count, database: SharedDatabase.url([database]), executable: executable, directory: directory)
            (tls, accounts) = try await SharedDatabase.start(relays, accounts: names)
            check = { _ in try SharedDatabase.consistencyCheck(database) }
            report.store = "postgres"
            report.relays = count
        }
        let recipients = Array(accounts[senders...])

        var generator = SplitMix64(seed: seed)  // the same seed gives the same kill schedule
        let thresholds = (0..<kills).map { _ in Int.random(in: 1..<max(2, consults), using: &generator) }.sorted()
        let delays = (0..<kills).map { _ in Int.random(in: 0...5_000, using: &generator) }
        // Drawn last, so a single relay's schedule is what it was before there could be several.
        let victims = (0..<kills).map { _ in relays.count == 1 ? 0 : Int.random(in: 0..<relays.count, using: &generator) }
        let tally = Tally(ports: relays.map(\.port))
        let deadline = ContinuousClock.now + timeLimit
        let start = ContinuousClock.now
        log(
            "crash: \(senders) senders, \(consults) consults, \(kills) kills with SIGKILL of \(relays.count) relay process(es) "
                + "on \(report.store), seed \(seed)"
        )

        let sent = try await withThrowingTaskGroup(of: Set<Int>?.self) { [relays, senders, consults] group in
            Self.addSenders(
                senders,
                sending: consults,
                to: &group,
                accounts: accounts,
                recipients: recipients.map(\.0),
                relays: relays.count,
                tls: tls,
                tally: tally,
                deadline: deadline
            ) { $0 }
            // The killer: each kill waits for the acknowledged count to pass its threshold, so every kill lands
            // while consults are in flight, then waits up to 5 ms more.
            group.addTask {
                for ((threshold, delay), victim) in zip(zip(thresholds, delays), victims) {
                    while await tally.acknowledged < threshold, ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(1))
                    }
                    try await Task.sleep(for: .microseconds(delay))
                    let relay = relays[victim]
                    await tally.setDown(victim)
                    let integrity = try await blocking {
                        relay.kill()
                        return try check(victim)
                    }
                    try await relay.start()
                    await tally.record(kill: integrity)
                    await tally.setPort(relay.port, of: victim)
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
        report.resendsThroughAnotherRelay = await tally.resendsThroughAnotherRelay
        report.refusals = await tally.refusals

        // Each recipient read back through a relay in turn: on PostgreSQL, what one process stored, another serves.
        let seen = try await Self.readBack(ports: relays.map(\.port), tls: tls, as: recipients)
        for relay in relays { try await relay.stopGracefully() }
        let finalIntegrity = try check(0)
        report.integrityChecks += 1
        if finalIntegrity != "ok" { report.integrityFailures.append(finalIntegrity) }

        report.delivered = seen.count
        report.lost = sent.subtracting(seen.keys).count
        report.duplicated = seen.values.reduce(0) { $0 + max(0, $1 - 1) }
        report.resendsAlreadyStored = await tally.resendsAlreadyStored
        // Anything the relay holds that no sender saw acknowledged would mean a sender gave up on a stored consult.
        report.unfinished = max(report.unfinished, Set(seen.keys).subtracting(sent).count)
        report.seconds = (ContinuousClock.now - start).inSeconds
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

    /// Everything queued for each of `recipients`, merged: how many times each consult number came back. Recipients
    /// are read through the relays on `ports` in turn.
    static func readBack(ports: [Int], tls: TLSContext, as recipients: [(Handle, SigningKey)]) async throws -> [Int: Int] {
        var seen: [Int: Int] = [:]
        for (index, (recipient, key)) in recipients.enumerated() {
            let port = ports[index % ports.count]
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

    /// Adds `senders` tasks to `group`: sender `i` (account `i`) sends consults `i`, `i + senders`, … below
    /// `consults`, starting at relay `i % relays`, and its task ends with `finished` of the consults acknowledged.
    static func addSenders<Child: Sendable>(
        _ senders: Int,
        sending consults: Int,
        to group: inout ThrowingTaskGroup<Child, any Error>,
        accounts: [(Handle, SigningKey)],
        recipients: [Handle],
        relays: Int,
        tls: TLSContext,
        tally: Tally,
        backOff: BackOff = BackOff(),
        deadline: ContinuousClock.Instant,
        _ finished: @escaping @Sendable (Set<Int>) -> Child
    ) {
        for index in 0..<senders {
            let (handle, key) = accounts[index]
            let numbers = stride(from: index, to: consults, by: senders).map { $0 }
            group.addTask {
                finished(
                    await send(
                        numbers,
                        from: index,
                        as: handle,
                        key: key,
                        to: recipients,
                        tls: tls,
                        tally: tally,
                        home: index % relays,
                        backOff: backOff,
                        deadline: deadline
                    )
                )
            }
        }
    }

    /// One sender: each consult until `stored`. It connects to relay `home` (of those in `tally.ports`), or while
    /// that one is down or refuses, to the next that accepts; back home once home is up again. After a broken
    /// connection the same bytes go again, through whichever relay it reaches.
    static func send(
        _ numbers: [Int],
        from index: Int,
        as handle: Handle,
        key: SigningKey,
        to recipients: [Handle],
        tls: TLSContext,
        tally: Tally,
        home: Int = 0,
        backOff: BackOff = BackOff(),
        deadline: ContinuousClock.Instant
    ) async -> Set<Int> {
        var acknowledged = Set<Int>()
        var connection: (connection: RelayConnection, relay: Int)?
        var delay = backOff.initial
        for (position, number) in numbers.enumerated() {
            guard ContinuousClock.now < deadline, !Task.isCancelled else { break }
            if let current = connection, current.relay != home, await tally.ports[home] != 0 {
                await current.connection.close()
                connection = nil
            }
            let body = body(sender: index, number: number)
            // In turn, so each recipient gets an even part; a resend goes to the same one.
            let recipient = recipients[position % recipients.count]
            var firstRelay: Int?
            while ContinuousClock.now < deadline, !Task.isCancelled {
                if connection == nil {
                    do {
                        connection = try await connect(as: handle, key: key, tls: tls, tally: tally, preferring: home)
                    } catch {
                        await backOff.wait(&delay)
                        continue
                    }
                }
                guard let current = connection else { continue }
                let resending = firstRelay != nil
                if let firstRelay { await tally.resent(throughAnotherRelay: current.relay != firstRelay) }
                firstRelay = firstRelay ?? current.relay
                do {
                    let request = try SendRequest(recipient: recipient, envelope: body)
                    let asked = Timestamp.now()
                    let answer = try await current.connection.request(.send(request), timeout: .seconds(10))
                    guard case .stored(let receipt) = answer else {
                        await tally.refused("unexpected answer")
                        continue
                    }
                    if resending, receipt.storedAt.millisecondsSince1970 < asked.millisecondsSince1970 {
                        await tally.alreadyStored()
                    }
                    acknowledged.insert(number)
                    await tally.acknowledge(number)
                    delay = backOff.initial
                    break
                } catch RelayClientError.refused(let error) {
                    await tally.refused(error.code.identifier)
                    await backOff.wait(&delay)
                } catch {
                    // Lost, timed out or broken: the relay may or may not have stored it; the same bytes go again.
                    await tally.connectionLost()
                    await current.connection.close()
                    connection = nil
                }
            }
        }
        await connection?.connection.close()
        return acknowledged
    }

    /// A logged-in connection to relay `home`, or failing that to the next relay up that accepts one.
    ///
    /// - Throws: the last failure, after each relay up has failed once (each counted in `tally`).
    private static func connect(
        as handle: Handle,
        key: SigningKey,
        tls: TLSContext,
        tally: Tally,
        preferring home: Int
    ) async throws -> (connection: RelayConnection, relay: Int) {
        let ports = await tally.ports
        var failure: any Error = FaultRunError("no relay is up")
        for relay in (0..<ports.count).map({ (home + $0) % ports.count }) where ports[relay] != 0 {
            do {
                let opened = try await RelayConnection.open(host: "127.0.0.1", port: ports[relay], tls: tls, timeout: .seconds(5))
                do {
                    try await opened.login(as: handle, identity: key)
                    return (opened, relay)
                } catch {
                    await opened.close()
                    throw error
                }
            } catch {
                await tally.connectFailed(error)
                failure = error
            }
        }
        throw failure
    }
}
