import CurbsideClient
import CurbsideTLS
import CurbsideTransport
import CurbsideTestSupport
import CurbsideWire
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import CurbsideRelay

/// The client library's connection against a live relay: login, pipelined requests, pushes, refusals, loss.
@Suite("client connection", .serialized)
struct RelayConnectionTests {
    static func clientTLS(pin: PublicKeyFingerprint = FileRelay.identity.certificate.publicKeyFingerprint) throws -> TLSContext {
        try TLSContext(configuration: .client(trust: .pinnedPublicKeys([pin]), applicationProtocols: [RelayTransport.applicationProtocol]))
    }

    @Test func registersLogsInPipelinesAndReceivesPushes() async throws {
        try await withStopping(try await FileRelay()) { relay in
            let nurse = (handle: try Handle("ana.nurse"), key: SigningKey())
            let code = try await KeyDirectory(store: try SQLiteRelayStore(path: relay.path)).enroll(nurse.handle, now: .now())

            let registering = try await RelayConnection.open(host: "127.0.0.1", port: relay.port, tls: try Self.clientTLS())
            try await registering.register(nurse.handle, identity: nurse.key, enrollmentCode: code)
            await registering.close()

            let receiving = try await RelayConnection.open(host: "127.0.0.1", port: relay.port, tls: try Self.clientTLS())
            try await receiving.login(as: nurse.handle, identity: nurse.key)
            let sending = try await RelayConnection.open(host: "127.0.0.1", port: relay.port, tls: try Self.clientTLS())
            try await sending.login(as: relay.gp.handle, identity: relay.gp.key)

            // Fifty sends at once on one connection: each answer finds its request.
            let bodies = (0..<50).map { [UInt8]("consult \($0)".utf8) }
            let receipts = try await withThrowingTaskGroup(of: ([UInt8], RelayMessage).self) { group in
                for body in bodies {
                    group.addTask { (body, try await sending.request(.send(try SendRequest(recipient: nurse.handle, envelope: body)))) }
                }
                return try await group.reduce(into: [([UInt8], RelayMessage)]()) { $0.append($1) }
            }
            for (body, reply) in receipts {
                guard case .stored(let receipt) = reply else {
                    Issue.record("expected stored, got \(reply)")
                    continue
                }
                #expect(receipt.envelopeID == SHA256.hash(body))
            }
            var pushed: Set<[UInt8]> = []
            for await push in receiving.pushes {
                if case .pushEnvelope(let envelope) = push { pushed.insert(envelope.envelope) }
                if pushed.count == bodies.count { break }
            }
            #expect(pushed == Set(bodies))

            // A refusal is typed and the connection goes on.
            do {
                _ = try await sending.request(.fetchBundle(try Handle("nobody.here")))
                Issue.record("an unknown handle was answered")
            } catch let error as RelayClientError {
                #expect(error.relayCode == .unknownHandle)
            }
            #expect(try await sending.request(.fetchNotices(after: 0)) == .notices([]))
            await sending.close()
            await receiving.close()
        }
    }

    /// Pushes nobody reads are bounded: the stream holds the first `maximumUnreadPushes`, ends at the next one, and
    /// requests go on; `fetch` returns every envelope, the pushed and the dropped.
    @Test func unreadPushesAreBoundedAndFetchReturnsWhatWasDropped() async throws {
        try await withStopping(try await FileRelay()) { relay in
            let nurse = (handle: try Handle("ana.nurse"), key: SigningKey())
            let code = try await KeyDirectory(store: try SQLiteRelayStore(path: relay.path)).enroll(nurse.handle, now: .now())
            let receiving = try await RelayConnection.open(
                host: "127.0.0.1",
                port: relay.port,
                tls: try Self.clientTLS(),
                maximumUnreadPushes: 3
            )
            try await receiving.register(nurse.handle, identity: nurse.key, enrollmentCode: code)
            let sending = try await RelayConnection.open(host: "127.0.0.1", port: relay.port, tls: try Self.clientTLS())
            try await sending.login(as: relay.gp.handle, identity: relay.gp.key)

            // The relay pushes each envelope before it answers `stored`, so all five are pushed before the fetch is
            // asked, and its answer comes after them on the receiving connection.
            let bodies = (0..<5).map { [UInt8]("consult \($0)".utf8) }
            for body in bodies {
                _ = try await sending.request(.send(try SendRequest(recipient: nurse.handle, envelope: body)))
            }
            guard case .envelopes(let queued) = try await receiving.request(.fetch(after: 0, limit: 100)) else {
                Issue.record("fetch was not answered with envelopes")
                return
            }
            #expect(queued.map(\.envelope) == bodies)
            // Were the stream unbounded it would not end here: closing the connection after 30 s ends it with all five,
            // and the test fails instead of hanging.
            let failsafe = Task {
                try await Task.sleep(for: .seconds(30))
                await receiving.close()
            }
            var pushed: [[UInt8]] = []
            for await push in receiving.pushes {
                if case .pushEnvelope(let envelope) = push { pushed.append(envelope.envelope) }
            }
            failsafe.cancel()
            #expect(pushed == Array(bodies.prefix(3)), "the stream held three pushes, then ended")
            #expect(await receiving.pushesFellBehind, "the stream says why it ended")
            #expect(await !sending.pushesFellBehind)
            #expect(try await receiving.request(.fetchNotices(after: 0)) == .notices([]), "the connection goes on")
            await sending.close()
            await receiving.close()
        }
    }

