import NIOCore

/// Completes `handshake` with the TLS handshake's details, or fails it if the connection ends first.
public final class HandshakeObserver: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    let handshake: EventLoopPromise<TLSHandshakeCompletedEvent>
    private var done = false

    public init(_ handshake: EventLoopPromise<TLSHandshakeCompletedEvent>) {
        self.handshake = handshake
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let info = event as? TLSHandshakeCompletedEvent, !done {
            done = true
            handshake.succeed(info)
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done {
            done = true
            handshake.fail(error)
        }
        context.fireErrorCaught(error)
    }

    /// A channel that never became active (its connect failed) is torn down without `channelInactive`.
    public func handlerRemoved(context: ChannelHandlerContext) {
        if !done {
            done = true
            handshake.fail(TLSError(.closed, "the connection closed before the handshake completed"))
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            handshake.fail(TLSError(.closed, "the connection closed before the handshake completed"))
        }
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension HandshakeObserver: Sendable {}
