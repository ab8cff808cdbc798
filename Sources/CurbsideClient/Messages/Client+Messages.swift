import CurbsideWire
import Foundation
import GRDB

extension Client {
    // MARK: - Sending

    /// Sends a consult to `recipient`; the consult's id is also its thread's.
    ///
    /// The consult is saved and queued first, then the outbox is flushed: if the relay cannot be reached it stays
    /// queued (`stored == false`) and goes out, with the same message id, on the next sync.
    ///
    /// `id` is the consult's id, chosen by the caller when it must know it before the call returns (to cancel it on
    /// Ctrl-C with ``cancelQueued(_:evenIfSending:)``).
    ///
    /// - Throws: `ClientError` `.trust` when the recipient's key changed (nothing is sent; the consult stays queued
    ///   until the new key is verified), `.usage` for an unknown recipient; `CancellationError` after
    ///   ``stopSending()``.
    public func send(
        _ consult: Consult,
        to recipient: Handle,
        attachments: [AttachmentSource] = [],
        id: MessageID = .random()
    ) async throws -> SendOutcome {
        try await checkNotBlocked(recipient)
        // Encrypted to disk first (streaming, outside any transaction), then recorded with the message at once.
        let (prepared, unreachable) = try await prepareAttachments(attachments, for: id)
        try await queueOrDiscard(.consult(consult), to: recipient, id: id, thread: nil, prepared: prepared)
        return try await deliver(id, unreachable: unreachable).noting(prepared)
    }

    /// Replies in the thread of message `id` (a consult or reply received from, or sent to, the other party), as
    /// message `replyID`.
    public func reply(
        to id: MessageID,
        text: String,
        attachments: [AttachmentSource] = [],
        replyID: MessageID = .random()
    ) async throws -> SendOutcome {
        guard let original = try await database.writer.read({ db in try MessageStore.message(db, id) }), original.kind != .receipt else {
            throw ClientError(.unknownMessage, "there is no consult or reply \(id)", hint: "`curbside inbox` lists them")
        }
        let recipient = try Handle(original.peer)
        try await checkNotBlocked(recipient)
        // A message kept under a local id (its sender reused another's id) is answered by the id it was sent with.
        let reply = try Reply(inReplyTo: original.wireID ?? id, text: text)
        let (prepared, unreachable) = try await prepareAttachments(attachments, for: replyID)
        try await queueOrDiscard(.reply(reply), to: recipient, id: replyID, thread: original.threadID, prepared: prepared)
        return try await deliver(replyID, unreachable: unreachable).noting(prepared)
    }

    /// Sends a queued message now, after what was queued before it, and reports how its own attempt went. The
    /// message is queued whatever happens, so this never fails for want of a relay: the outcome says whether it was
    /// stored and, if not, why it waits. Only an unknown recipient (a typo) and a changed key are errors; an unknown
    /// recipient's message is discarded, a changed key's waits for verification. With `unreachable` (the relay could
    /// not be reached moments ago, while the attachments were encrypted) it is not tried again now.
    private func deliver(_ id: MessageID, unreachable: ClientError? = nil) async throws -> SendOutcome {
        let (flush, failure): (OutboxFlush, ClientError?) =
            if let unreachable { (OutboxFlush(), unreachable) } else { try await flush(through: id) }
        switch flush.result(of: id) {
        case .stored:
            return SendOutcome(id: id.description, stored: true, waiting: nil)
        case .refused(let error) where error.code == .unknownRecipient:
            let recipient = try await recipientOf(id)
            try await database.writer.write { db in
                try OutboxStore.remove(db, id)
                try EventStore.deleteAll(db, of: id)
                try MessageStore.delete(db, id)
            }
            throw ClientError(
                .unknownRecipient,
                "\(recipient) is not registered on the relay (or has not published prekeys yet); nothing was sent",
                hint: "check the handle",
                relayError: error.relayError
            )
        case .queued(let error) where error.code == .keyChanged:
            let recipient = try await recipientOf(id)
            throw ClientError(
                .keyChanged,
                "\(recipient)'s identity key has changed since you pinned it; message \(id) waits and is not sent",
                hint: "compare the new safety number with \(recipient) in person or by phone (`curbside contacts show \(recipient)`); "
                    + "`curbside contacts verify \(recipient) NUMBER` then sends it"
            )
        case .abandoned(let error) where error.code == .unknownMessage:
            throw error  // cancelled meanwhile (`curbside outbox cancel` in another process): nothing was sent
        case .queued(let error), .refused(let error), .abandoned(let error):
            return SendOutcome(id: id.description, stored: false, waiting: error.message, reason: error)
        case nil:
            // Not tried: the relay could not be reached, or the connection was lost before its turn.
            let reason = failure ?? flush.interruption ?? ClientError(.unreachable, "the relay could not be reached")
            try await recordAttempt(id, reason)  // so `curbside outbox` can say why it waits
            return SendOutcome(id: id.description, stored: false, waiting: reason.message, reason: reason)
        }
    }

