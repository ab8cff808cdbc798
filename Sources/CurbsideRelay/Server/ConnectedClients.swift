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

    /// One logged-in connection: its channel, and the identity key it logged in with (to close it once the account is
    /// revoked or its key replaced).
    struct Connection {
        let channel: any Channel
        let key: VerifyingKey
    }

    private var channels: [Handle: [UUID: Connection]] = [:]
    private var pushed: [PushKey: ContinuousClock.Instant] = [:]
    private var lastPrune = ContinuousClock.now
    /// How long a push is remembered: longer than the fan-out's catch-up looks back.
    static let memory: Duration = .seconds(180)

    func add(_ handle: Handle, id: UUID, channel: any Channel, key: VerifyingKey) {
        channels[handle, default: [:]][id] = Connection(channel: channel, key: key)
    }

    func remove(_ handle: Handle, id: UUID) {
        channels[handle]?[id] = nil
        if channels[handle]?.isEmpty == true { channels[handle] = nil }
    }

    /// The handles with a connection now.
    var handles: [Handle] { Array(channels.keys) }

    /// Whether `handle` has a connection now.
    func isConnected(_ handle: Handle) -> Bool { channels[handle] != nil }

    /// Sends `message` (request id 0) to every writable connection of `handle`, without waiting. Encoded only when
    /// there is one: most sends go to a recipient not connected, and encoding a 1 KiB envelope into its frame cost
    /// about 5,000 instructions.
    func push(_ message: RelayMessage, to handle: Handle) {
        guard let connections = channels[handle]?.values else { return }
        var frame: Frame?
        for connection in connections where connection.channel.isWritable {
            let encoded = frame ?? message.frame(requestID: 0)
            frame = encoded
            connection.channel.writeAndFlush(encoded, promise: nil)
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

    /// The identity keys the connections of each handle logged in with.
    var loginKeys: [Handle: [UUID: VerifyingKey]] { channels.mapValues { $0.mapValues(\.key) } }

    /// Tells the connections `ids` of `handle` `error` (request id 0) and closes each once the frame is written; the
    /// sessions then end as for any closed connection.
    func close(_ ids: [UUID], of handle: Handle, with error: RelayError) {
        let frame = RelayMessage.error(error).frame(requestID: 0)
        for id in ids {
            guard let channel = channels[handle]?[id]?.channel else { continue }
            channel.writeAndFlush(frame).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
