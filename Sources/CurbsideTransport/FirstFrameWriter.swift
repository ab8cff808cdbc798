import CurbsideTLS
import CurbsideWire
import NIOCore

/// Writes a client's first frame the moment the TLS handshake completes, on the event loop, with what the
/// handshake gave (a bound login signs its channel binding: spec/relay.md §Bound login).
///
/// Written there, the frame leaves with the client's Finished in one system call (`TLSHandler` flushes its last flight
/// after the handshake's event), so the relay reads the handshake's end and the login together; written by the task
/// that awaited the handshake, it would follow a thread hop later, in a segment of its own.
final class FirstFrameWriter: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias InboundOut = Frame
    typealias OutboundOut = Frame

    private var make: (@Sendable (TLSHandshakeCompletedEvent) -> Frame)?

    init(_ make: @escaping @Sendable (TLSHandshakeCompletedEvent) -> Frame) {
        self.make = make
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let info = event as? TLSHandshakeCompletedEvent, let make {
            self.make = nil
            context.writeAndFlush(wrapOutboundOut(make(info)), promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}

@available(*, unavailable)
extension FirstFrameWriter: Sendable {}
