import CurbsideWire
import Foundation
import GRDB

/// How one delivered envelope ended: acknowledged (opened, a duplicate, or seen before) or rejected with a reason.
enum Disposition: Sendable, Equatable {
    case acknowledge
    case reject(Receipt.FailureReason)
}

extension Client {
    /// How long opened and rejected envelope ids are remembered: longer than the relay keeps an envelope (14 days
    /// by default), so no re-delivery is ever opened twice or reported as a failure.
    static let seenEnvelopeLifetime: UInt64 = 60 * 86_400

    /// Opens, checks and saves one envelope, and queues the receipt it calls for, in one transaction; says whether
    /// to acknowledge or reject it (spec/envelope.md §Receiving).
    ///
    /// Never throws for the envelope's own faults, whatever its bytes: those are recorded (a rejection, or a message
    /// saved with a failure) and reported. Throws only when the connection drops during an attachment download or
    /// the profile cannot be written; the envelope then stays unacknowledged and is processed on the next fetch.
    /// Without a connection, attachments are recorded as not fetched.
    func receive(
        _ delivered: DeliveredEnvelope,
        report: inout SyncReport,
        connection: RelayConnection? = nil,
        now: Timestamp = .now()
    ) async throws -> Disposition {
        let database = self.database
        let envelopeID = Data(delivered.envelopeID)
        // Seen before (pushed and then fetched, or delivered again after a lost acknowledgement): the earlier outcome
        // stands. A one-time prekey is gone after the first opening, so a second opening could only fail.
        if let earlier = try await database.writer.read({ db in try ReceivedEnvelopeStore.settled(db, envelopeID) }) { return earlier }
        /// Records the rejection; `spent` names a one-time prekey the envelope was decrypted with (its header is then
        /// authenticated, so deleting the key cannot be someone else's doing), which goes like any used one.
        func reject(_ reason: Receipt.FailureReason, _ why: String, spent: SealedEnvelope.PrekeyReference? = nil) async throws -> Disposition {
            let disposition = try await database.writer.write { db -> Disposition in
                // Another process may have settled it meanwhile: its outcome stands, one record per envelope.
                if let earlier = try ReceivedEnvelopeStore.settled(db, envelopeID) { return earlier }
                try ReceivedEnvelopeStore.recordFailure(db, envelopeID, sender: delivered.sender, at: now, reason: reason, detail: why)
                if let spent, spent.kind == .oneTime { try PrekeyStore.deleteOneTime(db, ids: [spent.id]) }
                try ReceivedEnvelopeStore.markSeen(db, envelopeID, at: now, rejected: reason)
                return .reject(reason)
            }
            report.failed += 1
            logger.warning("envelope from \(delivered.sender) could not be opened: \(why)")
            return disposition
        }
        let sealed: SealedEnvelope
        do {
            sealed = try SealedEnvelope(decoding: delivered.envelope)
        } catch {
            return try await reject(.undecryptable, error.code.identifier)
        }
        let reference = sealed.header.prekey
        let privateKey = try await database.writer.read { db in try PrekeyStore.privateKey(db, reference.kind, id: reference.id) }
        var ring = PrekeyRing()
        if let privateKey {
            let row = ProfileDatabase.prekeyRow(kind: reference.kind.rawValue, id: reference.id)
            let key = try AgreementKey.Private(rawRepresentation: SecretBytes(try database.unseal(privateKey, column: "prekey.private_key", row: row)))
            if reference.kind == .signed { ring.signedPrekeys[reference.id] = key } else { ring.oneTimePrekeys[reference.id] = key }
        }
        let opened: OpenedEnvelope
        do {
            opened = try sealed.open(as: me, using: ring)
        } catch {
            // Past decryption (the content, the signature or the recipient was wrong) the one-time key was used.
            let decrypted = [EnvelopeError.Code.malformedContent, .badSignature, .wrongRecipient].contains(error.code)
            return try await reject(Self.rejectionReason(error.code), error.code.identifier, spent: decrypted ? reference : nil)
        }
        let message = opened.message
        // The relay logged the sender in: a message signed in another handle's name is a forgery by that account.
        guard message.sender.handle == delivered.sender else {
            return try await reject(
                .badSignature,
                "sender_mismatch: sent by \(delivered.sender), signed as \(message.sender.handle)",
                spent: opened.prekey
            )
        }
        let senderKey = Data(message.sender.identityKey.rawRepresentation)
        let wireID = Data(message.id.rawValue)
        // Duplicates are the same message id from the same sender's key; another sender reusing an id (one of ours,
        // or a colleague's it has seen) gets its own local id, so it can neither suppress nor overwrite anything.
        let (duplicate, localID) = try await database.writer.read { db -> (Bool, MessageID) in
            if try MessageStore.isDuplicate(db, senderKey: senderKey, wireID: wireID) { return (true, message.id) }
            let taken = try MessageStore.exists(db, message.id)
            return (false, taken ? MessageID.random() : message.id)
        }
        // Attachments are fetched and checked before anything is saved or acknowledged (acknowledging may delete them
        // on the relay). A duplicate's were fetched the first time.
        var fetched: [AttachmentState] = []
        if !duplicate, !message.attachments.isEmpty {
            if let connection {
                fetched = try await fetchAttachments(message, storedAs: localID, connection: connection, now: now)
            } else {
                fetched = message.attachments.map { _ in .unavailable }
            }
        }
        let directory = attachmentsDirectory
        let states = fetched
        let outcome = try await database.writer.write { db -> ReceiveOutcome in
            // Forward secrecy: a one-time prekey opens one envelope, then it is gone (a duplicate's too).
            if opened.prekey.kind == .oneTime { try PrekeyStore.deleteOneTime(db, ids: [opened.prekey.id]) }
            try ReceivedEnvelopeStore.markSeen(db, envelopeID, at: now, rejected: nil)
            if try MessageStore.isDuplicate(db, senderKey: senderKey, wireID: wireID) { return .duplicate }
            if try MessageStore.exists(db, localID) {
                // Only another process saving this very message can get here between the read above and now.
                throw ClientError(.concurrentUpdate, "message \(localID) was saved by another process meanwhile; the next sync settles it")
            }
            let trusted = try ContactStore.pinOnFirstUse(db, message.sender, now: now)
            let body = try database.seal(message.content.encoded, column: "message.body", row: localID.rawValue)
            let signature = try database.seal(opened.signature, column: "message.signature", row: localID.rawValue)
            try MessageStore.insertIncoming(
                db,
                message,
                storedAs: localID,
                receivedAt: now,
                body: body,
                signature: signature,
                envelopeID: envelopeID,
                trusted: trusted
            )
            guard trusted else {
                try Self.insertReceived(db, database, message, storedAs: localID, states: states, directory: directory)
                // Receipts are never answered with receipts (envelope.md §Receipts): two clients that each see the
                // other's key as changed would bounce them for ever.
                if case .receipt = message.content { return .receipt }
                let failure = try Receipt.Failure(reason: .untrustedSender, detail: "the recipient has not verified your new identity key")
                try Self.queue(db, database, .receipt(.failed(message.id, failure)), to: message.sender.handle, id: .random(), thread: message.threadID, now: now)
                return .untrusted
            }
            switch message.content {
            case .receipt(let receipt):
                // Only the peer a message went to may report on it.
                guard try MessageStore.wasSent(db, receipt.messageID, to: message.sender.handle) else { return .receipt }
                let kind: DeliveryState =
                    switch receipt.kind {
                    case .delivered: .delivered
                    case .read: .read
                    case .failed: .failed
                    }
                let detail = receipt.failure.map { [Self.identifier(of: $0.reason), $0.detail].filter { !$0.isEmpty }.joined(separator: ": ") }
                try EventStore.add(db, database, receipt.messageID, kind, at: message.createdAt, detail: detail)
                return .receipt
            case .reply(let reply):
                try EventStore.add(db, database, localID, .received, at: now)
                // Answered: a reply from the consult's own peer, in the consult's thread.
                if try MessageStore.wasSent(db, reply.inReplyTo, to: message.sender.handle, inThread: message.threadID) {
                    try EventStore.add(db, database, reply.inReplyTo, .answered, at: message.createdAt)
                }
            case .consult:
                try EventStore.add(db, database, localID, .received, at: now)
            }
            try Self.insertReceived(db, database, message, storedAs: localID, states: states, directory: directory)
            try Self.queue(db, database, .receipt(try Self.receipt(for: message, states: states)), to: message.sender.handle, id: .random(), thread: message.threadID, now: now)
            return .saved
        }
        switch outcome {
        case .duplicate: logger.debug("duplicate \(message.id) dropped")
        case .receipt: report.receipts += 1
        case .saved, .untrusted: report.received += 1
        }
        return .acknowledge
    }

