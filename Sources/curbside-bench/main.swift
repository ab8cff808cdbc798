// Curbside's side of `make bench`. Each subcommand measures one thing and prints JSON lines
// {"metric": …, "value": …, "unit": …}; bench/run.sh runs the peers, adds baselines and ratios, and writes the table.
// Every loop is bounded in time; servers bind 127.0.0.1 only.

internal import CSodium
import CurbsideClient
import CurbsideRelay
import CurbsideTestSupport
import CurbsideTLS
import CurbsideTransport
import CurbsideWire
import Foundation
import GRDB
import Histogram
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

func emit(_ metric: String, _ value: Double, _ unit: String) {
    say(#"{"metric": "\#(metric)", "value": \#(String(format: "%.3f", value)), "unit": "\#(unit)"}"#)
}

/// One line on standard output, unbuffered (the bench script reads it while this process runs).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

// MARK: - Crypto: envelopes beside the primitives they are made of

func crypto(duration: Double) throws {
    let senderKey = SigningKey(), recipientKey = SigningKey()
    let sender = Party(identityKey: senderKey.verifyingKey, handle: try Handle("bench.sender"))
    let recipient = Party(identityKey: recipientKey.verifyingKey, handle: try Handle("bench.recipient"))
    let prekey = AgreementKey.Private()
    let signed = SignedPrekey(id: 1, publicKey: prekey.publicKey, expiresAt: Timestamp.now().adding(seconds: 86_400), signedBy: recipientKey)
    let bundle = PrekeyBundle(owner: recipient, signedPrekey: signed, oneTimePrekey: nil)
    var ring = PrekeyRing()
    ring.signedPrekeys[1] = prekey
    let text = String(repeating: "x", count: 1024 - 200)
    let message = try Message(
        sender: sender, recipient: recipient,
        content: .consult(try Consult(subject: "bench", urgency: .routine, specialty: "bench", question: "q", clinicalSummary: text))
    )
    let sealed = try SealedEnvelope.seal(message, to: bundle, signedBy: senderKey)

    func rate(_ body: () throws -> Void) rethrows -> Double {
        var count = 0
        let start = ContinuousClock.now
        while seconds(since: start) < duration {
            for _ in 0..<50 { try body() }
            count += 50
        }
        return Double(count) / seconds(since: start)
    }
    let sealRate = try rate { _ = try SealedEnvelope.seal(message, to: bundle, signedBy: senderKey) }
    let openRate = try rate { _ = try sealed.open(as: recipient, using: ring) }
    emit("seal_per_s", sealRate, "envelopes/s")
    emit("open_per_s", openRate, "envelopes/s")

    // The same libsodium work called directly: what sealing needs (2 Ed25519 verifications of the bundle, an X25519
    // key pair and agreement, the HKDF's HMACs, an Ed25519 signature, ChaCha20-Poly1305 over the 1 KiB plaintext),
    // and what opening needs (an agreement, the HMACs, the AEAD, checking that the two identity keys the message
    // names are valid points (keys.md), a verification).
    let plaintext = [UInt8](repeating: 7, count: message.encoded.count + 64)
    var signature = [UInt8](repeating: 0, count: 64)
    var secret = [UInt8](repeating: 0, count: 64), publicKey = [UInt8](repeating: 0, count: 32)
    crypto_sign_keypair(&publicKey, &secret)
    crypto_sign_detached(&signature, nil, plaintext, UInt64(plaintext.count), secret)
    var scalar = [UInt8](repeating: 3, count: 32), point = [UInt8](repeating: 0, count: 32), shared = [UInt8](repeating: 0, count: 32)
    crypto_scalarmult_base(&point, scalar)
    let key = [UInt8](repeating: 9, count: 32), nonce = [UInt8](repeating: 0, count: 12)
    var ciphertext = [UInt8](repeating: 0, count: plaintext.count + 16)
    var opened = [UInt8](repeating: 0, count: plaintext.count)
    var mac = [UInt8](repeating: 0, count: 32)
    func hmacs(_ n: Int) {
        for _ in 0..<n { crypto_auth_hmacsha256(&mac, key, 64, key) }
    }
    let primitiveSeal = rate {
        _ = crypto_sign_verify_detached(signature, plaintext, 96, publicKey)
        _ = crypto_sign_verify_detached(signature, plaintext, 96, publicKey)
        randombytes_buf(&scalar, 32)
        crypto_scalarmult_base(&point, scalar)
        _ = crypto_scalarmult(&shared, scalar, point)
        hmacs(10)
        crypto_sign_detached(&signature, nil, plaintext, UInt64(plaintext.count), secret)
        var length: UInt64 = 0
        crypto_aead_chacha20poly1305_ietf_encrypt(&ciphertext, &length, plaintext, UInt64(plaintext.count), nil, 0, nil, nonce, key)
    }
    let primitiveOpen = rate {
        _ = crypto_core_ed25519_is_valid_point(publicKey)
        _ = crypto_core_ed25519_is_valid_point(publicKey)
        _ = crypto_scalarmult(&shared, scalar, point)
        hmacs(10)
        var length: UInt64 = 0
        _ = crypto_aead_chacha20poly1305_ietf_decrypt(&opened, &length, nil, ciphertext, UInt64(ciphertext.count), nil, 0, nonce, key)
        _ = crypto_sign_verify_detached(signature, plaintext, UInt64(plaintext.count), publicKey)
    }
    emit("primitives_seal_per_s", primitiveSeal, "envelopes/s")
    emit("primitives_open_per_s", primitiveOpen, "envelopes/s")
}

// MARK: - A relay in this process, on a real SQLite file or on PostgreSQL

/// Where a bench relay keeps its data: SQLite in a temporary directory, or a PostgreSQL database several relay
/// processes may share.
enum BenchDatabase: Sendable {
    case sqlite
    case postgres(PostgresSettings)

    /// The database a `postgres://` URL names (a Unix socket directory as host, percent-encoded, as relay.conf has
    /// it), with relay.conf's default pool of 10 connections; SQLite without one.
    init(url: String?) throws {
        guard let url else {
            self = .sqlite
            return
        }
        var settings = PostgresSettings(url: try PostgresURL(parsing: url))
        settings.maximumConnections = 10
        self = .postgres(settings)
    }
}

struct BenchRelay {
    let port: Int
    let task: Task<Void, any Error>
    let directory: URL
    let tls: TLSContext
    let store: any RelayStore
    var keys: [Handle: SigningKey] = [:]

    static let identity = try! TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"])

    /// A relay on `database` with `accounts` enrolled and registered (on PostgreSQL they must not exist yet).
    static func start(
        accounts: [String],
        database: BenchDatabase = .sqlite,
        configure: (inout RelayConfiguration) -> Void = { _ in }
    ) async throws -> BenchRelay {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-bench-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let store: any RelayStore
        let attachments: any AttachmentStorage
        switch database {
        case .sqlite:
            store = try SQLiteRelayStore(path: directory.appendingPathComponent("relay.sqlite").path)
            attachments = try BlobStore(root: directory.appendingPathComponent("attachments").path)
        case .postgres(let settings):
            let postgres = try await PostgresRelayStore.open(settings: settings, logger: .relayDisabled)
            store = postgres
            attachments = PostgresAttachmentStorage(store: postgres)
        }
        let keyDirectory = KeyDirectory(store: store)
        var keys: [Handle: SigningKey] = [:]
        for name in accounts {
            let handle = try Handle(name)
            let key = SigningKey()
            let code = try await keyDirectory.enroll(handle, now: .now())
            try await keyDirectory.register(handle, identityKey: key.verifyingKey, code: code, now: .now())
            keys[handle] = key
        }
        var configuration = RelayConfiguration()
        configuration.port = 0
        configuration.maximumQueuedEnvelopesPerAccount = 100_000_000
        configuration.maximumQueuedBytesPerAccount = Int.max / 2
        configuration.maximumQueuedEnvelopesPerSender = 100_000_000
        configuration.maximumQueuedBytesPerSender = Int.max / 2
        configuration.maximumConnections = 16384
        configuration.maximumConnectionsPerAddress = 16384
        configuration.maximumConcurrentLoginsPerAddress = 16384
        configure(&configuration)
        let serverTLS = try TLSContext(
            configuration: .server(
                identity: identity,
                applicationProtocols: [RelayTransport.applicationProtocol]
            )
        )
        let server = RelayServer(configuration: configuration, tls: serverTLS, store: store, attachments: attachments)
        let bound = try await server.bind()
        var relay = BenchRelay(
            port: bound.port,
            task: Task { try await bound.serve() },
            directory: directory,
            tls: try Self.clientTLS(pinning: identity.certificate.publicKeyFingerprint),
            store: store
        )
        relay.keys = keys
        return relay
    }

    static func clientTLS(pinning fingerprint: PublicKeyFingerprint) throws -> TLSContext {
        try TLSContext(
            configuration: .client(
                trust: .pinnedPublicKeys([fingerprint]),
                applicationProtocols: [RelayTransport.applicationProtocol]
            )
        )
    }

    /// A connection logged in as `name`: with the bound login, as the client logs in, or with `challengeLogin` the
    /// challenge login that clients of relays without the bound login use.
    func connect(
        _ name: String,
        maximumUnreadPushes: Int = RelayConnection.defaultMaximumUnreadPushes,
        challengeLogin: Bool = false
    ) async throws -> RelayConnection {
        let handle = try Handle(name)
        let connection = try await RelayConnection.open(
            host: "127.0.0.1",
            port: port,
            tls: tls,
            maximumUnreadPushes: maximumUnreadPushes,
            loggingIn: challengeLogin ? nil : BoundLogin(handle: handle, identity: keys[handle]!)
        )
        if challengeLogin { try await connection.login(as: handle, identity: keys[handle]!) }
        return connection
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
        await (store as? PostgresRelayStore)?.close()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// `senders` (16 by default) connections, each keeping `window` 1 KiB sends in flight (as mosquitto's clients keep 20
/// QoS 1 messages), each acknowledged `stored` after its commit is durable (fsynced; on PostgreSQL, COMMIT returned
/// under `synchronous_commit = on`); the rate of answers.
///
/// With `backlog` (SQLite only), that many 1 KiB envelopes for 1,000 other recipients are already queued when the
/// senders start (see `queueBacklog`).
func relayDurable(duration: Double, senders: Int, window: Int, backlog: Int = 0, database: BenchDatabase, metric: String) async throws {
    let names = (0..<senders).map { "sender.\($0)" } + ["sink.derm"]
    let relay = try await BenchRelay.start(accounts: names, database: database)
    if backlog > 0 {
        guard case .sqlite = database else { throw ClientError(.protocolViolation, "--backlog is for the SQLite relay") }
        try queueBacklog(backlog, in: relay.directory.appendingPathComponent("relay.sqlite").path)
    }
    let connections = try await withThrowingTaskGroup(of: RelayConnection.self) { group in
        for n in 0..<senders { group.addTask { try await relay.connect("sender.\(n)") } }
        return try await group.reduce(into: []) { $0.append($1) }
    }
    let sink = try Handle("sink.derm")
    let start = ContinuousClock.now
    let total = try await withThrowingTaskGroup(of: Int.self) { group in
        for (n, connection) in connections.enumerated() {
            group.addTask {
                var count = 0, sent = 0
                var body = [UInt8](repeating: UInt8(n), count: 1024)
                var inFlight: [UInt32] = []
                inFlight.reserveCapacity(window)
                while seconds(since: start) < duration || !inFlight.isEmpty {
                    while inFlight.count < window, seconds(since: start) < duration {
                        withUnsafeBytes(of: UInt64(sent).bigEndian) { body.replaceSubrange(0..<8, with: $0) }
                        inFlight.append(try await connection.start(.send(try SendRequest(recipient: sink, envelope: body))))
                        sent += 1
                    }
                    guard !inFlight.isEmpty else { break }
                    guard case .stored = try await connection.result(of: inFlight.removeFirst()) else {
                        throw ClientError(.protocolViolation, "not stored")
                    }
                    count += 1
                }
                return count
            }
        }
        return try await group.reduce(0, +)
    }
    let elapsed = seconds(since: start)
    emit(metric, Double(total) / elapsed, "msgs/s")
    for connection in connections { await connection.close() }
    await relay.stop()
}

/// Queues `count` envelopes of 1 KiB (random bytes, a random 32-byte id, expiring in a week) for the recipients
/// `backlog.0` … `backlog.999` from `backlog.sender`, inserted straight through the store's SQL in one transaction
/// on a second connection (the protocol would take minutes for a million); the queue counters are kept by the
/// store's own triggers. The WAL is then checkpointed and truncated, so the measurement that follows does not pay
/// for copying this transaction into the database.
func queueBacklog(_ count: Int, in path: String) throws {
    let start = ContinuousClock.now
    let now = Int64(Date().timeIntervalSince1970 * 1000)
    var configuration = Configuration()
    configuration.busyMode = .timeout(30)  // the relay's checkpointer may hold the file for a moment
    let queue = try DatabaseQueue(path: path, configuration: configuration)
    try queue.write { db in
        try db.execute(
            sql: """
                WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
                INSERT INTO envelope (envelope_id, sender, recipient, body, stored_at, expires_at)
                    SELECT randomblob(32), 'backlog.sender', 'backlog.' || (i % 1000), randomblob(1024), ?, ?
                    FROM n
                """,
            arguments: [count, now, now + 7 * 86_400_000]
        )
    }
    try queue.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
    try queue.close()
    say("queued \(count) envelopes in \(String(format: "%.1f", seconds(since: start))) s")
}

/// A sender at a steady `rate` to a connected recipient; send-to-push latency in a histogram, emitted as
/// `<metric>_p50_ms` and `<metric>_p99_ms`.
///
/// With `crossProcess` (PostgreSQL only), the recipient is connected to a second relay process on the same database
/// (`serve-relay` run as a child), so each push travels by the store's notification: send on process A, push from
/// process B. Sender and recipient run here, so both timestamps come from one clock.
func pushLatency(duration: Double, rate: Int, databaseURL: String?, crossProcess: Bool, metric: String) async throws {
    let relay = try await BenchRelay.start(accounts: ["sender.gp", "sink.derm"], database: try BenchDatabase(url: databaseURL))
    let sender = try await relay.connect("sender.gp")
    // Every push is a sample: the receiver's stream must not end because the collector fell behind for a moment.
    let unreadPushes = 1 << 20
    var other: ChildRelay?
    let receiver: RelayConnection
    if crossProcess {
        guard let url = databaseURL else { throw ClientError(.protocolViolation, "--cross-process needs --database") }
        let child = try ChildRelay.start(arguments: ["serve-relay", "--database", url, "--prefix", "b"])
        other = child
        receiver = try await RelayConnection.open(
            host: "127.0.0.1",
            port: child.port,
            tls: try BenchRelay.clientTLS(pinning: child.fingerprint),
            maximumUnreadPushes: unreadPushes
        )
        try await receiver.login(as: try Handle("sink.derm"), identity: relay.keys[try Handle("sink.derm")]!)
    } else {
        receiver = try await relay.connect("sink.derm", maximumUnreadPushes: unreadPushes)
    }
    let sink = try Handle("sink.derm")
    let origin = ContinuousClock.now
    func nowMicros() -> UInt64 {
        let elapsed = ContinuousClock.now - origin
        return UInt64(elapsed.components.seconds) * 1_000_000 + UInt64(elapsed.components.attoseconds / 1_000_000_000_000)
    }
    let messages = Int(duration * Double(rate))
    // BENCH_PUSH_SAMPLES=FILE also writes each push's send time and latency (µs), to see when the slow ones come.
    let samplesFile = ProcessInfo.processInfo.environment["BENCH_PUSH_SAMPLES"]
    let collector = Task { () -> Histogram<UInt64> in
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var seen = 0
        var samples = ""
        for await push in receiver.pushes {
            guard case .pushEnvelope(let delivered) = push else { continue }
            let sent = delivered.envelope.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let latency = nowMicros() - sent
            _ = histogram.record(latency)
            if samplesFile != nil { samples += "\(sent) \(latency)\n" }
            seen += 1
            if seen == messages { break }
        }
        if let samplesFile { try? samples.write(toFile: samplesFile, atomically: true, encoding: .utf8) }
        return histogram
    }
    // Answers are collected as they come (at most 256 outstanding); their timing is not what is measured.
    var pending: [UInt32] = []
    for n in 0..<messages {
        let due = origin + .microseconds(Int64(n) * 1_000_000 / Int64(rate))
        if ContinuousClock.now < due { try await Task.sleep(until: due) }
        var body = [UInt8](repeating: 1, count: 1024)
        withUnsafeBytes(of: nowMicros().bigEndian) { body.replaceSubrange(0..<8, with: $0) }
        withUnsafeBytes(of: UInt64(n).bigEndian) { body.replaceSubrange(8..<16, with: $0) }
        pending.append(try await sender.start(.send(try SendRequest(recipient: sink, envelope: body))))
        if pending.count > 256 {
            _ = try await sender.result(of: pending.removeFirst())
        }
    }
    for id in pending { _ = try await sender.result(of: id) }
    let timeout = Task {
        try await Task.sleep(for: .seconds(30))
        collector.cancel()
    }
    let histogram = await collector.value
    timeout.cancel()
    emit("\(metric)_p50_ms", Double(histogram.valueAtPercentile(50)) / 1000, "ms")
    emit("\(metric)_p99_ms", Double(histogram.valueAtPercentile(99)) / 1000, "ms")
    emit("\(metric)_count", Double(histogram.totalCount), "msgs")
    await sender.close()
    await receiver.close()
    other?.stop()
    await relay.stop()
}

/// New connections one after another, each a TLS 1.3 handshake and a login (the bound login, as the client logs in,
/// or with `challengeLogin` the challenge login); with `login` false, the handshake alone (the relay's challenge
/// arrives and the client closes), so that the rows together show what the login costs. The next connection does not
/// wait for the relay to answer the last one's close_notify (`s_time -new`, the peer, closes without any): up to 16
/// closes are under way, and all of them have ended when the time is taken.
func handshakes(duration: Double, login: Bool, challengeLogin: Bool) async throws {
    let relay = try await BenchRelay.start(accounts: ["bench.gp"]) { $0.maximumLoginFailures = 1_000_000 }
    var count = 0
    var closing: [Task<Void, Never>] = []
    let start = ContinuousClock.now
    while seconds(since: start) < duration {
        let connection =
            login
            ? try await relay.connect("bench.gp", challengeLogin: challengeLogin)
            : try await RelayConnection.open(host: "127.0.0.1", port: relay.port, tls: relay.tls)
        closing.append(Task { await connection.close() })
        if closing.count > 16 { await closing.removeFirst().value }
        count += 1
    }
    for task in closing { await task.value }
    let metric = !login ? "handshakes_tls_only_per_s" : challengeLogin ? "handshakes_challenge_login_per_s" : "handshakes_per_s"
    emit(metric, Double(count) / seconds(since: start), "connections/s")
    await relay.stop()
}

// MARK: - TLS bulk throughput of the TLS module

final class CountingHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let expected: Int
    let done: EventLoopPromise<Void>
    var received = 0

    init(expected: Int, done: EventLoopPromise<Void>) {
        self.expected = expected
        self.done = done
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += unwrapInboundIn(data).readableBytes
        if received >= expected { done.succeed(()) }
    }
}

/// Writes `total` bytes in 64 KiB writes on the event loop whenever the channel is writable, as the C baseline's
/// blocking `SSL_write` loop does. (An `NIOAsyncChannel` writer hands writes to the loop while it still looks writable,
/// so a writer that costs nothing ran ahead of the socket by hundreds of MiB of ciphertext.)
final class BulkWriter: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let chunk = ByteBuffer(repeating: 0x5A, count: 64 * 1024)
    private var remaining: Int
    private var context: ChannelHandlerContext?
    private var writing = false
    /// The bytes handed to the channel so far (read on the event loop).
    private(set) var written = 0

    init(total: Int) {
        remaining = total
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// Starts writing; call on the channel's event loop once the handshake completed.
    func start() {
        write()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        write()
        context.fireChannelWritabilityChanged()
    }

    private func write() {
        guard let context, !writing else { return }
        writing = true
        defer { writing = false }
        // A flush may make the channel writable again (its writability event comes back here while `writing`).
        while remaining > 0, context.channel.isWritable {
            while remaining > 0, context.channel.isWritable {
                context.write(wrapOutboundOut(chunk), promise: nil)
                remaining -= chunk.readableBytes
                written += chunk.readableBytes
            }
            context.flush()
        }
    }
}

func tlsBulk(megabytes: Int) async throws {
    let total = megabytes << 20
    // Sender and receiver on a thread each, as the C baseline's two processes: on one shared group both ends
    // sometimes land on the same event loop and the figure halves.
    let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let group = serverGroup
    let serverTLS = try TLSContext(
        configuration: .server(
            identity: BenchRelay.identity,
            applicationProtocols: [RelayTransport.applicationProtocol]
        )
    )
    let done = group.next().makePromise(of: Void.self)
    let counter = group.next().makePromise(of: Channel.self)
    let counterHandler = CountingHandler(expected: total, done: done)
    let server = try await ServerBootstrap(group: group)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(TLSHandler(context: serverTLS))
                try channel.pipeline.syncOperations.addHandler(counterHandler)
                counter.succeed(channel)
            }
        }
        .bind(host: "127.0.0.1", port: 0).get()
    let clientTLS = try TLSContext(
        configuration: .client(
            trust: .pinnedPublicKeys([BenchRelay.identity.certificate.publicKeyFingerprint]),
            applicationProtocols: [RelayTransport.applicationProtocol]
        )
    )
    let writer = BulkWriter(total: total)
    let client = try await ClientBootstrap(group: clientGroup)
        .connect(host: "127.0.0.1", port: server.localAddress!.port!) { channel in
            channel.eventLoop.makeCompletedFuture {
                let handshake = channel.eventLoop.makePromise(of: TLSHandshakeCompletedEvent.self)
                try channel.pipeline.syncOperations.addHandler(TLSHandler(context: clientTLS))
                try channel.pipeline.syncOperations.addHandler(HandshakeObserver(handshake))
                try channel.pipeline.syncOperations.addHandler(writer)
                return (channel, handshake.futureResult)
            }
        }
    // The channel is writable during the handshake, but the TLS handler buffers only 16 MiB until it completes.
    _ = try await client.1.get()
    let start = ContinuousClock.now
    let watchdog = Task {
        try await Task.sleep(for: .seconds(15))
        let counted = try await counter.futureResult.get().eventLoop.submit { counterHandler.received }.get()
        let written = try await client.0.eventLoop.submit { writer.written }.get()
        FileHandle.standardError.write(Data("tls-bulk stalled: \(written) bytes written, \(counted) received of \(total)\n".utf8))
    }
    client.0.eventLoop.execute { writer.start() }
    try await done.futureResult.get()
    watchdog.cancel()
    emit("tls_bulk_mb_per_s", Double(megabytes) / seconds(since: start), "MiB/s")
    try await client.0.close()
    try await server.close()
}

