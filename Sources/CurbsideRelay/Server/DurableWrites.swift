import CurbsideWire
import NIOCore

/// Frames to write once a transaction is durable — the pushes and answers of a batch of sends — gathered so that each
/// channel gets its share in one task on its own event loop: every frame written, then one flush (one TLS record, one
/// system call), where a `writeAndFlush` per frame would cost each of those per frame.
///
/// Filled and flushed on the thread that saw the commit finish (GRDB's writer for SQLite), so that nothing between
/// the commit and the socket waits for a task or an actor to be scheduled.
public struct DurableWrites: Sendable {
    private var pending: [(channel: any Channel, frames: [Frame])] = []

    package init() {}

    /// Adds `frame` to what `flush()` writes to `channel`, after the frames added for it before.
    mutating func write(_ frame: Frame, to channel: any Channel) {
        // A batch touches a handful of channels: a linear search beats hashing them.
        if let index = pending.firstIndex(where: { $0.channel === channel }) {
            pending[index].frames.append(frame)
        } else {
            pending.append((channel, [frame]))
        }
    }

    /// Hands each channel its frames, on its event loop, without waiting for them to be written.
    func flush() {
        for (channel, frames) in pending {
            if channel.eventLoop.inEventLoop {
                Self.write(frames, to: channel)
            } else {
                channel.eventLoop.execute { Self.write(frames, to: channel) }
            }
        }
    }

    private static func write(_ frames: [Frame], to channel: any Channel) {
        for frame in frames { channel.write(frame, promise: nil) }
        channel.flush()
    }
}
