import CurbsideWire
import Foundation

extension Client {
    /// Tells the relay to forget the uploads of cancelled messages (`abandon_upload`, spec/relay.md §Attachments),
    /// oldest first; each is crossed off once the relay has answered. A relay older than the operation leaves them to
    /// expire by themselves, and they are crossed off too.
    ///
    /// - Throws: the network failure that stopped it; what is not crossed off is tried at the next connection.
    func abandonUploads(_ connection: RelayConnection) async throws {
        let ids = try await database.writer.read { db in try AbandonedUploadStore.all(db) }
        for id in ids {
            do {
                let answer = try await connection.request(.abandonUpload(attachmentID: id))
                guard answer == .uploadAbandoned else {
                    throw ClientError(.protocolViolation, "the relay answered abandon_upload with \(answer.frameType)")
                }
            } catch let error as RelayClientError {
                guard case .refused(let refusal) = error, refusal.code == .unknownFrameType else { throw clientError(error) }
            }
            try await database.writer.write { db in try AbandonedUploadStore.remove(db, id) }
        }
    }

    /// Right after a cancellation: tells the relay to forget the cancelled messages' uploads, giving up after
    /// `limit` (a person who pressed Ctrl-C is not kept waiting). Whatever is left goes at the next sync.
    ///
    /// - Returns: whether the relay now knows of every one.
    @discardableResult
    public func abandonCancelledUploads(within limit: Duration = .seconds(3)) async -> Bool {
        let pending = (try? await database.writer.read { db in try AbandonedUploadStore.all(db) }) ?? []
        guard !pending.isEmpty else { return true }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                do {
                    try await self.exclusively { try await self.withConnection { connection in try await self.abandonUploads(connection) } }
                    return true
                } catch {
                    return false
                }
            }
            group.addTask {
                try? await Task.sleep(for: limit)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }
}
