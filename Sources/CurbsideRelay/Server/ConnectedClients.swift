import CurbsideWire
import Foundation
import NIOCore

/// Which handles have a logged-in connection now, so a stored envelope or a notice can be pushed at once.
///
/// A push never waits: it is written only to connections that are writable and dropped for the others (a push is
/// a courtesy; the envelope or notice stays stored until fetched). So a client that stops reading cannot hold up
/// the sender, another account or the expiry sweeper.
///
/// Pushes of stored envelopes and notices are remembered by sequence for a few minutes, so that one arriving twice
/// (pushed by this process, then found again by the PostgreSQL fan-out's catch-up) goes out once.
actor ConnectedClients {
    /// What a push is about, for pushing each once.
    enum PushKey: Hashable {
        case envelope(Int64)
        case notice(Int64)
    }

    private var channels: [Handle: [UUID: any Channel]] = [:]
    private var pushed: [PushKey: ContinuousClock.Instant] = [:]
    private var lastPrune = ContinuousClock.now
    /// How long a push is remembered: longer than the fan-out's catch-up looks back.
    static let memory: Duration = .seconds(180)

    func add(_ handle: Handle, id: UUID, channel: any Channel) {
        channels[handle, default: [:]][id] = channel
    }

    func remove(_ handle: Handle, id: UUID) {
        channels[handle]?[id] = nil
        if channels[handle]?.isEmpty == true { channels[handle] = nil }
    }

    /// The handles with a connection now.
    var handles: [Handle] { Array(channels.keys) }

    /// Whether `handle` has a connection now.
    func isConnected(_ handle: Handle) -> Bool { channels[handle] != nil }

    /// Sends `message` (request id 0) to every writable connection of `handle`, without waiting.
    func push(_ message: RelayMessage, to handle: Handle) {
        let frame = message.frame(requestID: 0)
        for channel in channels[handle]?.values ?? [:].values where channel.isWritable {
            channel.writeAndFlush(frame, promise: nil)
        }
    }

    /// As `push`, unless `key` was pushed within `memory`; records it either way.
    func push(_ message: RelayMessage, to handle: Handle, once key: PushKey) {
        let now = ContinuousClock.now
        if now - lastPrune > .seconds(10) {
            pushed = pushed.filter { now - $0.value < Self.memory }
            lastPrune = now
        }
        guard pushed.updateValue(now, forKey: key) == nil else { return }
        push(message, to: handle)
    }
}
