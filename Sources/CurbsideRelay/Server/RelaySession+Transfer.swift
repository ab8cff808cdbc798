import CurbsideWire
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Sending envelopes and moving attachments (spec/relay.md §Store and forward, §Attachments).
extension RelaySession {
    /// Runs a request whose relay errors are answered without closing the connection.
    func refusing(_ state: State, _ body: () async throws -> RelayMessage) async throws -> Outcome {
        do {
            return .reply(try await body(), state)
        } catch let error as RelayError {
            return .refuse(error)
        } catch let failure as BlobStore.Failure {
            return .refuse(RelayError(failure))
        }
    }

    /// Hands an admitted send of a connection that keeps several in flight to the store, and returns. It is answered
    /// where its transaction finishes (`RelayStore.submit(_:settle:)`): the push and `stored` go to the channels'
    /// event loops from there, with no task of its own to wake, and `sends` learns it has ended once they are handed
    /// over. A refusal, a failed transaction or a channel that cannot take the answer then is answered by a task
    /// that waits for the channel.
    func submit(
        _ submission: Submission,
        requestID: UInt32,
        on channel: any Channel,
        answers: CoalescingFrameWriter,
        sends: SendsInFlight,
        activity: ConnectionActivity?,
        logger: Logger
    ) {
        let size = submission.body.count
        // One object per send, which the closure holds as its context, and not the session, whose copy would cost a
        // retain of each of its references per send.
        let committed = CommittedSend(submission, clients: clients, answeringOn: channel, requestID: requestID)
        store.submit(submission) { result, writes in
            if case .success(let outcome) = result {
                committed.run(outcome, &writes)
                if committed.wasAnswered {
                    writes.afterFlush {
                        sends.end(bytes: size)
                        _ = activity?.end()
                    }
                    return
                }
            }
            let answer: RelayMessage
            switch result {
            case .success(let outcome):
                answer = Self.answer(settled: outcome, of: submission)
            case .failure(let error as RelayError):
                answer = Self.answer(.refuse(error), logger: logger)
            case .failure:
                // Not the disk's failure but a bug: the connection closes, as when a request's task throws.
                channel.close(promise: nil)
                writes.afterFlush {
                    sends.end(bytes: size)
                    _ = activity?.end()
                }
                return
            }
            writes.afterFlush {
                Task {
                    try? await answers.write(answer.frame(requestID: requestID))
                    sends.end(bytes: size)
                    _ = activity?.end()
                }
            }
        }
    }

    /// The answer a send's `Outcome` gives; a storage error is logged.
    static func answer(_ outcome: Outcome, logger: Logger) -> RelayMessage {
        switch outcome {
        case .reply(let message, _), .loggedIn(let message, _, _):
            return message
        case .refuse(let error):
            if error.isStorage { logger.error("store error", metadata: ["error": "\(error.code.identifier)"]) }
            return .error(error)
        }
    }

    /// The answer to `submission` once the store has decided `outcome`: `stored`, or the refusal.
    static func answer(settled outcome: EnqueueOutcome, of submission: Submission) -> RelayMessage {
        switch answer(outcome, to: submission) {
        case .success(let message): message
        case .failure(let error): .error(error)
        }
    }

    func send(_ request: SendRequest, from sender: Handle, state: State, logger: Logger = .relayDisabled) async throws -> Outcome {
        switch try await admit(request, from: sender, state: state, logger: logger) {
        case .failure(let settled): return settled.outcome
        case .success(let submission): return try await commit(submission, request, from: sender, state: state)
        }
    }

    /// A send answered without storing anything (a refusal, or a retry of what is stored already).
    struct SettledSend: Error {
        let outcome: Outcome
    }

