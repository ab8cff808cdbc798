import CurbsideWire
import NIOCore
import NIOEmbedded

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

    /// A testing channel of frames with a counter in its pipeline, and the same channel as an async channel (what
    /// relay and client code write to). Frames written come out of `channel.readOutbound(as: Frame.self)`.
    public static func framedChannel() async throws
        -> (channel: NIOAsyncTestingChannel, async: NIOAsyncChannel<Frame, Frame>, counter: FlushCounter)
    {
        let channel = NIOAsyncTestingChannel()
        let counter = FlushCounter()
        try await channel.pipeline.addHandler(counter)
        let wrapped = try await channel.eventLoop.submit {
            try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel)
        }.get()
        return (channel, wrapped, counter)
    }

    /// How many flushes have passed, read on the channel's event loop.
    public func count(on channel: NIOAsyncTestingChannel) async throws -> Int {
        try await channel.eventLoop.submit { self.flushes }.get()
    }
}
