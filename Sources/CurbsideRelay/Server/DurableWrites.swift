import CurbsideWire
import NIOCore

/// Messages to write once a transaction is durable — the pushes and answers of a batch of sends — gathered so that each
/// channel gets its share in one task on its own event loop: every message encoded into its frame and written there,
/// then one flush (one TLS record, one system call), where a `writeAndFlush` per frame would cost each of those per
/// frame.
///
/// Filled and flushed on the thread that saw the commit finish (GRDB's writer for SQLite), so that nothing between
/// the commit and the socket waits for a task or an actor to be scheduled; the encoding is left to the event loops,
/// as that thread is the one every commit goes through.
public struct DurableWrites: Sendable {
    private var pending: [(channel: any Channel, messages: [(RelayMessage, requestID: UInt32)])] = []
    private var afterwards: [@Sendable () -> Void] = []

    package init() {}

    /// Adds `message`, as the frame of request `requestID`, to what `flush()` writes to `channel`, after the messages
    /// added for it before.
    mutating func write(_ message: RelayMessage, requestID: UInt32, to channel: any Channel) {
        // A batch touches a handful of channels: a linear search beats hashing them.
        if let index = pending.firstIndex(where: { $0.channel === channel }) {
            pending[index].messages.append((message, requestID))
        } else {
            pending.append((channel, [(message, requestID)]))
        }
    }

    /// Runs `body` once `flush()` has handed every channel its frames: whatever it lets happen next is written
    /// after them.
    mutating func afterFlush(_ body: @escaping @Sendable () -> Void) {
        afterwards.append(body)
    }

    /// Hands each channel its frames, on its event loop, without waiting for them to be written; then runs what
    /// `afterFlush` was given.
    func flush() {
        for (channel, messages) in pending {
            if channel.eventLoop.inEventLoop {
                Self.write(messages, to: channel)
            } else {
                channel.eventLoop.execute { Self.write(messages, to: channel) }
            }
        }
        for body in afterwards { body() }
    }

    private static func write(_ messages: [(RelayMessage, requestID: UInt32)], to channel: any Channel) {
        for (message, requestID) in messages { channel.write(message.frame(requestID: requestID), promise: nil) }
        channel.flush()
    }
}
