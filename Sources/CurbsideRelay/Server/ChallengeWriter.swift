import CurbsideTLS
import CurbsideWire
import NIOConcurrencyHelpers
import NIOCore

/// Writes the connection's login challenge (spec/relay.md §Login) as soon as the TLS handshake completes, on the
/// event loop, and keeps the handshake's details for the session. A bound login read with the handshake's end
/// leaves the challenge unflushed, for the session's answer to carry.
///
/// The session's task used to wait for the handshake and then write the challenge, two hops between the event loop
/// and the task before the client could start its login; now the challenge goes out in the same step as the
/// handshake's end, and the task wakes first for the login itself.
final class ChallengeWriter: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias InboundOut = Frame
    typealias OutboundOut = Frame

    private let challenge: LoginChallenge
    private let handshake: HandshakeDetails
    /// The challenge is written but not flushed yet.
    private var challengeUnflushed = false

    init(_ challenge: LoginChallenge, handshake: HandshakeDetails) {
        self.challenge = challenge
        self.handshake = handshake
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Kept before the challenge goes out, and so before any frame of the client's can arrive.
        if let info = event as? TLSHandshakeCompletedEvent, handshake.set(info) {
            // Flushed once this read is processed, unless a bound login came with the client's Finished: a client
            // that sent one needs no challenge, which then leaves with the login's answer, in one write and one
            // record (spec/relay.md §Bound login).
            context.write(wrapOutboundOut(RelayMessage.challenge(challenge).frame(requestID: 0)), promise: nil)
            challengeUnflushed = true
            context.eventLoop.assumeIsolated().execute {
                guard self.challengeUnflushed else { return }
                self.challengeUnflushed = false
                context.flush()
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // The session answers a bound login whatever the outcome (login_accepted, or an error frame before it closes),
        // and its write flushes the challenge.
        if challengeUnflushed, unwrapInboundIn(data).type == RelayMessage.FrameType.boundLogin.rawValue {
            challengeUnflushed = false
        }
        context.fireChannelRead(data)
    }
}

@available(*, unavailable)
extension ChallengeWriter: Sendable {}

/// The details of a connection's completed TLS handshake, set once on its event loop and read by its session, which
/// reads them only after a frame came (frames come only after the handshake) or after the connection ended.
final class HandshakeDetails: Sendable {
    private let details = NIOLockedValueBox<TLSHandshakeCompletedEvent?>(nil)

    /// Keeps the first handshake's details; false if there were some already.
    func set(_ info: TLSHandshakeCompletedEvent) -> Bool {
        details.withLockedValue { details in
            guard details == nil else { return false }
            details = info
            return true
        }
    }

    /// The details, nil if the handshake has not completed (or failed).
    var completed: TLSHandshakeCompletedEvent? { details.withLockedValue { $0 } }
}
