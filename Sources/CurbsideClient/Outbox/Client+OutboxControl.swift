import CurbsideWire
import Foundation
import GRDB

extension Client {
    /// What waits in the outbox, oldest first: recipient, subject, size and why the last attempt failed.
    public func outbox() async throws -> [OutboxItem] {
        let rows = try database.writer.read { db in try OutboxStore.listing(db) }
        return try rows.map { row in
            let id = try MessageID(rawValue: Array(row["message_id"] as Data))
            let body: Data = row["body"]
            let content = try Content(decoding: try database.unseal(body, column: "message.body", row: id.rawValue))
            return OutboxItem(
                id: id.description,
                recipient: row["recipient"],
                kind: MessageKind(content.kind),
                title: Self.title(of: content),
                queuedAt: UInt64(clamping: row["queued_at"] as Int64),
                bytes: UInt64(body.count) + UInt64(clamping: row["attachment_bytes"] as Int64),
                attachments: row["attachments"],
                attempts: row["attempts"],
                lastError: row["last_error"],
                lastErrorCode: (row["last_error_code"] as Int64?).map { UInt16(truncatingIfNeeded: $0) },
                sending: (row["sending_at"] as Int64?) != nil
            )
        }
    }

    /// Withdraws queued message `id` before the relay stores it: the message, its timeline and its encrypted
    /// attachments are deleted, so no later flush (by this process or another) can send it.
    ///
    /// A message whose `send` request went to the relay without an answer yet may be stored already: with
    /// `evenIfSending` false it is left alone (`.sending`), with true it is deleted here all the same
    /// (`.cancelledButMayBeStored`). A message the relay stored is never changed (`.alreadyStored`): it cannot be
    /// recalled. The relay is asked to forget the message's uploads (`abandon_upload`) by ``abandonCancelledUploads(within:)``
    /// or, failing that, at the next sync.
    public func cancelQueued(_ id: MessageID, evenIfSending: Bool = true) async throws -> OutboxCancellation {
        let (outcome, files) = try await database.writer.write { db -> (OutboxCancellation, [String]) in
            guard let sending = try OutboxStore.sendingMark(db, id) else {
                let message = try MessageStore.message(db, id)
                if message?.direction == .outgoing, try EventStore.contains(db, id, .stored) {
                    return (.alreadyStored, [])
                }
                return (.notQueued, [])
            }
            if sending, !evenIfSending { return (.sending, []) }
            // The relay is told to forget what was uploaded for it (it keeps anything a stored envelope names).
            let attachments = try AttachmentStore.attachments(db, of: id)
            try AbandonedUploadStore.add(db, attachments.map(\.sha256) + attachments.compactMap(\.provisional?.id), at: .now())
            try OutboxStore.remove(db, id)
            let files = try AttachmentStore.deleteAll(db, of: id)
            try EventStore.deleteAll(db, of: id)
            try MessageStore.delete(db, id)
            return (sending ? .cancelledButMayBeStored : .cancelled, files)
        }
        for file in files { unlink(file) }
        if outcome == .cancelled || outcome == .cancelledButMayBeStored {
            logger.info("outbox: \(id) cancelled (\(outcome.rawValue))")
        }
        return outcome
    }

    /// From now on this client queues nothing and sends no queued message to the relay; an encryption or upload
    /// under way stops at its next chunk. For Ctrl-C: call it, then ``cancelQueued(_:evenIfSending:)``.
    ///
    /// Whether a message can still be withdrawn is decided in the profile database: a `send` request goes out
    /// only after its outbox entry is marked in a transaction that first checks this flag, and a message is queued
    /// only in a transaction that checks it too, so once this returns, nothing not yet marked will reach the relay.
    public nonisolated func stopSending() {
        sendingStopped.withLock { $0 = true }
    }

    /// Throws `CancellationError` once ``stopSending()`` was called.
    nonisolated func checkSendingAllowed() throws {
        if sendingStopped.withLock({ $0 }) { throw CancellationError() }
    }

    /// Calls `handler` each time a queued message leaves the outbox because the relay stored it, whichever call
    /// flushed it (a send, a sync, an inbox, a show's receipt, a watch).
    public nonisolated func onSent(_ handler: (@Sendable (OutboxItem) -> Void)?) {
        sentHandler.withLock { $0 = handler }
    }

    /// Tells the `onSent` handler, if any, that `entry` was stored.
    func announceSent(_ entry: OutboxEntry) {
        guard let handler = sentHandler.withLock({ $0 }) else { return }
        let content = try? Content(
            decoding: try database.unseal(entry.body, column: "message.body", row: entry.id.rawValue)
        )
        handler(
            OutboxItem(
                id: entry.id.description,
                recipient: entry.recipient,
                kind: entry.kind,
                title: content.map(Self.title(of:)) ?? "",
                queuedAt: UInt64(clamping: entry.createdAt),
                bytes: UInt64(entry.body.count),
                attachments: 0,
                attempts: Int(entry.attempts),
                lastError: nil,
                lastErrorCode: nil,
                sending: false
            )
        )
    }

    /// A line that names a message for people: a consult's subject, a reply's first line, a receipt's subject.
    static func title(of content: Content) -> String {
        switch content {
        case .consult(let consult): consult.subject
        case .reply(let reply): String(reply.text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
        case .receipt(let receipt):
            "\(receipt.kind) receipt for \(receipt.messageID)" + (receipt.failure.map { ": \($0.reason)" } ?? "")
        }
    }
}
