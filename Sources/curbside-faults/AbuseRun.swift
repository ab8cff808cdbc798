import CurbsideClient
import CurbsideTLS
import CurbsideTestSupport
import CurbsideWire
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Abuse of a live relay process over TLS: random and mutated frames (before and after login), slow-loris
/// connections that never finish a frame, and a login brute force — while two providers keep exchanging consults.
/// Counts how each attempt was answered; the relay must stay up, answer or close every attempt, keep serving the
/// providers, and keep its memory bounded.
struct AbuseRun {
    var executable: String
    var frames = 10_000
    /// Connections that send three bytes and stop; the relay must close them at its login timeout (30 s).
    var slowLoris = 0
    var seed: UInt64 = 1

    struct Report: Codable {
        var frames = 0
        var errorFrames: [String: Int] = [:]
        var closedWithoutAnswer = 0
        var answeredNormally = 0
        var hung = 0
        var connectFailures = 0
        var providerRoundTrips = 0
        var providerFailures = 0
        var slowLorisOpened = 0
        var slowLorisClosedByRelay = 0
        var bruteForceAttempts = 0
        var bruteForceRateLimited = 0
        var bruteForceAccepted = 0
        var relayRSSBeforeKiB = 0
        var relayRSSAfterKiB = 0
        var relayAlive = false
        var seconds = 0.0

        var answeredWithError: Int { errorFrames.values.reduce(0, +) }

        var passed: Bool {
            relayAlive && hung == 0 && providerFailures == 0 && bruteForceAccepted == 0
                && (bruteForceAttempts == 0 || bruteForceRateLimited > 0)
                && slowLorisClosedByRelay == slowLorisOpened
                && relayRSSAfterKiB - relayRSSBeforeKiB < 64 * 1024
        }
    }

    /// How one attempt ended.
    enum Outcome {
        case error(UInt16)
        case answered
        case closed
        case hung
    }

