import CurbsideTLS
import CurbsideWire
import NIOCore

/// The handlers of a relay connection, the same on the relay's side and the client's (spec/transport.md,
/// spec/relay.md §Framing): TLS, then frames.
public enum RelayPipeline {
    /// Adds to `channel` TLS with `tls`, an observer of its handshake, `frameDecoder` and a `FrameEncoder`, then
    /// `handlers` in order, and wraps the channel for async code.
    ///
    /// Call it where the channel is set up, on its event loop (a bootstrap's channel initializer). The returned
    /// future completes with the handshake's details, or fails if the connection ends or fails first.
    public static func configure(
        _ channel: any Channel,
        tls: TLSContext,
        frameDecoder: FrameDecoder,
        then handlers: [any ChannelHandler] = []
    ) throws -> (channel: NIOAsyncChannel<Frame, Frame>, handshake: EventLoopFuture<TLSHandshakeCompletedEvent>) {
        let handshake = channel.eventLoop.makePromise(of: TLSHandshakeCompletedEvent.self)
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(TLSHandler(context: tls))
        try sync.addHandler(HandshakeObserver(handshake))
        try sync.addHandler(ByteToMessageHandler(frameDecoder))
        try sync.addHandler(MessageToByteHandler(FrameEncoder()))
        try sync.addHandlers(handlers)
        return (try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel), handshake.futureResult)
    }
}