    /// The checks a send passes before it is stored, in the order the connection's sends arrived (the disk, the
    /// new-recipient limit), and what to store.
    func admit(_ request: SendRequest, from sender: Handle, state: State, logger: Logger) async throws -> Result<Submission, SettledSend> {
        // The recipient is checked in the transaction that stores (one database round trip per send).
        let id = EnvelopeID(of: request.envelope)
        if try await diskIsLow() {
            // A retry of something already stored is still acknowledged: it takes no space.
            guard let stored = try await store.storedEnvelope(id, for: request.recipient) else {
                return .failure(SettledSend(outcome: .refuse(RelayError(.storageFull, "the relay's disk is nearly full; try again later"))))
            }
            return .failure(
                SettledSend(outcome: .reply(.stored(StoredReceipt(envelopeID: id.bytes, storedAt: stored.storedAt, expiresAt: stored.expiresAt)), state))
            )
        }
        guard await newRecipients.admit(sender: sender, recipient: request.recipient) else {
            logger.notice("rate limit hit", metadata: ["limiter": "new_recipients", "handle": "\(sender)"])
            return .failure(SettledSend(outcome: .refuse(
                RelayError(
                    .rateLimited,
                    "\(sender) started writing to \(configuration.maximumNewRecipientsPerSender) recipients within "
                        + "\(configuration.newRecipientWindow); try \(request.recipient) later"
                )
            )))
        }
        let now = configuration.clock.now()
        let expiresAt = now.adding(seconds: configuration.envelopeLifetimeSeconds)
        let submission = Submission(
            body: request.envelope,
            id: id,
            sender: sender,
            recipient: request.recipient,
            attachments: request.attachments,
            storedAt: now,
            expiresAt: expiresAt,
            maximumQueuedEnvelopes: configuration.maximumQueuedEnvelopesPerAccount,
            maximumQueuedBytes: configuration.maximumQueuedBytesPerAccount,
            maximumQueuedEnvelopesPerSender: configuration.maximumQueuedEnvelopesPerSender,
            maximumQueuedBytesPerSender: configuration.maximumQueuedBytesPerSender
        )
        return .success(submission)
    }

    /// Stores an admitted send; answers once its envelope is durable.
    ///
    /// The push to the recipient's connections, and the answer if `committed` takes it, are written from where the
    /// commit finished (`RelayStore.enqueue(_:whenCommitted:)`): straight to the channels' event loops, without
    /// waiting for this task to be scheduled again.
    func commit(
        _ submission: Submission,
        _ request: SendRequest,
        from sender: Handle,
        state: State,
        then committed: CommittedSend? = nil
    ) async throws -> Outcome {
        let outcome: EnqueueOutcome
        do {
            // One object per send, which the closure holds as its context (no further allocation), and not the
            // session, whose copy would cost an allocation and a retain of each of its references per send.
            let committed = committed ?? CommittedSend(submission, clients: clients)
            outcome = try await store.enqueue(submission) { committed.run($0, &$1) }
        } catch let error as RelayError {
            return .refuse(error)
        }
        return settled(outcome, submission, request, from: sender, state: state)
    }

    /// How a send the store has decided is answered.
    private func settled(_ outcome: EnqueueOutcome, _ submission: Submission, _ request: SendRequest, from sender: Handle, state: State)
        -> Outcome
    {
        switch Self.answer(outcome, to: submission) {
        case .success(let message): .reply(message, state)
        case .failure(let error): .refuse(error)
        }
    }

    /// The answer to `submission` once the store has decided `outcome`: `stored`, or the refusal.
    static func answer(_ outcome: EnqueueOutcome, to submission: Submission) -> Result<RelayMessage, RelayError> {
        let id = submission.id
        switch outcome {
        case .stored:
            return .success(.stored(StoredReceipt(envelopeID: id.bytes, storedAt: submission.storedAt, expiresAt: submission.expiresAt)))
        case .duplicate(_, let storedAt, let originalExpiry):
            return .success(.stored(StoredReceipt(envelopeID: id.bytes, storedAt: storedAt, expiresAt: originalExpiry)))
        case .queueFull:
            return .failure(RelayError(.quotaExceeded, "\(submission.recipient)'s queue is full; try again later"))
        case .senderShareFull(let envelopes, let bytes):
            return .failure(
                RelayError(
                    .quotaExceeded,
                    "\(submission.sender) holds \(envelopes) envelopes of \(bytes) bytes for \(submission.recipient), the most one "
                        + "sender may (\(submission.maximumQueuedEnvelopesPerSender) or \(submission.maximumQueuedBytesPerSender) bytes); "
                        + "try again once they fetch"
                )
            )
        case .unknownRecipient:
            return .failure(RelayError(.unknownHandle, "\(submission.recipient) is not registered"))
        case .unknownAttachment(let attachment):
            return .failure(RelayError(.unknownAttachment, "attachment \(attachment.hexString) is not a committed upload of \(submission.sender)"))
        }
    }

