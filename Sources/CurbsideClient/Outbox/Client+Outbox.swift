import CurbsideWire
import Foundation
import GRDB

extension Client {
    /// Records an outgoing message and queues it; the next sync seals and sends it.
    func queue(
        _ content: Content,
        to recipient: Handle,
        id: MessageID = .random(),
        thread: ThreadID? = nil,
        prepared: [(PreparedAttachment, AttachmentSource)] = [],
        now: Timestamp = .now()
    ) async throws -> MessageID {
        let database = self.database
        try await database.writer.write { db in
            // Checked in the transaction: after `stopSending()` and a `cancelQueued` nothing can be queued behind them.
            try self.checkSendingAllowed()
            try Self.queue(db, database, content, to: recipient, id: id, thread: thread, now: now)
            try Self.insertAttachments(db, database, prepared, for: id)
        }
        return id
    }

    /// Queues inside a transaction the caller holds (so a received message and its receipt are saved together).
    static func queue(
        _ db: Database,
        _ database: ProfileDatabase,
        _ content: Content,
        to recipient: Handle,
        id: MessageID,
        thread: ThreadID?,
        now: Timestamp
    ) throws {
        let body = try database.seal(content.encoded, column: "message.body", row: id.rawValue)
        try MessageStore.insertOutgoing(db, id, thread: thread ?? id, to: recipient, kind: content.kind, at: now, body: body)
        try OutboxStore.add(db, id, to: recipient, at: now)
        if content.kind != .receipt { try EventStore.add(db, database, id, .created, at: now) }
    }

    /// Automatic receipts that cannot be delivered are given up after this many attempts.
    static let receiptAttempts = 50

    /// Seals (once) and sends queued messages, oldest first: all of them, or with `through`, those queued up to and
    /// including that message. Returns what happened to each one tried, in order.
    ///
    /// A relay that cannot be talked to ends the flush (the connection is gone, or the relay cannot serve now): it
    /// is the last message's result and the flush's `interruption`, and the messages after it are not tried. A
    /// recipient whose published keys expired holds up only the messages to it. Any other failure of one message is recorded on it
    /// and the flush goes on, so one contact can never hold up the rest. Nothing leaves the outbox except by being
    /// stored on the relay, an automatic receipt given up, or the user's own decision.
    func flushOutbox(_ connection: RelayConnection, through last: MessageID? = nil) async throws -> OutboxFlush {
        let database = self.database
        let entries = try await database.writer.read { db in try OutboxStore.entries(db) }
        var flush = OutboxFlush()
        for entry in entries {
            let id = entry.id
            let result = try await deliver(entry, connection: connection)
            flush.record(id, kind: entry.kind, result)
            if case .queued(let error) = result, error.meansRelayUnavailable {
                flush.interruption = error
                break
            }
            if id == last { break }
        }
        flush.remaining = try await database.writer.read { db in try OutboxStore.count(db) }
        return flush
    }

    /// Seals (once) and sends one outbox entry, and records how it went.
    private func deliver(_ entry: OutboxEntry, connection: RelayConnection) async throws -> DeliveryResult {
        let database = self.database
        let id = entry.id
        let recipient = try Handle(entry.recipient)
        do {
            let (envelope, attachmentIDs) = try await envelope(for: entry, recipient: recipient, connection: connection)
            // The point of no return: marked in the outbox first (unless stopped or cancelled meanwhile), so a
            // cancellation can tell a message the relay may hold from one it cannot have.
            let request = try SendRequest(recipient: recipient, envelope: envelope, attachments: attachmentIDs)
            let now = Timestamp.now()
            let marked = try await database.writer.write { db in
                try self.checkSendingAllowed()
                return try OutboxStore.markSending(db, id, at: now)
            }
            guard marked else { return .abandoned(ClientError(.unknownMessage, "message \(id) was cancelled before it was sent")) }
            let reply: RelayMessage
            do {
                reply = try await connection.request(.send(request))
            } catch let error as RelayClientError {
                // A refusal means the relay did not store it; a lost connection leaves the question open.
                if case .refused = error { try await database.writer.write { db in try OutboxStore.clearSending(db, id) } }
                throw clientError(error)
            }
            guard case .stored(let stored) = reply else { throw ClientError(.protocolViolation, "the relay did not answer stored") }
            try await database.writer.write { db in
                try OutboxStore.remove(db, id)
                try MessageStore.setEnvelopeID(db, id, stored.envelopeID)
                if try !EventStore.contains(db, id, .stored) {
                    try EventStore.add(db, database, id, .stored, at: stored.storedAt)
                }
            }
            announceSent(entry)
            return .stored(stored)
        } catch let error as ClientError where error.category == .network {
            try await recordAttempt(id, error)
            return .queued(error)
        } catch let error as CancellationError {
            throw error  // stopSending(): the message is not sent now, and nothing is recorded against it
        } catch {
            // A value that does not decode or open is this profile's damage, not the relay's.
            let failure = error as? ClientError ?? ClientError(.profileDamaged, "\(error)")
            logger.info("outbox: \(id) to \(recipient) waits: \(failure.code) \(failure.message)")
            if entry.kind == .receipt, entry.attempts + 1 >= Self.receiptAttempts {
                try await database.writer.write { db in try OutboxStore.remove(db, id) }
                return .abandoned(failure)
            }
            try await recordAttempt(id, failure)
            return failure.category == .trust ? .queued(failure) : .refused(failure)
        }
    }

    /// Records a failed attempt: the sentence for people, the codes for decisions.
    func recordAttempt(_ id: MessageID, _ error: ClientError) async throws {
        try await database.writer.write { db in try OutboxStore.recordAttempt(db, id, error) }
    }

    /// The envelope of an outbox entry: sealed once and kept, so every resend is the same envelope (the relay stores
    /// it once). If another process sealed it first, its envelope wins.
    private func envelope(for entry: OutboxEntry, recipient: Handle, connection: RelayConnection) async throws
        -> (envelope: [UInt8], attachments: [[UInt8]])
    {
        // Attachments go up first (resuming where an earlier attempt stopped); the send names them.
        let id = entry.id
        let descriptors = try await uploadedDescriptors(for: id, connection: connection)
        let attachmentIDs = descriptors.map(\.sha256)
        if let sealed = entry.envelope { return (Array(sealed), attachmentIDs) }
        let content = try Content(decoding: try database.unseal(entry.body, column: "message.body", row: id.rawValue))
        var toChangedKey = false
        if case .receipt(let receipt) = content, receipt.failure?.reason == .untrustedSender { toChangedKey = true }
        let bundle = try await trustedBundle(connection, for: recipient, toChangedKey: toChangedKey)
        let message = try Message(
            sender: me,
            recipient: bundle.owner,
            id: id,
            threadID: entry.threadID,
            createdAt: Timestamp(millisecondsSince1970: UInt64(entry.createdAt)),
            content: content,
            attachments: descriptors
        )
        let sealed = try SealedEnvelope.seal(message, to: bundle, signedBy: identity).encoded
        let envelope = try await database.writer.write { db in try OutboxStore.keepEnvelope(db, id, sealed) }
        return (envelope, attachmentIDs)
    }
}