    private enum ReceiveOutcome: Sendable { case duplicate, receipt, saved, untrusted }

    /// The receipt a saved message calls for: `delivered`, or `failed` naming the first attachment problem.
    static func receipt(for message: Message, states: [AttachmentState]) throws -> Receipt {
        if states.contains(.corrupt) {
            return .failed(message.id, try Receipt.Failure(reason: .attachmentCorrupt, detail: "an attachment's size, SHA-256 or encryption did not check"))
        }
        if states.contains(.tooLarge) {
            return .failed(message.id, try Receipt.Failure(reason: .attachmentUnavailable, detail: "an attachment is larger than the recipient accepts"))
        }
        if states.contains(.overSenderLimit) {
            return .failed(
                message.id,
                try Receipt.Failure(reason: .attachmentUnavailable, detail: "the recipient's daily limit for attachments from you is reached")
            )
        }
        if states.contains(.unavailable) {
            return .failed(message.id, try Receipt.Failure(reason: .attachmentUnavailable, detail: "an attachment was no longer on the relay"))
        }
        return .delivered(message.id)
    }

    /// Forgets envelope ids older than the relay could deliver again.
    func forgetOldEnvelopeIDs(now: Timestamp = .now()) async throws {
        let cutoff = now.signedMilliseconds - Int64(Self.seenEnvelopeLifetime * 1000)
        try await database.writer.write { db in try ReceivedEnvelopeStore.forgetSeen(db, before: cutoff) }
    }