    func openUpload(_ request: OpenUpload, owner: Handle) async throws -> RelayMessage {
        let now = configuration.clock.now()
        // Asking about an upload that exists is always answered; only a new one needs room.
        if let existing = try await store.upload(owner: owner, id: request.attachmentID) {
            return try await status(existing, sizeAsked: request.size)
        }
        if try await diskIsLow(needing: request.size) {
            throw RelayError(.storageFull, "the relay's disk has no room for \(request.size) bytes; try again later")
        }
        let opening = try await store.openUpload(
            owner: owner,
            id: request.attachmentID,
            size: request.size,
            expiresAt: now.adding(seconds: configuration.uploadLifetimeSeconds),
            quota: configuration.maximumAttachmentBytesPerAccount,
            maximumCount: configuration.maximumAttachmentsPerAccount
        )
        switch opening {
        case .opened(let upload), .sizeDiffers(let upload):
            return try await status(upload, sizeAsked: request.size)
        case .quotaExceeded(let used, let count):
            throw RelayError(
                .quotaExceeded,
                "\(owner) holds \(count) attachments of \(used) bytes; one more of \(request.size) would pass the quota of "
                    + "\(configuration.maximumAttachmentsPerAccount) attachments or \(configuration.maximumAttachmentBytesPerAccount) bytes"
            )
        }
    }

    func writeChunk(_ chunk: UploadChunk, owner: Handle) async throws -> RelayMessage {
        guard let upload = try await store.upload(owner: owner, id: chunk.attachmentID) else {
            throw RelayError(.unknownAttachment, "no upload \(chunk.attachmentID.hexString) is open for \(owner)")
        }
        let end = chunk.offset.addingReportingOverflow(UInt64(chunk.data.count))
        if end.overflow || end.partialValue > upload.size {
            throw RelayError(.beyondDeclaredSize, "\(chunk.data.count) bytes at offset \(chunk.offset) pass the declared size of \(upload.size)")
        }
        guard !upload.complete else {
            throw RelayError(.offsetMismatch, "the upload is committed: the relay holds all \(upload.size) bytes")
        }
        // The free-space reserve is kept for acknowledgements: an upload opened earlier stops when the disk fills.
        if try await diskIsLow(needing: UInt64(chunk.data.count)) {
            throw RelayError(.storageFull, "the relay's disk has no room for this chunk; try again later")
        }
        do {
            try await attachments.write(chunk.data, at: chunk.offset, to: upload.key, declaredSize: upload.size)
        } catch let failure as BlobStore.Failure {
            throw RelayError(failure)
        }
        // The write succeeded only at the offset the relay held, so it now holds up to the chunk's end: no second trip
        // to the disk to ask.
        return .uploadStatus(
            UploadStatus(
                size: upload.size,
                held: end.partialValue,
                state: .uploading,
                expiresAt: upload.expiresAt ?? Timestamp(millisecondsSince1970: 0)
            )
        )
    }

    /// Deletes `owner`'s upload `id` unless an envelope names it (spec/relay.md §Attachments); answered whatever
    /// the relay held.
    func abandonUpload(_ id: [UInt8], owner: Handle) async throws -> RelayMessage {
        let forgotten = try await store.abandonUpload(owner: owner, id: id)
        await settle(Removal(attachmentFiles: forgotten))
        return .uploadAbandoned
    }

    func commitUpload(_ id: [UInt8], owner: Handle) async throws -> RelayMessage {
        guard let upload = try await store.upload(owner: owner, id: id) else {
            throw RelayError(.unknownAttachment, "no upload \(id.hexString) is open for \(owner)")
        }
        if !upload.complete {
            do {
                try await attachments.commit(upload.key, declaredSize: upload.size, sha256: upload.id)
            } catch let failure as BlobStore.Failure {
                throw RelayError(failure)
            }
            try await store.markCommitted(upload.key, expiresAt: configuration.clock.now().adding(seconds: configuration.uploadLifetimeSeconds))
        }
        guard let committed = try await store.upload(owner: owner, id: id) else {
            throw RelayError(.unknownAttachment, "upload \(id.hexString) expired while it was committed")
        }
        return try await status(committed, sizeAsked: committed.size)
    }

