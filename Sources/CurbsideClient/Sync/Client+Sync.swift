import CurbsideWire
import Foundation
import GRDB

extension Client {
    /// Sends what waits in the outbox, fetches and processes what the relay holds (acknowledging each envelope once
    /// it is saved), applies notices, and keeps prekeys topped up. When the relay cannot be reached, nothing is lost:
    /// the report says `reachedRelay == false` and the outbox keeps its messages.
    ///
    /// Syncs of one client run one at a time.
    public func sync() async throws -> SyncReport {
        var report = SyncReport()
        let failure = try await connected { connection in
            report.reachedRelay = true
            try await exchange(connection, report: &report)
        }
        if let failure {
            report.queued = try await database.writer.read { db in try OutboxStore.count(db) }
            report.queueError = failure
            report.reachedRelay = false
        }
        return report
    }

    /// Flushes the outbox up to and including message `id` (what was queued before it goes first, in order), and
    /// nothing else: no prekeys, no fetching. Reconnects after a drop part-way as `sync` does.
    ///
    /// Returns each tried message's result, and the network failure that left the rest waiting, if one did.
    func flush(through id: MessageID) async throws -> (flush: OutboxFlush, failure: ClientError?) {
        var flush = OutboxFlush()
        let failure = try await connected { connection in
            flush.merge(try await flushOutbox(connection, through: id))
            if let interruption = flush.interruption { throw interruption }
        }
        return (flush, failure)
    }

    /// Runs `body` on a connection, one at a time with every other sync, flush and watch step of this client.
    ///
    /// A connection that drops part-way (a poor link) is tried again, resuming every transfer where it stopped; the
    /// limit counts drops in a row that moved nothing, so a transfer that advances keeps going. Returns nil once
    /// `body` completes, or the network error that ended the last try (a relay that cannot be reached at all is
    /// left for later); other errors are thrown.
    private func connected(_ body: (RelayConnection) async throws -> Void) async throws -> ClientError? {
        try await exclusively {
            var attempt = 0
            while true {
                var reached = false
                let progressBefore = transferred.withLock { $0 }
                do {
                    try await withConnection { connection in
                        reached = true
                        try await body(connection)
                    }
                    return nil
                } catch let error as ClientError where error.category == .network {
                    logger.info("relay: \(error.code) \(error.message)")
                    attempt = transferred.withLock { $0 } != progressBefore ? 1 : attempt + 1
                    guard reached, attempt <= retryLimit else { return error }
                    try await Task.sleep(for: .milliseconds(min(250 << (attempt - 1), 30_000)))
                }
            }
        }
    }

    /// How many times in a row a sync reconnects after its connection drops part-way without any transfer moving
    /// forward (default 5, with back-off 0.25 s, 0.5 s, 1 s … up to 30 s). Drops after progress do not count.
    public func setRetryLimit(_ limit: Int) {
        retryLimit = max(0, limit)
    }

    /// Sets the size from which an attachment is uploaded while it is encrypted (default 8 MiB); tests lower it.
    func setUploadWhileEncryptingFrom(_ bytes: UInt64) {
        uploadWhileEncryptingFrom = bytes
    }

    /// Sets what incoming attachments may make this device download (default ``AttachmentLimits/standard``); an
    /// attachment past a limit is not fetched, and its sender gets an `attachment_unavailable` receipt saying which.
    public func setAttachmentLimits(_ limits: AttachmentLimits) {
        attachmentLimits = limits
    }

    /// One round with the relay: prekeys, outbox, envelopes, notices, then the receipts that produced.
    func exchange(_ connection: RelayConnection, report: inout SyncReport) async throws {
        try await maintainPrekeys(connection)
        try await abandonUploads(connection)
        try await flushAll(connection, report: &report)
        try await fetchAll(connection, report: &report)
        try await applyNotices(connection, report: &report)
        try await flushAll(connection, report: &report)
        try await discardDeliveredAttachments()
        try await deleteRetiredPrekeys()
        try await deleteHandedOutPrekeys()
        try await forgetOldEnvelopeIDs()
    }

    /// Flushes the whole outbox into `report`; throws the network failure that ended it, if one did.
    func flushAll(_ connection: RelayConnection, report: inout SyncReport) async throws {
        let flush = try await flushOutbox(connection)
        report.add(flush)
        if let interruption = flush.interruption { throw interruption }
    }

    /// Runs `body` when no other sync or watch step of this client is running (the actor alone does not prevent
    /// interleaving at suspension points).
    func exclusively<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        while busy {
            await withCheckedContinuation { busyWaiters.append($0) }
        }
        busy = true
        defer {
            busy = false
            if !busyWaiters.isEmpty { busyWaiters.removeFirst().resume() }
        }
        return try await body()
    }

    /// Fetches everything pending from the start of the queue (acknowledged envelopes are gone, so nothing is
    /// skipped even if the relay was restored from a backup), saving each before acknowledging it.
    func fetchAll(_ connection: RelayConnection, report: inout SyncReport) async throws {
        var cursor: UInt64 = 0
        while true {
            guard case .envelopes(let envelopes) = try await request(connection, .fetch(after: cursor, limit: 100)) else {
                throw ClientError(.protocolViolation, "the relay did not answer with envelopes")
            }
            if envelopes.isEmpty { return }
            var dispositions: [([UInt8], Disposition)] = []
            for envelope in envelopes {
                dispositions.append((envelope.envelopeID, try await receive(envelope, report: &report, connection: connection)))
            }
            // Saved (or recorded as rejected) durably above; only now may the relay delete them.
            try await settle(dispositions, on: connection)
            cursor = envelopes.last!.sequence
        }
    }

    func applyNotices(_ connection: RelayConnection, report: inout SyncReport) async throws {
        guard case .notices(let notices) = try await request(connection, .fetchNotices(after: 0)) else {
            throw ClientError(.protocolViolation, "the relay did not answer with notices")
        }
        guard let last = notices.last else { return }
        let database = self.database
        try await database.writer.write { db in
            for notice in notices {
                guard let id = try MessageStore.sent(db, envelopeID: notice.envelopeID) else { continue }
                // A rejection is a failure the relay reports for the recipient's device (spec/relay.md, `reject`):
                // never `delivered_to_device`.
                let (kind, detail): (DeliveryState, String?) =
                    switch notice.kind {
                    case .deliveredToDevice: (.deliveredToDevice, nil)
                    case .expired: (.expired, nil)
                    case .rejected:
                        (.failed, "rejected: \(notice.recipient)'s device could not open it (\(notice.reason.map(Self.identifier(of:)) ?? "other")); send it again")
                    }
                if try !EventStore.contains(db, id, kind) { try EventStore.add(db, database, id, kind, at: notice.at, detail: detail) }
            }
        }
        report.notices += notices.count
        _ = try await request(connection, .acknowledgeNotices(through: last.sequence))
        try await discardDeliveredAttachments()  // a watch learns of deliveries here
    }

    /// The spec's name of a failure reason (spec/envelope.md §Receipt).
    static func identifier(of reason: Receipt.FailureReason) -> String {
        switch reason {
        case .undecryptable: "undecryptable"
        case .badSignature: "bad_signature"
        case .attachmentUnavailable: "attachment_unavailable"
        case .attachmentCorrupt: "attachment_corrupt"
        case .unsupportedContent: "unsupported_content"
        case .untrustedSender: "untrusted_sender"
        case .expired: "expired"
        case .other: "other"
        }
    }
}
