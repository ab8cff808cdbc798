import CurbsideWire
import Foundation
import NIOCore

/// Which handles have a logged-in connection now, so a stored envelope or a notice can be pushed at once.
///
/// A push never waits: it is written only to connections that are writable and dropped for the others (a push is
/// a courtesy; the envelope or notice stays stored until fetched). So a client that stops reading cannot hold up
/// the sender, another account or the expiry sweeper.
actor ConnectedClients {
    private var channels: [Handle: [UUID: any Channel]] = [:]

    func add(_ handle: Handle, id: UUID, channel: any Channel) {
        channels[handle, default: [:]][id] = channel
    }

    func remove(_ handle: Handle, id: UUID) {
        channels[handle]?[id] = nil
        if channels[handle]?.isEmpty == true { channels[handle] = nil }
    }

    /// Sends `message` (request id 0) to every writable connection of `handle`, without waiting.
    func push(_ message: RelayMessage, to handle: Handle) {
        let frame = message.frame(requestID: 0)
        for channel in channels[handle]?.values ?? [:].values where channel.isWritable {
            channel.writeAndFlush(frame, promise: nil)
        }
    }
}
