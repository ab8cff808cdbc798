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
        var entries = try await database.writer.read { db in try OutboxStore.entries(db) }[...]
        if let last, let end = entries.firstIndex(where: { $0.id == last }) { entries = entries[...end] }
        var flush = OutboxFlush()
        // A backlog goes `sendsInFlight` at a time: each is sealed (which may fetch a bundle), then their sends go
        // out together and wait for their answers at once (spec/relay.md: answers carry request ids), so the relay
        // writes them in shared commits. Results are recorded in queue order.
        while !entries.isEmpty, flush.interruption == nil {
            let chunk = entries.prefix(Self.sendsInFlight)
            entries = entries.dropFirst(chunk.count)
            var results: [DeliveryResult?] = Array(repeating: nil, count: chunk.count)
            var ready: [(index: Int, entry: OutboxEntry, request: SendRequest)] = []
            for (index, entry) in chunk.enumerated() {
                switch try await sealForSending(entry, connection: connection) {
                case .success(let request): ready.append((index, entry, request))
                case .failure(let settled): results[index] = settled.result
                }
                // The relay cannot be talked to: what is sealed goes on to be tried, the rest waits.
                if case .queued(let error)? = results[index], error.meansRelayUnavailable { break }
            }
            var pending: [(index: Int, send: PendingSend)] = []
            for (index, entry, request) in ready {
                switch try await startSend(entry, request, connection: connection) {
                case .finished(let result): results[index] = result
                case .sent(let send): pending.append((index, send))
                }
            }
            for (index, send) in pending { results[index] = try await finishDelivery(send, connection: connection) }
            for (index, entry) in chunk.enumerated() {
                guard let result = results[index] else { continue }
                flush.record(entry.id, kind: entry.kind, result)
                if case .queued(let error) = result, error.meansRelayUnavailable, flush.interruption == nil {
                    flush.interruption = error
                }
            }
        }
        flush.remaining = try await database.writer.read { db in try OutboxStore.count(db) }
        return flush
    }

    /// How many sends of one flush wait for their answers at once.
    static let sendsInFlight = 16

    /// A send request on its way, for the entry it carries.
    struct PendingSend {
        let entry: OutboxEntry
        let requestID: UInt32
    }

    enum DeliveryStart {
        /// Settled without an answer to wait for (not sent).
        case finished(DeliveryResult)
        /// The send request went out; its answer settles it.
        case sent(PendingSend)
    }

    /// A delivery settled before its send request, as an error value.
    struct SettledDelivery: Error {
        let result: DeliveryResult
    }

    /// The send request of an outbox entry: its attachments uploaded and its envelope sealed (once; kept).
    private func sealForSending(_ entry: OutboxEntry, connection: RelayConnection) async throws -> Result<SendRequest, SettledDelivery> {
        do {
            let recipient = try Handle(entry.recipient)
            let (envelope, attachmentIDs) = try await envelope(for: entry, recipient: recipient, connection: connection)
            return .success(try SendRequest(recipient: recipient, envelope: envelope, attachments: attachmentIDs))
        } catch {
            return .failure(SettledDelivery(result: try await settleFailure(of: entry, error)))
        }
    }

    /// Marks the entry as being sent and starts its send request.
    private func startSend(_ entry: OutboxEntry, _ request: SendRequest, connection: RelayConnection) async throws -> DeliveryStart {
        let id = entry.id
        do {
            // The point of no return: marked in the outbox first (unless stopped or cancelled meanwhile), so a
            // cancellation can tell a message the relay may hold from one it cannot have.
            let now = Timestamp.now()
            let marked = try await database.writer.write { db in
                try self.checkSendingAllowed()
                return try OutboxStore.markSending(db, id, at: now)
            }
            guard marked else { return .finished(.abandoned(ClientError(.unknownMessage, "message \(id) was cancelled before it was sent"))) }
            do {
                return .sent(PendingSend(entry: entry, requestID: try await connection.start(.send(request))))
            } catch let error as RelayClientError {
                throw clientError(error)
            }
        } catch {
            return .finished(try await settleFailure(of: entry, error))
        }
    }

    /// Waits for the answer to a send request and records how it went.
    private func finishDelivery(_ pending: PendingSend, connection: RelayConnection) async throws -> DeliveryResult {
        let database = self.database
        let id = pending.entry.id
        do {
            let reply: RelayMessage
            do {
                reply = try await connection.result(of: pending.requestID)
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
            announceSent(pending.entry)
            return .stored(stored)
        } catch {
            return try await settleFailure(of: pending.entry, error)
        }
    }

    /// What a failed attempt means for the entry, recorded against it.
    private func settleFailure(of entry: OutboxEntry, _ error: any Error) async throws -> DeliveryResult {
        let id = entry.id
        switch error {
        case let error as ClientError where error.category == .network:
            try await recordAttempt(id, error)
            return .queued(error)
        case let error as CancellationError:
            throw error  // stopSending(): the message is not sent now, and nothing is recorded against it
        default:
            // A value that does not decode or open is this profile's damage, not the relay's.
            let failure = error as? ClientError ?? ClientError(.profileDamaged, "\(error)")
            logger.info("outbox: \(id) to \(entry.recipient) waits: \(failure.code) \(failure.message)")
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
