import CurbsideWire
import Foundation
import NIOCore

/// Which handles have a logged-in connection now, so a stored envelope or a notice can be pushed at once.
actor ConnectedClients {
    private var writers: [Handle: [UUID: NIOAsyncChannelOutboundWriter<Frame>]] = [:]

    func add(_ handle: Handle, id: UUID, writer: NIOAsyncChannelOutboundWriter<Frame>) {
        writers[handle, default: [:]][id] = writer
    }

    func remove(_ handle: Handle, id: UUID) {
        writers[handle]?[id] = nil
        if writers[handle]?.isEmpty == true { writers[handle] = nil }
    }

    private func writers(for handle: Handle) -> [NIOAsyncChannelOutboundWriter<Frame>] {
        Array(writers[handle]?.values ?? [:].values)
    }

    /// Sends `message` (request id 0) to every connection of `handle`; a connection that fails is skipped; the
    /// envelope or notice stays stored either way.
    func push(_ message: RelayMessage, to handle: Handle) async {
        let frame = message.frame(requestID: 0)
        for writer in writers(for: handle) {
            try? await writer.write(frame)
        }
    }
}
