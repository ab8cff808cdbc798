import CurbsideTestSupport
import CurbsideWire
import NIOCore
import NIOEmbedded
import Testing

@testable import CurbsideRelay
@testable import CurbsideTLS

/// The challenge goes out as the handshake completes, on its own for a client that waits for it, and with the
/// login's answer for one whose bound login came with its Finished (spec/relay.md §Bound login).
@Suite("challenge writer")
struct ChallengeWriterTests {
    let challenge = LoginChallenge(nonce: [UInt8](repeating: 7, count: 32))
    let completed = TLSHandshakeCompletedEvent(
        negotiatedProtocol: "curbside/1",
        channelBinding: [UInt8](repeating: 1, count: 32),
        peerPublicKeyFingerprint: nil
    )

    private func channel() throws -> (EmbeddedChannel, FlushCounter) {
        let counter = FlushCounter()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(ChallengeWriter(challenge, handshake: HandshakeDetails()))
        return (channel, counter)
    }

    @Test func theChallengeIsFlushedOnItsOwnWhenNoBoundLoginCame() throws {
        let (channel, counter) = try channel()
        channel.pipeline.fireUserInboundEventTriggered(completed)
        channel.embeddedEventLoop.run()
        #expect(try channel.readOutbound(as: Frame.self) == RelayMessage.challenge(challenge).frame(requestID: 0))
        #expect(counter.flushes == 1)
        // A frame of a classic client, after the challenge: passed on, nothing more written.
        try channel.writeInbound(RelayMessage.loginAccepted.frame(requestID: 1))
        #expect(try channel.readInbound(as: Frame.self)?.requestID == 1)
        #expect(counter.flushes == 1)
    }

    @Test func aBoundLoginReadWithTheHandshakesEndLeavesTheChallengeForItsAnswer() throws {
        let (channel, counter) = try channel()
        let login = BoundLoginRequest(handle: try Handle("amara.gp"), channelBinding: completed.channelBinding, signedBy: SigningKey())
        channel.pipeline.fireUserInboundEventTriggered(completed)
        try channel.writeInbound(RelayMessage.boundLogin(login).frame(requestID: 1))
        channel.embeddedEventLoop.run()
        #expect(counter.flushes == 0, "the challenge waits for the answer")
        #expect(try channel.readOutbound(as: Frame.self) == nil)
        #expect(try channel.readInbound(as: Frame.self)?.type == RelayMessage.FrameType.boundLogin.rawValue)
        // The session's answer: one flush carries both, the challenge first.
        try channel.writeAndFlush(RelayMessage.loginAccepted.frame(requestID: 1)).wait()
        #expect(counter.flushes == 1)
        #expect(try channel.readOutbound(as: Frame.self) == RelayMessage.challenge(challenge).frame(requestID: 0))
        #expect(try channel.readOutbound(as: Frame.self) == RelayMessage.loginAccepted.frame(requestID: 1))
    }
}