    /// Names an upload opened under a provisional id by the SHA-256 of its bytes, then commits it as
    /// `commitUpload` does (spec/relay.md §Attachments, commit_upload_as).
    func commitUpload(_ request: CommitUploadAs, owner: Handle) async throws -> RelayMessage {
        guard let provisional = try await store.upload(owner: owner, id: request.uploadID) else {
            throw RelayError(.unknownAttachment, "no upload \(request.uploadID.hexString) is open for \(owner)")
        }
        if provisional.complete {
            // A committed upload keeps the name its bytes were checked against.
            guard constantTimeEquals(provisional.id, request.attachmentID) else {
                throw RelayError(.attachmentHashMismatch, "upload \(request.uploadID.hexString) is committed under its own id")
            }
            return try await status(provisional, sizeAsked: provisional.size)
        }
        guard request.size <= provisional.size else {
            throw RelayError(.beyondDeclaredSize, "\(request.size) bytes pass the declared size of \(provisional.size)")
        }
        let held = try await attachments.progress(provisional.key) ?? 0
        guard held == request.size else {
            throw RelayError(.uploadIncomplete, "the relay holds \(held) of \(request.size) bytes")
        }
        switch try await store.renameUpload(provisional.key, owner: owner, to: request.attachmentID, size: request.size) {
        case .renamed(let replaced):
            await settle(Removal(attachmentFiles: replaced))
            return try await commitUpload(request.attachmentID, owner: owner)
        case .committedAlready(let existing, let forgotten):
            await settle(Removal(attachmentFiles: forgotten))
            return try await status(existing, sizeAsked: existing.size)
        case .unknown:
            throw RelayError(.unknownAttachment, "upload \(request.uploadID.hexString) was committed or abandoned meanwhile")
        }
    }

    func download(_ request: DownloadRequest, by account: Handle) async throws -> RelayMessage {
        // Another account's attachment, one not yet committed and one that does not exist look the same.
        guard let attachment = try await store.downloadable(request.attachmentID, by: account) else {
            throw RelayError(.unknownAttachment, "no attachment \(request.attachmentID.hexString) for \(account)")
        }
        guard request.offset <= attachment.size else {
            throw RelayError(.beyondDeclaredSize, "offset \(request.offset) is past the attachment's \(attachment.size) bytes")
        }
        let length = Int(min(UInt64(request.length), attachment.size - request.offset))
        let data: [UInt8]
        do {
            data = length == 0 ? [] : try await attachments.read(attachment.key, from: request.offset, length: length)
        } catch let failure as BlobStore.Failure {
            throw RelayError(failure)
        }
        guard data.count == length else {
            throw RelayError(.unknownAttachment, "attachment \(request.attachmentID.hexString) was deleted while it was read")
        }
        return .attachmentData(AttachmentData(size: attachment.size, offset: request.offset, data: data))
    }

    /// The status frame for an upload, or `beyond_declared_size` when the client asked for another size.
    private func status(_ upload: StoredAttachment, sizeAsked: UInt64) async throws -> RelayMessage {
        guard upload.size == sizeAsked else {
            throw RelayError(.beyondDeclaredSize, "the upload is open with size \(upload.size), not \(sizeAsked)")
        }
        let held = upload.complete ? upload.size : min(try await attachments.progress(upload.key) ?? 0, upload.size)
        return .uploadStatus(
            UploadStatus(
                size: upload.size,
                held: held,
                state: upload.complete ? .complete : .uploading,
                expiresAt: upload.expiresAt ?? Timestamp(millisecondsSince1970: 0)
            )
        )
    }

    /// Whether free disk space is below the reserve once `bytes` more are written.
    func diskIsLow(needing bytes: UInt64 = 0) async throws -> Bool {
        let available: UInt64
        do {
            available = try await freeSpace.available(trusting: configuration.freeSpaceCheckInterval) {
                try await attachments.availableBytes()
            }
        } catch let failure as BlobStore.Failure {
            throw RelayError(failure)
        }
        return available < configuration.minimumFreeDiskBytes || available - configuration.minimumFreeDiskBytes < bytes
    }

