// Curbside's side of `make bench`. Each subcommand measures one thing and prints JSON lines
// {"metric": …, "value": …, "unit": …}; bench/run.sh runs the peers, adds baselines and ratios, and writes the table.
// Every loop is bounded in time; servers bind 127.0.0.1 only.

internal import CSodium
import CurbsideClient
import CurbsideRelay
import CurbsideTLS
import CurbsideTransport
import CurbsideWire
import Foundation
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

// MARK: - A relay in this process, on a real SQLite file

struct BenchRelay {
    let port: Int
    let task: Task<Void, any Error>
    let directory: URL
    let tls: TLSContext
    var keys: [Handle: SigningKey] = [:]

    static let identity = try! TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"])

    static func start(accounts: [String], configure: (inout RelayConfiguration) -> Void = { _ in }) async throws -> BenchRelay {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-bench-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let store = try SQLiteRelayStore(path: directory.appendingPathComponent("relay.sqlite").path)
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
        configuration.maximumConnections = 8192
        configuration.maximumConnectionsPerAddress = 8192
        configuration.maximumConcurrentLoginsPerAddress = 8192
        configure(&configuration)
        let serverTLS = try TLSContext(configuration: .server(identity: identity, applicationProtocols: ["curbside/1"]))
        let server = RelayServer(
            configuration: configuration,
            tls: serverTLS,
            store: store,
            attachments: try BlobStore(root: directory.appendingPathComponent("attachments").path)
        )
        let bound = try await server.bind()
        let clientTLS = try TLSContext(
            configuration: .client(trust: .pinnedPublicKeys([identity.certificate.publicKeyFingerprint]), applicationProtocols: ["curbside/1"])
        )
        var relay = BenchRelay(port: bound.port, task: Task { try await bound.serve() }, directory: directory, tls: clientTLS)
        relay.keys = keys
        return relay
    }

    func connect(_ name: String) async throws -> RelayConnection {
        let handle = try Handle(name)
        let connection = try await RelayConnection.open(host: "127.0.0.1", port: port, tls: tls)
        try await connection.login(as: handle, identity: keys[handle]!)
        return connection
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
        try? FileManager.default.removeItem(at: directory)
    }
}

/// 16 senders, each sending 1 KiB envelopes one after another, each acknowledged `stored` after fsync.
func relayDurable(duration: Double, senders: Int) async throws {
    let names = (0..<senders).map { "sender.\($0)" } + ["sink.derm"]
    let relay = try await BenchRelay.start(accounts: names)
    let connections = try await withThrowingTaskGroup(of: RelayConnection.self) { group in
        for n in 0..<senders { group.addTask { try await relay.connect("sender.\(n)") } }
        return try await group.reduce(into: []) { $0.append($1) }
    }
    let sink = try Handle("sink.derm")
    let start = ContinuousClock.now
    let total = try await withThrowingTaskGroup(of: Int.self) { group in
        for (n, connection) in connections.enumerated() {
            group.addTask {
                var count = 0
                var body = [UInt8](repeating: UInt8(n), count: 1024)
                while seconds(since: start) < duration {
                    withUnsafeBytes(of: UInt64(count).bigEndian) { body.replaceSubrange(0..<8, with: $0) }
                    guard case .stored = try await connection.request(.send(try SendRequest(recipient: sink, envelope: body))) else {
                        throw ClientError(.protocol, "not stored")
                    }
                    count += 1
                }
                return count
            }
        }
        return try await group.reduce(0, +)
    }
    let elapsed = seconds(since: start)
    emit("relay_durable_msgs_per_s", Double(total) / elapsed, "msgs/s")
    for connection in connections { await connection.close() }
    await relay.stop()
}