    /// Queues a message with its encrypted attachments; if it cannot be queued (``stopSending()`` came first), the
    /// encrypted files go too.
    private func queueOrDiscard(
        _ content: Content,
        to recipient: Handle,
        id: MessageID,
        thread: ThreadID?,
        prepared: [(PreparedAttachment, AttachmentSource)]
    ) async throws {
        do {
            _ = try await queue(content, to: recipient, id: id, thread: thread, prepared: prepared)
        } catch {
            await discardEarlyUploads(prepared.map(\.0))
            for (file, _) in prepared { unlink(file.path) }
            throw error
        }
    }

    private func recipientOf(_ id: MessageID) async throws -> Handle {
        let peer = try await database.writer.read { db in try MessageStore.message(db, id)?.peer }
        return try Handle(peer ?? "")
    }

    /// Refuses to queue for a contact whose key changed and is not verified (nothing is queued).
    private func checkNotBlocked(_ handle: Handle) async throws {
        let blocked = try await database.writer.read { db in
            try ContactStore.contact(db, handle)?.changedKey != nil
        }
        if blocked { throw ClientError.keyChanged(handle) }
    }

    // MARK: - Reading

    /// Consults, replies and receipts received, newest first.
    public func inbox() async throws -> [MessageSummary] {
        try await summaries(try await database.writer.read { db in try MessageStore.received(db) })
    }

    /// Shows consult or reply `id` and, the first time an incoming one is shown, sends its `read` receipt.
    ///
    /// - Throws: `ClientError.trust` when the sender's key changed and is not verified (the content stays hidden),
    ///   `.usage` for an unknown id.
    public func show(_ id: MessageID) async throws -> ShownMessage {
        guard let record = try await database.writer.read({ db in try MessageStore.message(db, id) }) else {
            throw ClientError(.unknownMessage, "there is no message \(id)", hint: "`curbside inbox` lists what you received")
        }
        let summary = try await summaries([record])[0]
        if summary.untrusted {
            throw ClientError(
                .untrustedSender,
                "\(summary.peer)'s identity key changed before this message was sent; it stays hidden until you verify the new key",
                hint: "`curbside contacts show \(summary.peer)`, compare the safety number with them, then `curbside contacts verify`"
            )
        }
        let content = try Content(decoding: try database.unseal(record.body, column: "message.body", row: id.rawValue))
        if summary.direction == .incoming, content.kind != .receipt {
            let alreadyRead = try await database.writer.read { db in try EventStore.contains(db, id, .read) }
            if !alreadyRead {
                // Recorded and queued together; sent now if the relay can be reached, else with the next sync.
                let database = self.database
                let peer = try Handle(summary.peer)
                let thread = record.threadID
                let wireID = record.wireID ?? id
                let receiptID = MessageID.random()
                try await database.writer.write { db in
                    try EventStore.add(db, database, id, .read, at: .now())
                    try Self.queue(db, database, .receipt(.read(wireID)), to: peer, id: receiptID, thread: thread, now: .now())
                }
                // Only the outbox, through the receipt: showing a consult never fetches or downloads anything.
                _ = try? await flush(through: receiptID)
            }
        }
        let timeline = try await timeline(id)
        let attachments = try await attachments(of: id)
        switch content {
        case .consult(let consult):
            return ShownMessage(
                summary: summary, subject: consult.subject, specialty: consult.specialty, question: consult.question,
                clinicalSummary: consult.clinicalSummary, text: nil, inReplyTo: nil, timeline: timeline, attachments: attachments
            )
        case .reply(let reply):
            return ShownMessage(
                summary: summary, subject: nil, specialty: nil, question: nil, clinicalSummary: nil, text: reply.text,
                inReplyTo: reply.inReplyTo.description, timeline: timeline, attachments: attachments
            )
        case .receipt:
            return ShownMessage(
                summary: summary, subject: nil, specialty: nil, question: nil, clinicalSummary: nil, text: summary.title,
                inReplyTo: nil, timeline: timeline, attachments: []
            )
        }
    }

