import CurbsideWire
import NIOCore

/// Passes frames through and counts the flushes that follow them, for tests of writers that batch: each flush is a
/// socket write (and a TLS record boundary) on a real connection. Read `flushes` on the channel's event loop.
public final class FlushCounter: ChannelOutboundHandler, @unchecked Sendable {
    public typealias OutboundIn = Frame
    public typealias OutboundOut = Frame

    public private(set) var flushes = 0

    public init() {}

    public func flush(context: ChannelHandlerContext) {
        flushes += 1
        context.flush()
    }
}