// MARK: - Relays and clients in other processes

/// Runs a relay until stdin closes, with 64 accounts `<prefix>.0` … `<prefix>.63` registered, and prints its port,
/// the file holding those accounts' keys and its TLS key's fingerprint. On PostgreSQL (`database`) it shares the
/// database with any other relay process on it.
func serveRelay(database: BenchDatabase, prefix: String) async throws {
    let relay = try await BenchRelay.start(accounts: (0..<64).map { "\(prefix).\($0)" }, database: database) {
        $0.idleTimeout = .seconds(3600)
    }
    // Keys go to the client process through a file next to the relay.
    var lines: [String] = []
    for (handle, key) in relay.keys { lines.append("\(handle.rawValue) \(key.seed.copiedBytes.hexString)") }
    let keyFile = relay.directory.appendingPathComponent("keys.txt").path
    try lines.joined(separator: "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
    say("port \(relay.port) keys \(keyFile) fingerprint \(BenchRelay.identity.certificate.publicKeyFingerprint) pid \(getpid())")
    while readLine() != nil {}
    await relay.stop()
}

/// The accounts `serve-relay` wrote, sorted by handle.
func readKeys(_ keyFile: String) throws -> [(Handle, SigningKey)] {
    try String(contentsOfFile: keyFile, encoding: .utf8).split(separator: "\n").map { line in
        let parts = line.split(separator: " ")
        return (try Handle(String(parts[0])), try SigningKey(seed: SecretBytes([UInt8](hexString: String(parts[1]))!)))
    }.sorted { $0.0.rawValue < $1.0.rawValue }
}

/// Opens `count` logged-in connections to the relay at `port` and holds them until stdin closes.
func idleClients(port: Int, keyFile: String, count: Int, fingerprint: String) async throws {
    let keys = try readKeys(keyFile)
    let clientTLS = try BenchRelay.clientTLS(pinning: PublicKeyFingerprint(fingerprint)!)
    var connections: [RelayConnection] = []
    for n in 0..<count {
        let (handle, key) = keys[n % keys.count]
        let connection = try await RelayConnection.open(host: "127.0.0.1", port: port, tls: clientTLS)
        try await connection.login(as: handle, identity: key)
        connections.append(connection)
    }
    say("open \(connections.count)")
    while readLine() != nil {}
}

/// A fixed number of durable sends to the relay at `port` in another process, for `perf stat` on that process: 16
/// senders (the first 16 accounts of the key file) each send `count / 16` 1 KiB envelopes to the last account, or to
/// `recipient`, keeping `window` sends in flight (one after another by default). Prints how many were stored and how long they took; with `count` 0 it only
/// connects and logs in, so that run's cost can be subtracted.
func sendLoad(port: Int, keyFile: String, count: Int, fingerprint: String, recipient: String?, window: Int) async throws {
    let keys = try readKeys(keyFile)
    let sink = try recipient.map { try Handle($0) } ?? keys.last!.0
    let clientTLS = try BenchRelay.clientTLS(pinning: PublicKeyFingerprint(fingerprint)!)
    let senders = 16
    let connections = try await withThrowingTaskGroup(of: RelayConnection.self) { group in
        for (handle, key) in keys.prefix(senders) {
            group.addTask {
                let connection = try await RelayConnection.open(host: "127.0.0.1", port: port, tls: clientTLS)
                try await connection.login(as: handle, identity: key)
                return connection
            }
        }
        return try await group.reduce(into: []) { $0.append($1) }
    }
    let start = ContinuousClock.now
    // Envelope ids differ across runs against one database: a run's first bytes are its start time.
    let run = UInt64(Date().timeIntervalSince1970 * 1e6)
    let stored = try await withThrowingTaskGroup(of: Int.self) { group in
        for (n, connection) in connections.enumerated() {
            group.addTask {
                var body = [UInt8](repeating: UInt8(n), count: 1024)
                withUnsafeBytes(of: run.bigEndian) { body.replaceSubrange(8..<16, with: $0) }
                let share = count / senders
                var sent = 0
                var inFlight: [UInt32] = []
                while sent < share || !inFlight.isEmpty {
                    while inFlight.count < window, sent < share {
                        withUnsafeBytes(of: UInt64(sent).bigEndian) { body.replaceSubrange(0..<8, with: $0) }
                        inFlight.append(try await connection.start(.send(try SendRequest(recipient: sink, envelope: body))))
                        sent += 1
                    }
                    guard case .stored = try await connection.result(of: inFlight.removeFirst()) else {
                        throw ClientError(.protocolViolation, "not stored")
                    }
                }
                return share
            }
        }
        return try await group.reduce(0, +)
    }
    let elapsed = seconds(since: start)
    say("stored \(stored) seconds \(String(format: "%.3f", elapsed)) rate \(String(format: "%.1f", Double(stored) / elapsed))")
    for connection in connections { await connection.close() }
}

/// The other half of a consult's life at the relay, for `perf stat` on the relay process: the last account of the
/// key file fetches what is queued for it, `batch` envelopes a request, and acknowledges each fetched batch in one
/// request (a notice for each sender), until it has acknowledged `count`. With `count` 0 it only logs in.
func drainLoad(port: Int, keyFile: String, count: Int, batch: Int, fingerprint: String) async throws {
    let (handle, key) = try readKeys(keyFile).last!
    let connection = try await RelayConnection.open(host: "127.0.0.1", port: port, tls: try BenchRelay.clientTLS(pinning: PublicKeyFingerprint(fingerprint)!))
    try await connection.login(as: handle, identity: key)
    let start = ContinuousClock.now
    var acknowledged = 0
    var cursor: UInt64 = 0
    while acknowledged < count {
        guard case .envelopes(let envelopes) = try await connection.request(.fetch(after: cursor, limit: UInt16(min(batch, count - acknowledged)))),
            let last = envelopes.last
        else { break }
        guard case .acknowledged(let n) = try await connection.request(.acknowledge(envelopes.map(\.envelopeID))) else {
            throw ClientError(.protocolViolation, "not acknowledged")
        }
        acknowledged += Int(n)
        cursor = last.sequence
    }
    let elapsed = seconds(since: start)
    say("acknowledged \(acknowledged) seconds \(String(format: "%.3f", elapsed)) rate \(String(format: "%.1f", Double(acknowledged) / elapsed))")
    await connection.close()
}

/// A relay process started from this executable (`serve-relay`), stopped by closing its standard input.
struct ChildRelay {
    let process: Process
    let input: Pipe
    let port: Int
    let fingerprint: PublicKeyFingerprint

    static func start(arguments: [String]) throws -> ChildRelay {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        process.arguments = arguments
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        var text = ""
        while !text.contains("\n") {
            let data = output.fileHandleForReading.availableData
            guard !data.isEmpty else { throw ClientError(.protocolViolation, "the child relay exited before it listened") }
            text += String(decoding: data, as: UTF8.self)
        }
        let words = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard let port = words.firstIndex(of: "port").flatMap({ Int(words[$0 + 1]) }),
            let fingerprint = words.firstIndex(of: "fingerprint").flatMap({ PublicKeyFingerprint(words[$0 + 1]) })
        else { throw ClientError(.protocolViolation, "the child relay printed \(text)") }
        return ChildRelay(process: process, input: input, port: port, fingerprint: fingerprint)
    }

    /// Closes its standard input: it stops its relay and exits.
    func stop() {
        try? input.fileHandleForWriting.close()
    }
}

// MARK: - A PostgreSQL cluster for bench/run.sh's PostgreSQL measurements

/// Starts a throw-away cluster (fsync and synchronous_commit on, as PostgreSQL's defaults have them), prints where it
/// listens, and stops and deletes it when stdin closes. bench/run.sh runs the relay and pgbench against it.
func postgresCluster() throws {
    let cluster = try PostgresCluster.start(settings: ["fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"], name: "bench")
    say("socket \(cluster.socketDirectory) port \(cluster.port) user \(cluster.user) bin \(cluster.binDirectory)")
    while readLine() != nil {}
    cluster.stop()
}

// MARK: -

/// `--name value` options after the subcommand, and bare words in order.
struct BenchArguments {
    var options: [String: String] = [:]
    var flags: Set<String> = []
    var words: [String] = []

    init(_ arguments: ArraySlice<String>, flags known: Set<String>) {
        var rest = arguments[...]
        while let word = rest.popFirst() {
            if known.contains(word) {
                flags.insert(word)
            } else if word.hasPrefix("--"), let value = rest.popFirst() {
                options[word] = value
            } else {
                words.append(word)
            }
        }
    }
}

/// The subcommand named by the first argument.
func runCommand(_ arguments: [String]) async throws {
    let parsed = BenchArguments(arguments.dropFirst(2), flags: ["--cross-process", "--no-login", "--challenge-login"])
    let duration = Double(ProcessInfo.processInfo.environment["BENCH_SECONDS"] ?? "5") ?? 5
    let databaseURL = parsed.options["--database"]
    switch arguments.count > 1 ? arguments[1] : "" {
    case "crypto": try crypto(duration: duration)
    case "relay-durable":
        // The default run keeps its row's name; `--senders N` and `--backlog N` name their own rows.
        let senders = Int(parsed.options["--senders"] ?? "16")!
        let backlog = Int(parsed.options["--backlog"] ?? "0")!
        var metric = databaseURL == nil ? "relay_durable" : "relay_durable_pg"
        if parsed.options["--senders"] != nil { metric += "_senders_\(senders)" }
        if parsed.options["--backlog"] != nil { metric += "_backlog_\(backlog)" }
        try await relayDurable(
            duration: duration,
            senders: senders,
            window: Int(parsed.options["--window"] ?? "20") ?? 20,
            backlog: backlog,
            database: try BenchDatabase(url: databaseURL),
            metric: metric + "_msgs_per_s"
        )
    case "push-latency":
        let rate = Int(parsed.options["--rate"] ?? "1000")!
        let crossProcess = parsed.flags.contains("--cross-process")
        try await pushLatency(
            duration: duration,
            rate: rate,
            databaseURL: databaseURL,
            crossProcess: crossProcess,
            metric: "push_latency" + (databaseURL == nil ? "" : "_pg") + (crossProcess ? "_cross" : "") + (rate == 1000 ? "" : "_\(rate)")
        )
    case "handshakes":
        try await handshakes(
            duration: duration,
            login: !parsed.flags.contains("--no-login"),
            challengeLogin: parsed.flags.contains("--challenge-login")
        )
    case "tls-bulk": try await tlsBulk(megabytes: Int(parsed.words.first ?? "512") ?? 512)
    case "serve-relay": try await serveRelay(database: try BenchDatabase(url: databaseURL), prefix: parsed.options["--prefix"] ?? "idle")
    case "idle-clients":
        try await idleClients(port: Int(parsed.words[0])!, keyFile: parsed.words[1], count: Int(parsed.words[2])!, fingerprint: parsed.words[3])
    case "send-load":
        try await sendLoad(
            port: Int(parsed.words[0])!,
            keyFile: parsed.words[1],
            count: Int(parsed.words[2])!,
            fingerprint: parsed.words[3],
            recipient: parsed.options["--to"],
            window: Int(parsed.options["--window"] ?? "1") ?? 1
        )
    case "drain-load":
        try await drainLoad(
            port: Int(parsed.words[0])!,
            keyFile: parsed.words[1],
            count: Int(parsed.words[2])!,
            batch: Int(parsed.options["--batch"] ?? "100")!,
            fingerprint: parsed.words[3]
        )
    case "postgres": try postgresCluster()
    case "fingerprint": print(BenchRelay.identity.certificate.publicKeyFingerprint)
    default:
        FileHandle.standardError.write(
            Data(
                """
                usage: curbside-bench crypto
                       curbside-bench relay-durable [--database postgres://…] [--senders N] [--window N] [--backlog N]
                       curbside-bench push-latency [--rate N] [--database postgres://… [--cross-process]]
                       curbside-bench handshakes [--no-login | --challenge-login] | tls-bulk [MiB] | fingerprint
                       curbside-bench serve-relay [--database postgres://…] [--prefix NAME]
                       curbside-bench idle-clients PORT KEYS N FINGERPRINT | send-load PORT KEYS N FINGERPRINT [--to HANDLE] [--window N]
                       curbside-bench drain-load PORT KEYS N FINGERPRINT [--batch N]
                       curbside-bench postgres

                """.utf8
            )
        )
        exit(64)
    }
}

// A synchronous entry that waits for the command, not an asynchronous main: an asynchronous main parks the main
// thread in dispatch_main, where valgrind 3.19 (Debian 12's) crashes, and bench/relay_instructions.py runs this
// executable under callgrind.
let finished = DispatchSemaphore(value: 0)
nonisolated(unsafe) var failure: (any Error)?
Task.detached {
    do { try await runCommand(CommandLine.arguments) } catch { failure = error }
    finished.signal()
}
finished.wait()
if let failure {
    FileHandle.standardError.write(Data("curbside-bench: \(failure)\n".utf8))
    exit(1)
}
