import CurbsideWire
import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// Which handles have a logged-in connection now, so a stored envelope or a notice can be pushed at once.
///
/// A push never waits: it is written only to connections that are writable and dropped for the others (a push is
/// a courtesy; the envelope or notice stays stored until fetched). So a client that stops reading cannot hold up
/// the sender, another account or the expiry sweeper.
///
/// Pushes of stored envelopes and notices are remembered by sequence for a few minutes, so that one arriving twice
/// (pushed by this process, then found again by the PostgreSQL fan-out's catch-up) goes out once.
final class ConnectedClients: Sendable {
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

    private struct State {
        var channels: [Handle: [UUID: Connection]] = [:]
        /// What was pushed within `memory`, and when, oldest first: forgotten a few at a time as they age, so that no
        /// push waits for a sweep of the whole memory (it holds `memory` seconds of pushes, and runs on the store's
        /// writer for a send's push).
        var pushed: Set<PushKey> = []
        var pushedInOrder = CircularBuffer<(key: PushKey, at: ContinuousClock.Instant)>()

        /// The writable connections of `handle`, and `key` recorded as pushed to them; none if it was pushed within
        /// `memory`. A push that finds no writable connection is not recorded: pushed later (by the fan-out's
        /// catch-up, once the client is connected or reads again), it is pushed once all the same.
        mutating func channels(pushing key: PushKey, to handle: Handle) -> [any Channel] {
            let now = ContinuousClock.now
            while let oldest = pushedInOrder.first, now - oldest.at >= ConnectedClients.memory {
                pushed.remove(pushedInOrder.removeFirst().key)
            }
            guard !pushed.contains(key) else { return [] }
            let writable = writableChannels(of: handle)
            if !writable.isEmpty {
                pushed.insert(key)
                pushedInOrder.append((key, now))
            }
            return writable
        }

        func writableChannels(of handle: Handle) -> [any Channel] {
            channels[handle]?.values.compactMap { $0.channel.isWritable ? $0.channel : nil } ?? []
        }
    }

    // A lock, not an actor: a send's push is written from the thread that saw its commit finish (GRDB's writer; see
    // DurableWrites), where awaiting an actor would bring back the hop to a task that writing from there removes.
    // Each section is a dictionary lookup or update; nothing is encoded or written under the lock.
    private let state = NIOLockedValueBox(State())
    /// How long a push is remembered: longer than the fan-out's catch-up looks back.
    static let memory: Duration = .seconds(180)

    func add(_ handle: Handle, id: UUID, channel: any Channel, key: VerifyingKey) {
        state.withLockedValue { $0.channels[handle, default: [:]][id] = Connection(channel: channel, key: key) }
    }

    func remove(_ handle: Handle, id: UUID) {
        state.withLockedValue { state in
            state.channels[handle]?[id] = nil
            if state.channels[handle]?.isEmpty == true { state.channels[handle] = nil }
        }
    }

    /// The handles with a connection now.
    var handles: [Handle] { state.withLockedValue { Array($0.channels.keys) } }

    /// Whether `handle` has a connection now.
    func isConnected(_ handle: Handle) -> Bool { state.withLockedValue { $0.channels[handle] != nil } }

    /// Sends `message` (request id 0) to every writable connection of `handle`, without waiting. Encoded only when
    /// there is one: most sends go to a recipient not connected, and encoding a 1 KiB envelope into its frame cost
    /// about 5,000 instructions.
    func push(_ message: RelayMessage, to handle: Handle) {
        write(message, to: state.withLockedValue { $0.writableChannels(of: handle) })
    }

    /// As `push`, unless `key` was pushed within `memory`.
    func push(_ message: RelayMessage, to handle: Handle, once key: PushKey) {
        write(message, to: state.withLockedValue { $0.channels(pushing: key, to: handle) })
    }

    /// As `push(_:to:once:)`, but the message joins `writes`, to be encoded and written on each channel's event loop
    /// with the rest of a commit's.
    func push(_ message: RelayMessage, to handle: Handle, once key: PushKey, into writes: inout DurableWrites) {
        let channels = state.withLockedValue { $0.channels(pushing: key, to: handle) }
        for channel in channels { writes.write(message, requestID: 0, to: channel) }
    }

    private func write(_ message: RelayMessage, to channels: [any Channel]) {
        guard !channels.isEmpty else { return }
        let frame = message.frame(requestID: 0)
        for channel in channels { channel.writeAndFlush(frame, promise: nil) }
    }

    /// The identity keys the connections of each handle logged in with.
    var loginKeys: [Handle: [UUID: VerifyingKey]] { state.withLockedValue { $0.channels.mapValues { $0.mapValues(\.key) } } }

    /// Tells the connections `ids` of `handle` `error` (request id 0) and closes each once the frame is written; the
    /// sessions then end as for any closed connection.
    func close(_ ids: [UUID], of handle: Handle, with error: RelayError) {
        let channels = state.withLockedValue { state in ids.compactMap { state.channels[handle]?[$0]?.channel } }
        let frame = RelayMessage.error(error).frame(requestID: 0)
        for channel in channels {
            channel.writeAndFlush(frame).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