    /// The timelines of consults (and replies) this profile sent, newest first, or of `id` alone.
    public func status(_ id: MessageID? = nil) async throws -> [ConsultStatus] {
        let records = try await database.writer.read { db in
            if let id { return try MessageStore.message(db, id).map { [$0] } ?? [] }
            return try MessageStore.sentConsultsAndReplies(db)
        }
        if let id, records.isEmpty { throw ClientError(.unknownMessage, "there is no message \(id)") }
        var out: [ConsultStatus] = []
        for (record, summary) in zip(records, try await summaries(records)) {
            let id = record.id
            let timeline = try await timeline(id)
            func first(_ kind: DeliveryState) -> UInt64? { timeline.first { $0.kind == kind }?.at }
            let queued = try await database.writer.read { db in try OutboxStore.contains(db, id) }
            let created = first(.created) ?? summary.createdAt
            let answered = first(.answered)
            out.append(
                ConsultStatus(
                    summary: summary, timeline: timeline, created: created, stored: first(.stored),
                    deliveredToDevice: first(.deliveredToDevice), delivered: first(.delivered), read: first(.read),
                    answered: answered, timeToAnswer: answered.map { $0 >= created ? $0 - created : 0 }, queued: queued
                )
            )
        }
        return out
    }

    func timeline(_ id: MessageID) async throws -> [TimelineEvent] {
        let database = self.database
        return try await database.writer.read { db in try EventStore.timeline(db, database, id) }
    }

    /// The subject of the consult that started `thread`, when this profile holds it and may show it.
    private func subject(ofThread thread: MessageID) async throws -> String? {
        guard let consult = try await database.writer.read({ db in try MessageStore.message(db, thread) }),
            consult.kind == .consult, !consult.senderKeyChanged
        else { return nil }
        guard case .consult(let content) = try Content(decoding: try database.unseal(consult.body, column: "message.body", row: thread.rawValue))
        else { return nil }
        return content.subject
    }

    func summaries(_ records: [MessageRecord]) async throws -> [MessageSummary] {
        var out: [MessageSummary] = []
        for record in records {
            let id = record.id
            let untrusted = record.senderKeyChanged
            var title = ""
            var urgency: Urgency?
            if !untrusted {
                switch try Content(decoding: try database.unseal(record.body, column: "message.body", row: id.rawValue)) {
                case .consult(let consult):
                    title = consult.subject
                    urgency = Urgency(consult.urgency)
                case .reply(let reply):
                    title = String(reply.text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
                case .receipt(let receipt):
                    title = "\(receipt.kind) receipt for \(receipt.messageID)" + (receipt.failure.map { ": \($0.reason)" } ?? "")
                }
            } else {
                title = "(hidden: the sender's identity key changed)"
            }
            let state = try await database.writer.read { db in try EventStore.latest(db, id) }
            var unread: Bool?
            if record.direction == .incoming, record.kind != .receipt {
                unread = try await database.writer.read { db in try !EventStore.contains(db, id, .read) }
            }
            let consultSubject = untrusted || record.kind != .reply ? nil : try await subject(ofThread: record.threadID)
            let attachments = try await attachments(of: id)
            out.append(
                MessageSummary(
                    id: id.description,
                    thread: record.threadID.rawValue.hexString,
                    direction: record.direction,
                    peer: record.peer,
                    kind: record.kind,
                    title: title,
                    urgency: urgency,
                    createdAt: UInt64(record.createdAt),
                    state: state ?? .created,
                    untrusted: untrusted,
                    unread: unread,
                    consultSubject: consultSubject,
                    attachments: attachments.isEmpty ? nil : attachments
                )
            )
        }
        return out
    }
}