    /// Pushes the notices of a removal to connected senders and deletes the files of forgotten attachments.
    func settle(_ removal: Removal) async {
        for notice in removal.notices {
            clients.push(.pushNotice(notice.wire), to: notice.sender, once: .notice(notice.sequence))
        }
        try? await attachments.delete(removal.attachmentFiles)
    }
}

/// What a send does once its transaction has committed, run by the store where the commit finished: a stored
/// envelope is pushed to the recipient's writable connections and, for a pipelined send, the `stored` answer is
/// written if the channel can take it. Otherwise (a refusal, which is rare, or a channel that is not writable) the
/// send's task answers, waiting for the channel as any answer does: a client that does not read holds up its own
/// connection, and the relay does not gather answers for it.
///
/// Unchecked: `run` is called once, by the store, before `enqueue` returns, and `wasAnswered` is read only after it
/// has returned (the task's resumption orders the two); a lock would cost an allocation per send for nothing.
final class CommittedSend: @unchecked Sendable {
    private let submission: Submission
    private let clients: ConnectedClients
    private let channel: (any Channel)?
    private let requestID: UInt32
    /// Whether `run` wrote the answer.
    private(set) var wasAnswered = false

    /// With `channel`, the answer to request `requestID` is written here when it can be.
    init(_ submission: Submission, clients: ConnectedClients, answeringOn channel: (any Channel)? = nil, requestID: UInt32 = 0) {
        self.submission = submission
        self.clients = clients
        self.channel = channel
        self.requestID = requestID
    }

    func run(_ outcome: EnqueueOutcome, _ writes: inout DurableWrites) {
        let receipt: StoredReceipt
        switch outcome {
        case .stored(let sequence):
            let delivered = DeliveredEnvelope(
                sequence: UInt64(sequence),
                envelopeID: submission.id.bytes,
                sender: submission.sender,
                storedAt: submission.storedAt,
                envelope: submission.body
            )
            clients.push(.pushEnvelope(delivered), to: submission.recipient, once: .envelope(sequence), into: &writes)
            receipt = StoredReceipt(envelopeID: submission.id.bytes, storedAt: submission.storedAt, expiresAt: submission.expiresAt)
        case .duplicate(_, let storedAt, let expiresAt):
            receipt = StoredReceipt(envelopeID: submission.id.bytes, storedAt: storedAt, expiresAt: expiresAt)
        case .queueFull, .senderShareFull, .unknownRecipient, .unknownAttachment:
            return
        }
        guard let channel, channel.isWritable else { return }
        writes.write(.stored(receipt), requestID: requestID, to: channel)
        wasAnswered = true
    }
}

extension RelayError {
    init(_ failure: BlobStore.Failure) {
        switch failure {
        case .offsetMismatch(let held): self.init(.offsetMismatch, "the relay holds \(held) bytes of this upload")
        case .beyondDeclaredSize(let declared): self.init(.beyondDeclaredSize, "the chunk passes the declared size of \(declared)")
        case .incomplete(let held, let declared): self.init(.uploadIncomplete, "the relay holds \(held) of \(declared) bytes")
        case .hashMismatch: self.init(.attachmentHashMismatch, "the uploaded bytes do not hash to the attachment id; start again from 0")
        case .unknown: self.init(.unknownAttachment, "the attachment's file is gone")
        case .storageFull: self.init(.storageFull, "the relay's disk is full; try again later")
        case .io(let detail): self.init(.storageFailed, "the relay could not use its disk: \(detail)")
        }
    }
}

/// The free space of the relay's disk, asked of the system at most every 100 ms (sends ask on every request).
final class FreeSpaceCache: Sendable {
    private let state = NIOLockedValueBox<(bytes: UInt64, at: NIODeadline)?>(nil)

    func available(trusting maximumAge: Duration, _ measure: () async throws -> UInt64) async throws -> UInt64 {
        let now = NIODeadline.now()
        if let cached = state.withLockedValue({ $0 }), now - cached.at < TimeAmount(maximumAge) { return cached.bytes }
        let bytes = try await measure()
        state.withLockedValue { $0 = (bytes, now) }
        return bytes
    }
}