    func run(log: @escaping @Sendable (String) -> Void) async throws -> Report {
        let start = ContinuousClock.now
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-abuse-\(UUID())").path
        let relay = RelayProcess(executable: executable, dataDirectory: "\(directory)/relay")
        defer {
            relay.kill()
            try? FileManager.default.removeItem(atPath: directory)
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let (tls, accounts) = try await relay.startWithAccounts(["abuse.attacker", "abuse.gp", "abuse.derm"])
        let keys = Dictionary(uniqueKeysWithValues: accounts)
        let (attacker, gp, derm) = (accounts[0].0, accounts[1].0, accounts[2].0)
        // The providers log in before the attack and stay connected through it.
        let sender = try await RelayConnection.open(host: "127.0.0.1", port: relay.port, tls: tls)
        try await sender.login(as: gp, identity: keys[gp]!)
        let receiver = try await RelayConnection.open(host: "127.0.0.1", port: relay.port, tls: tls)
        try await receiver.login(as: derm, identity: keys[derm]!)

        var report = Report(frames: frames)
        var cursor: UInt64 = 0
        var exchanges: UInt64 = 0
        /// gp sends derm a consult (its own bytes each time) and derm fetches it.
        func providersExchange() async {
            exchanges += 1
            do {
                var body = [UInt8](repeating: 0x42, count: 512)
                withUnsafeBytes(of: exchanges.bigEndian) { body.replaceSubrange(0..<8, with: $0) }
                guard case .stored = try await sender.request(.send(try SendRequest(recipient: derm, envelope: body)), timeout: .seconds(10)),
                    case .envelopes(let batch) = try await receiver.request(.fetch(after: cursor, limit: 100), timeout: .seconds(10)),
                    let mine = batch.last, mine.envelope == body
                else {
                    report.providerFailures += 1
                    return
                }
                cursor = mine.sequence
                report.providerRoundTrips += 1
            } catch {
                report.providerFailures += 1
            }
        }
        await providersExchange()
        report.relayRSSBeforeKiB = relay.residentKiB

        var generator = SplitMix64(seed: seed)
        let corpus = try Self.validFrames(attacker: attacker, victim: derm)
        log("abuse: \(frames) random and mutated frames, half before login and half after, seed \(seed)")
        // Eight attempts at a time (the relay allows 32 connections per address), the providers between batches.
        let port = relay.port, attackerKey = keys[attacker]!
        for batchStart in stride(from: 0, to: frames, by: 8) {
            let batch = (batchStart..<min(frames, batchStart + 8)).map { attempt in
                (attempt % 2 == 1, Self.abusiveBytes(from: corpus, loggedIn: attempt % 2 == 1, using: &generator))
            }
            let outcomes = await withTaskGroup(of: Outcome?.self) { group in
                for (loggedIn, bytes) in batch {
                    group.addTask {
                        try? await Self.attempt(bytes, port: port, tls: tls, login: loggedIn ? (attacker, attackerKey) : nil)
                    }
                }
                return await group.reduce(into: [Outcome?]()) { $0.append($1) }
            }
            for outcome in outcomes {
                switch outcome {
                case .error(let code): report.errorFrames[String(code), default: 0] += 1
                case .answered: report.answeredNormally += 1
                case .closed: report.closedWithoutAnswer += 1
                case .hung: report.hung += 1
                case nil: report.connectFailures += 1
                }
            }
            if batchStart % 256 == 248 { await providersExchange() }
        }
        await providersExchange()

        if slowLoris > 0 {
            log("abuse: \(slowLoris) slow-loris connections, each three bytes of a frame and then nothing")
            let closed = NIOLockedValueBox(0)
            var channels: [any Channel] = []
            for _ in 0..<slowLoris {
                guard let channel = try? await Self.openRaw(port: relay.port, tls: tls, closed: closed) else { continue }
                channel.writeAndFlush(ByteBuffer(bytes: [0, 0, 0]), promise: nil)
                channels.append(channel)
            }
            report.slowLorisOpened = channels.count
            // The login timeout is 30 s; the providers must be served meanwhile.
            for second in 0..<36 where closed.withLockedValue({ $0 }) < channels.count {
                try await Task.sleep(for: .seconds(1))
                if second % 10 == 0 { await providersExchange() }
            }
            report.slowLorisClosedByRelay = closed.withLockedValue { $0 }
            for channel in channels { try? await channel.close() }
        }

        // Last, as it locks this address out of logins for a minute: guesses at another account's login.
        let wrongKey = SigningKey()
        for _ in 0..<12 {
            report.bruteForceAttempts += 1
            let connection = try await RelayConnection.open(host: "127.0.0.1", port: relay.port, tls: tls)
            do {
                try await connection.login(as: derm, identity: wrongKey)
                report.bruteForceAccepted += 1
            } catch RelayClientError.refused(let error) where error.code == .rateLimited {
                report.bruteForceRateLimited += 1
            } catch {}
            await connection.close()
        }
        await providersExchange()

        report.relayRSSAfterKiB = relay.residentKiB
        report.relayAlive = relay.isRunning
        await sender.close()
        await receiver.close()
        try await relay.stopGracefully()
        report.seconds = Double((ContinuousClock.now - start).components.seconds)
        return report
    }

    /// One valid frame of each kind a client sends, for mutating.
    static func validFrames(attacker: Handle, victim: Handle) throws -> [[UInt8]] {
        let id = [UInt8](repeating: 7, count: 32)
        let messages: [RelayMessage] = [
            .send(try SendRequest(recipient: victim, envelope: [UInt8](repeating: 1, count: 300))),
            .send(try SendRequest(recipient: victim, envelope: [UInt8](repeating: 2, count: 40), attachments: [id])),
            .fetch(after: 0, limit: 100),
            .acknowledge([id]),
            .fetchNotices(after: 0),
            .acknowledgeNotices(through: 3),
            .fetchBundle(victim),
            .openUpload(OpenUpload(attachmentID: id, size: 1000)),
            .uploadChunk(try UploadChunk(attachmentID: id, offset: 0, data: [UInt8](repeating: 3, count: 200))),
            .commitUpload(attachmentID: id),
            .download(DownloadRequest(attachmentID: id, offset: 0, length: 100)),
            .login(LoginRequest(handle: attacker, challenge: LoginChallenge(nonce: id), channelBinding: id, signedBy: SigningKey())),
        ]
        return messages.enumerated().map { $0.element.frame(requestID: UInt32($0.offset + 1)).encoded }
    }

    /// Random bytes, a random frame, or a valid frame with its length, type or body damaged. Before login, login and
    /// register frames are left out: a decodable failed login would count against this address's login limit.
    static func abusiveBytes(from corpus: [[UInt8]], loggedIn: Bool, using generator: inout SplitMix64) -> [UInt8] {
        func randomBytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) } }
        let choices = loggedIn ? corpus : Array(corpus.dropLast())
        var frame = choices.randomElement(using: &generator)!
        switch Int.random(in: 0..<6, using: &generator) {
        case 0:
            return randomBytes(Int.random(in: 1...600, using: &generator))
        case 1:
            // A well-formed frame of a random type with a random body.
            let body = randomBytes(Int.random(in: 0...400, using: &generator))
            var type = UInt16.random(in: 0...0x40, using: &generator)
            if !loggedIn, type == 0x0003 || type == 0x0010 { type = 0x0099 }
            return Frame(type: type, requestID: UInt32.random(in: 0...UInt32.max, using: &generator), body: body).encoded
        case 2:
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                frame[Int.random(in: 10..<frame.count, using: &generator)] ^= UInt8.random(in: 1...255, using: &generator)
            }
            return frame
        case 3:
            // Cut short: the relay sees the end of the stream (close_notify) in the middle of a frame.
            return Array(frame.prefix(Int.random(in: 1..<frame.count, using: &generator)))
        case 4:
            // A length prefix that does not match: larger (up to past the limit) or smaller than the frame.
            let length = UInt32.random(in: 0...UInt32.max, using: &generator) >> UInt32.random(in: 0...28, using: &generator)
            withUnsafeBytes(of: length.bigEndian) { frame.replaceSubrange(0..<4, with: $0) }
            return frame
        default:
            // Body lengths inside the frame damaged: bytes appended within a correct outer length.
            frame += randomBytes(Int.random(in: 1...64, using: &generator))
            let length = UInt32(frame.count - 4)
            withUnsafeBytes(of: length.bigEndian) { frame.replaceSubrange(0..<4, with: $0) }
            return frame
        }
    }

    /// A TLS connection that hands raw bytes in and out; `closed` counts connections the relay ended.
    static func openRaw(port: Int, tls: TLSContext, closed: NIOLockedValueBox<Int>) async throws -> any Channel {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TLSHandler(context: tls))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        channel.closeFuture.whenComplete { _ in closed.withLockedValue { $0 += 1 } }
        return channel
    }

    /// One connection: the challenge, a login when asked, then `bytes`; waits for an answer or the end.
    static func attempt(_ bytes: [UInt8], port: Int, tls: TLSContext, login: (Handle, SigningKey)?) async throws -> Outcome {
        let (channel, handshake) = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handshake = channel.eventLoop.makePromise(of: TLSHandshakeCompletedEvent.self)
                    try channel.pipeline.syncOperations.addHandler(TLSHandler(context: tls))
                    try channel.pipeline.syncOperations.addHandler(HandshakeObserver(handshake))
                    let wrapped = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(isOutboundHalfClosureEnabled: true)
                    )
                    return (wrapped, handshake.futureResult)
                }
            }
        let binding = try await handshake.get().channelBinding
        // After 6 s without an end the attempt has hung.
        let hung = NIOLockedValueBox(false)
        let giveUp = channel.channel.eventLoop.scheduleTask(in: .seconds(6)) {
            hung.withLockedValue { $0 = true }
            channel.channel.close(promise: nil)
        }
        defer { giveUp.cancel() }
        return try await channel.executeThenClose { inbound, outbound in
            var parser = FrameParser()
            var frames = inbound.makeAsyncIterator()
            func nextFrame() async throws -> Frame? {
                while true {
                    if let frame = try parser.next() { return frame }
                    guard var buffer = try await frames.next() else { return nil }
                    parser.append(buffer.readBytes(length: buffer.readableBytes) ?? [])
                }
            }
            guard let first = try await nextFrame(), case .challenge(let challenge) = try RelayMessage(decoding: first) else {
                return .closed
            }
            if let login {
                let (handle, key) = login
                let request = LoginRequest(handle: handle, challenge: challenge, channelBinding: binding, signedBy: key)
                try await outbound.write(ByteBuffer(bytes: RelayMessage.login(request).frame(requestID: 1).encoded))
                guard let answer = try await nextFrame(), case .loginAccepted = try RelayMessage(decoding: answer) else {
                    throw FaultRunError("the attacker's own login was refused")
                }
            }
            // Without an answer within 200 ms the client ends its side (close_notify), so a frame cut short is seen
            // to end.
            let endOutput = channel.channel.eventLoop.scheduleTask(in: .milliseconds(200)) { channel.channel.close(mode: .output, promise: nil) }
            defer { endOutput.cancel() }
            try await outbound.write(ByteBuffer(bytes: bytes))
            do {
                guard let frame = try await nextFrame() else { return hung.withLockedValue { $0 } ? .hung : .closed }
                if case .error(let code, _) = try RelayMessage(decoding: frame) { return .error(code) }
                return .answered
            } catch {
                return hung.withLockedValue { $0 } ? .hung : .closed
            }
        }
    }
}