    /// A relay that sends its challenge and never answers: the request with the earliest deadline times out (made
    /// after one with a later deadline, so the connection must notice the earlier one), the connection closes, and
    /// the other request fails as lost.
    @Test func aRequestWithoutAnAnswerTimesOutAndTheOthersFailAsLost() async throws {
        let silent = try await SilentRelay.start()
        let connection = try await RelayConnection.open(host: "127.0.0.1", port: silent.port, tls: try Self.clientTLS())
        async let patient = connection.request(.fetchNotices(after: 0), timeout: .seconds(60))
        // The patient request is outstanding before the hasty one is made.
        try await Task.sleep(for: .milliseconds(200))
        do {
            _ = try await connection.request(.fetchNotices(after: 0), timeout: .seconds(1))
            Issue.record("a relay that never answers answered")
        } catch let error as RelayClientError {
            #expect(error == .timedOut(seconds: 1))
        }
        do {
            _ = try await patient
            Issue.record("a relay that never answers answered")
        } catch let error as RelayClientError {
            #expect(error == .connectionLost("no answer within 1 s"))
        }
        await #expect(throws: RelayClientError.connectionLost("no answer within 1 s")) {
            _ = try await connection.request(.fetchNotices(after: 0))
        }
        await connection.close()
        try await silent.channel.close()
    }

    /// `withConnection` closes the connection when its body returns, and when it throws (the error comes out).
    @Test func withConnectionClosesWhenItsBodyEnds() async throws {
        try await withStopping(try await FileRelay()) { relay in
            let kept = try await RelayConnection.withConnection(host: "127.0.0.1", port: relay.port, tls: try Self.clientTLS()) {
                connection in
                try await connection.login(as: relay.gp.handle, identity: relay.gp.key)
                #expect(try await connection.request(.fetchNotices(after: 0)) == .notices([]))
                return connection
            }
            await #expect(throws: RelayClientError.connectionLost("closed by the client")) {
                _ = try await kept.request(.fetchNotices(after: 0))
            }
            struct Stop: Error {}
            await #expect(throws: Stop.self) {
                try await RelayConnection.withConnection(host: "127.0.0.1", port: relay.port, tls: try Self.clientTLS()) { _ in
                    throw Stop()
                }
            }
        }
    }

    @Test func aWrongPinFailsTheHandshakeAndAFailedLoginIsTyped() async throws {
        try await withStopping(try await FileRelay()) { relay in
            let stranger = try TLSIdentity.selfSigned(names: ["localhost"]).certificate.publicKeyFingerprint
            await #expect(throws: TLSError.self) {
                _ = try await RelayConnection.open(host: "127.0.0.1", port: relay.port, tls: try Self.clientTLS(pin: stranger))
            }
            let connection = try await RelayConnection.open(host: "127.0.0.1", port: relay.port, tls: try Self.clientTLS())
            do {
                try await connection.login(as: relay.gp.handle, identity: SigningKey())
                Issue.record("a login with the wrong key was accepted")
            } catch let error as RelayClientError {
                #expect(error.relayCode == .loginFailed)
            }
            // The relay closed after the failed login: the next request fails at once.
            await #expect(throws: RelayClientError.self) { _ = try await connection.request(.fetchNotices(after: 0)) }
        }
    }

    @Test func aRelayThatGoesAwayFailsOutstandingRequests() async throws {
        let relay = try await FileRelay()
        let connection = try await RelayConnection.open(host: "127.0.0.1", port: relay.port, tls: try Self.clientTLS())
        try await connection.login(as: relay.gp.handle, identity: relay.gp.key)
        await relay.stop()
        do {
            _ = try await connection.request(.fetchNotices(after: 0), timeout: .seconds(10))
            Issue.record("a stopped relay answered")
        } catch let error as RelayClientError {
            guard case .connectionLost = error else {
                Issue.record("expected connectionLost, got \(error)")
                return
            }
        }
        await #expect(throws: RelayClientError.self) {
            _ = try await RelayConnection.open(host: "127.0.0.1", port: relay.port, tls: try Self.clientTLS())
        }
    }
}

/// A TLS listener on 127.0.0.1 that sends each connection a login challenge, then reads frames and answers none.
struct SilentRelay {
    let channel: any Channel
    var port: Int { channel.localAddress!.port! }

    static func start() async throws -> SilentRelay {
        let tls = try TLSContext(
            configuration: .server(identity: FileRelay.identity, applicationProtocols: [RelayTransport.applicationProtocol])
        )
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(TLSHandler(context: tls))
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder()))
                    try sync.addHandler(MessageToByteHandler(FrameEncoder()))
                    try sync.addHandler(Silence())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return SilentRelay(channel: channel)
    }

    final class Silence: ChannelInboundHandler {
        typealias InboundIn = Frame
        typealias OutboundOut = Frame

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is TLSHandshakeCompletedEvent {
                context.writeAndFlush(wrapOutboundOut(RelayMessage.challenge(.random()).frame(requestID: 0)), promise: nil)
            }
            context.fireUserInboundEventTriggered(event)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    }
}