/// A sender at a steady `rate` to a connected recipient; send-to-push latency in a histogram.
func pushLatency(duration: Double, rate: Int) async throws {
    let relay = try await BenchRelay.start(accounts: ["sender.gp", "sink.derm"])
    let sender = try await relay.connect("sender.gp")
    let receiver = try await relay.connect("sink.derm")
    let sink = try Handle("sink.derm")
    let origin = ContinuousClock.now
    func nowMicros() -> UInt64 {
        let elapsed = ContinuousClock.now - origin
        return UInt64(elapsed.components.seconds) * 1_000_000 + UInt64(elapsed.components.attoseconds / 1_000_000_000_000)
    }
    let messages = Int(duration * Double(rate))
    let collector = Task { () -> Histogram<UInt64> in
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var seen = 0
        for await push in receiver.pushes {
            guard case .pushEnvelope(let delivered) = push else { continue }
            let sent = delivered.envelope.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            _ = histogram.record(nowMicros() - sent)
            seen += 1
            if seen == messages { break }
        }
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
    emit("push_latency_p50_ms", Double(histogram.valueAtPercentile(50)) / 1000, "ms")
    emit("push_latency_p99_ms", Double(histogram.valueAtPercentile(99)) / 1000, "ms")
    emit("push_latency_count", Double(histogram.totalCount), "msgs")
    await sender.close()
    await receiver.close()
    await relay.stop()
}

/// New connections, each with its TLS handshake and login, one after another.
func handshakes(duration: Double) async throws {
    let relay = try await BenchRelay.start(accounts: ["bench.gp"]) { $0.maximumLoginFailures = 1_000_000 }
    var count = 0
    let start = ContinuousClock.now
    while seconds(since: start) < duration {
        let connection = try await relay.connect("bench.gp")
        await connection.close()
        count += 1
    }
    emit("handshakes_per_s", Double(count) / seconds(since: start), "connections/s")
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

func tlsBulk(megabytes: Int) async throws {
    let total = megabytes << 20
    // Sender and receiver on a thread each, as the C baseline's two processes: on one shared group both ends
    // sometimes land on the same event loop and the figure halves.
    let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let group = serverGroup
    let serverTLS = try TLSContext(configuration: .server(identity: BenchRelay.identity, applicationProtocols: ["curbside/1"]))
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
        configuration: .client(trust: .pinnedPublicKeys([BenchRelay.identity.certificate.publicKeyFingerprint]), applicationProtocols: ["curbside/1"])
    )
    let (client, handshake) = try await ClientBootstrap(group: clientGroup)
        .connect(host: "127.0.0.1", port: server.localAddress!.port!) { channel in
            channel.eventLoop.makeCompletedFuture {
                let handshake = channel.eventLoop.makePromise(of: TLSHandshakeCompletedEvent.self)
                try channel.pipeline.syncOperations.addHandler(TLSHandler(context: clientTLS))
                try channel.pipeline.syncOperations.addHandler(HandshakeObserver(handshake))
                return (try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel), handshake.futureResult)
            }
        }
    // The channel is writable during the handshake, but the TLS handler buffers only 16 MiB until it completes.
    _ = try await handshake.get()
    let chunk = ByteBuffer(repeating: 0x5A, count: 64 * 1024)
    let start = ContinuousClock.now
    let written = NIOLockedValueBox(0)
    let watchdog = Task {
        try await Task.sleep(for: .seconds(15))
        let counted = try await counter.futureResult.get().eventLoop.submit { counterHandler.received }.get()
        FileHandle.standardError.write(Data("tls-bulk stalled: \(written.withLockedValue { $0 }) bytes written, \(counted) received of \(total)\n".utf8))
    }
    try await client.executeThenClose { _, outbound in
        for _ in 0..<(total / chunk.readableBytes) {
            try await outbound.write(chunk)
            written.withLockedValue { $0 += 65536 }
        }
        try await done.futureResult.get()
    }
    watchdog.cancel()
    emit("tls_bulk_mb_per_s", Double(megabytes) / seconds(since: start), "MiB/s")
    try await server.close()
}

// MARK: - Idle connections against a relay in another process

/// Runs a relay (for the idle-connection measurement) until stdin closes; prints its port.
func serveRelay() async throws {
    let relay = try await BenchRelay.start(accounts: (0..<64).map { "idle.\($0)" }) { $0.idleTimeout = .seconds(3600) }
    // Keys go to the client process through a file next to the relay.
    var lines: [String] = []
    for (handle, key) in relay.keys { lines.append("\(handle.rawValue) \(key.seed.copiedBytes.hexString)") }
    let keyFile = relay.directory.appendingPathComponent("keys.txt").path
    try lines.joined(separator: "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
    say("port \(relay.port) keys \(keyFile) fingerprint \(BenchRelay.identity.certificate.publicKeyFingerprint)")
    while readLine() != nil {}
    await relay.stop()
}

/// Opens `count` logged-in connections to the relay at `port` and holds them until stdin closes.
func idleClients(port: Int, keyFile: String, count: Int) async throws {
    let keys = try String(contentsOfFile: keyFile, encoding: .utf8).split(separator: "\n").map { line in
        let parts = line.split(separator: " ")
        return (try Handle(String(parts[0])), try SigningKey(seed: SecretBytes([UInt8](hexString: String(parts[1]))!)))
    }
    let clientTLS = try TLSContext(
        configuration: .client(trust: .pinnedPublicKeys([PublicKeyFingerprint(CommandLine.arguments[5])!]), applicationProtocols: ["curbside/1"])
    )
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

// MARK: -

let arguments = CommandLine.arguments
let duration = Double(ProcessInfo.processInfo.environment["BENCH_SECONDS"] ?? "5") ?? 5
switch arguments.count > 1 ? arguments[1] : "" {
case "crypto": try crypto(duration: duration)
case "relay-durable": try await relayDurable(duration: duration, senders: 16)
case "push-latency": try await pushLatency(duration: duration, rate: 1000)
case "handshakes": try await handshakes(duration: duration)
case "tls-bulk": try await tlsBulk(megabytes: Int(arguments.count > 2 ? arguments[2] : "512") ?? 512)
case "serve-relay": try await serveRelay()
case "idle-clients": try await idleClients(port: Int(arguments[2])!, keyFile: arguments[3], count: Int(arguments[4])!)
case "fingerprint": print(BenchRelay.identity.certificate.publicKeyFingerprint)
default:
    FileHandle.standardError.write(Data("usage: curbside-bench crypto|relay-durable|push-latency|handshakes|tls-bulk [MiB]|serve-relay|idle-clients PORT KEYS N FINGERPRINT\n".utf8))
    exit(64)
}
