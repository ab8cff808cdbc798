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
        var observed = false
        do {
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(TLSHandler(context: tls))
            try sync.addHandler(HandshakeObserver(handshake))
            observed = true
            try sync.addHandler(ByteToMessageHandler(frameDecoder))
            try sync.addHandler(MessageToByteHandler(FrameEncoder()))
            try sync.addHandlers(handlers)
            return (try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel), handshake.futureResult)
        } catch {
            // A channel the peer closed before its pipeline was added (the client adds it once connected, and a relay
            // over its connection limit closes at once) refuses the handlers. Once the observer is in, it fails the
            // promise as it is removed; before, nothing would, and the promise would leak.
            if !observed { handshake.fail(error) }
            throw error
        }
    }
}