    /// The reason a rejection carries for an opening failure (spec/envelope.md §Receiving).
    static func rejectionReason(_ code: EnvelopeError.Code) -> Receipt.FailureReason {
        switch code {
        case .malformedContent: .unsupportedContent
        case .badSignature: .badSignature
        case .wrongRecipient: .other
        default: .undecryptable
        }
    }

    /// Hands the relay the outcome of a batch: acknowledgements, then rejections. A relay that predates `reject`
    /// (it answers `unknown_frame_type`) gets them as acknowledgements, so they do not come back for ever.
    func settle(_ dispositions: [([UInt8], Disposition)], on connection: RelayConnection) async throws {
        let acknowledged = dispositions.compactMap { $0.1 == .acknowledge ? $0.0 : nil }
        let rejections = dispositions.compactMap { id, disposition -> Rejection? in
            if case .reject(let reason) = disposition { return Rejection(envelopeID: id, reason: reason) }
            return nil
        }
        if !acknowledged.isEmpty { _ = try await request(connection, .acknowledge(acknowledged)) }
        guard !rejections.isEmpty else { return }
        do {
            _ = try await connection.request(.reject(rejections))
        } catch RelayClientError.refused(let error) where error.code == .unknownFrameType {
            _ = try await request(connection, .acknowledge(rejections.map(\.envelopeID)))
        } catch let error as RelayClientError {
            throw clientError(error)
        }
    }

    // MARK: - Unopened envelopes

    /// Envelopes that reached this device and could not be opened, newest first.
    public func unopenedEnvelopes() async throws -> [UnopenedEnvelope] {
        try await database.writer.read { db in try ReceivedEnvelopeStore.failures(db) }
    }

    /// Marks the unopened envelopes up to `sequence` reported (`inbox` reports each once); any recorded since the
    /// list was read stay unreported.
    public func markUnopenedShown(through sequence: Int64) async throws {
        try await database.writer.write { db in try ReceivedEnvelopeStore.markFailuresShown(db, through: sequence) }
    }
}
