import CurbsideTLS
import CurbsideWire
import Foundation
import GRDB

/// What a sync did.
public struct SyncReport: Sendable, Hashable, Codable {
    /// Messages that left the outbox (acknowledged `stored` by the relay).
    public var sent = 0
    /// Messages still in the outbox, and why the last one is waiting.
    public var queued = 0
    public var queueReason: String?
    /// New consults and replies, and receipts and notices applied.
    public var received = 0
    public var receipts = 0
    public var notices = 0
    /// Envelopes that could not be opened (recorded, acknowledged, reported to the sender where possible).
    public var failed = 0
    /// Whether the relay was reached at all.
    public var reachedRelay = false

    public init() {}
}

extension Client {
    // MARK: - Connections

    /// Runs `body` on a logged-in connection (the current one, or a new one closed afterwards).
    func withConnection<T: Sendable>(loggingIn: Bool = true, _ body: (RelayConnection) async throws -> T) async throws -> T {
        if let connection { return try await body(connection) }
        let connection: RelayConnection
        do {
            connection = try await RelayConnection.open(host: relay.host, port: relay.port, tls: tls)
        } catch let error as TLSError where error.code == .pinMismatch {
            throw ClientError(
                .certificateMismatch,
                "the relay at \(relay) did not present the pinned certificate key",
                hint: "the relay's fingerprint is printed by `curbside relay init`; if the operator replaced the relay's key, "
                    + "confirm the new fingerprint with them before trusting it"
            )
        } catch {
            throw ClientError.unreachable(relay, "\(error)")
        }
        if loggingIn {
            do {
                try await connection.login(as: me.handle, identity: identity)
            } catch let error as RelayClientError {
                await connection.close()
                throw clientError(error)
            }
        }
        self.connection = connection
        defer { self.connection = nil }
        do {
            let value = try await body(connection)
            await connection.close()
            return value
        } catch {
            await connection.close()
            throw error
        }
    }

    nonisolated func clientError(_ error: RelayClientError) -> ClientError {
        switch error {
        case .refused(let relayError) where relayError.code == .rateLimited || relayError.code == .relayBusy || relayError.isStorage:
            // The relay is there but cannot serve now: like an outage, queued work waits.
            ClientError(
                .relayUnavailable,
                "the relay cannot serve now: \(relayError.code.identifier)",
                hint: ClientError.hint(for: relayError),
                relayError: relayError
            )
        case .refused(let relayError) where relayError.code == .loginFailed:
            ClientError(
                .identityRejected,
                "the relay does not accept this profile's identity for \(me.handle)",
                hint: "this profile may be a stale copy, or the handle was registered from another device",
                relayError: relayError
            )
        case .refused(let relayError): ClientError.refused(relayError)
        case .connectionLost(let why): ClientError.unreachable(relay, why)
        case .timedOut(let seconds): ClientError.unreachable(relay, "no answer within \(seconds) s")
        case .protocolViolation(let what): ClientError(.protocolViolation, "the relay broke the protocol: \(what)")
        }
    }

    /// One request; relay errors become `ClientError`s.
    func request(_ connection: RelayConnection, _ message: RelayMessage) async throws -> RelayMessage {
        do {
            return try await connection.request(message)
        } catch let error as RelayClientError {
            throw clientError(error)
        }
    }

    // MARK: - Prekeys

    /// Rotates the signed prekey when it is due (the previous one is retired only once the relay has the new one),
    /// and tops the relay's one-time prekeys up to the target.
    func maintainPrekeys(_ connection: RelayConnection, now: Timestamp = .now()) async throws {
        let database = self.database
        let identity = self.identity
        let nowMS = now.signedMilliseconds
        let latest = try await database.writer.read { db in try PrekeyStore.newestSignedCreatedAt(db) }
        if latest.map({ now.millisecondsSince1970 >= UInt64($0) + Self.signedPrekeyRotation * 1000 }) ?? true {
            let key = AgreementKey.Private()
            try await database.writer.write { db in
                let id = try ProfileDatabase.nextNumber(db, "next_signed_prekey_id", startingAt: 1)
                let sealedKey = try database.seal(
                    key.rawRepresentation.copiedBytes,
                    column: "prekey.private_key",
                    row: ProfileDatabase.prekeyRow(kind: 1, id: id)
                )
                try PrekeyStore.insert(
                    db,
                    .signed,
                    id: id,
                    privateKey: sealedKey,
                    createdAt: nowMS,
                    expiresAt: nowMS + Int64(Self.signedPrekeyLifetime * 1000),
                    published: false
                )
            }
        }
        // An unpublished signed prekey (new, or one whose upload failed before) goes up until the relay has it.
        var signed: SignedPrekey?
        if let record = try await database.writer.read({ db in try PrekeyStore.unpublishedSigned(db) }) {
            let id = record.id
            let key = try AgreementKey.Private(
                rawRepresentation: SecretBytes(
                    try database.unseal(record.privateKey, column: "prekey.private_key", row: ProfileDatabase.prekeyRow(kind: 1, id: id))
                )
            )
            signed = SignedPrekey(
                id: id,
                publicKey: key.publicKey,
                expiresAt: Timestamp(millisecondsSince1970: UInt64(record.expiresAt ?? 0)),
                signedBy: identity
            )
        }
        guard case .prekeysPublished(let heldAtFirst) = try await request(connection, .publishPrekeys(try PrekeyUpload(signedPrekey: signed, oneTimePrekeys: []))) else {
            throw ClientError(.protocolViolation, "the relay did not answer prekeys_published")
        }
        if let signed {
            // The relay hands out the new key from now on; the older ones are kept for envelopes already sealed to them.
            try await database.writer.write { db in
                try PrekeyStore.markPublished(db, .signed, ids: [signed.id])
                try PrekeyStore.retireSigned(db, except: signed.id, at: nowMS)
            }
        }
        var held = heldAtFirst
        // One-time keys whose upload failed before (a dropped connection) go up again first: the relay ignores ids
        // it holds already, and until it has them they must not count as on the relay or as handed out. If it
        // refuses them, no sender can have them: they are deleted.
        let unpublished = try await database.writer.read { db in try PrekeyStore.unpublishedOneTime(db) }
        for start in stride(from: 0, to: unpublished.count, by: 100) {
            let records = try unpublished[start..<min(start + 100, unpublished.count)].map { record -> OneTimePrekey in
                let id = record.id
                let key = try AgreementKey.Private(
                    rawRepresentation: SecretBytes(
                        try database.unseal(record.privateKey, column: "prekey.private_key", row: ProfileDatabase.prekeyRow(kind: 2, id: id))
                    )
                )
                return OneTimePrekey(id: id, publicKey: key.publicKey, signedBy: identity)
            }
            do {
                held = try await publishOneTimePrekeys(records, connection)
            } catch let error as ClientError where error.category != .network {
                let ids = records.map(\.id)
                try await database.writer.write { db in try PrekeyStore.deleteOneTime(db, ids: ids, unpublishedOnly: true) }
                logger.warning("\(ids.count) one-time prekeys the relay refused were deleted: \(error.message)")
            }
        }
        try await markHandedOut(held: held, now: now)
        var missing = max(0, Self.oneTimePrekeyTarget - Int(held))
        while missing > 0 {
            let batch = min(missing, 100)
            let keys = (0..<batch).map { _ in AgreementKey.Private() }
            let records = try await database.writer.write { db in
                try keys.map { key in
                    let id = try ProfileDatabase.nextNumber(db, "next_one_time_prekey_id", startingAt: 1)
                    let sealedKey = try database.seal(
                        key.rawRepresentation.copiedBytes,
                        column: "prekey.private_key",
                        row: ProfileDatabase.prekeyRow(kind: 2, id: id)
                    )
                    // Published once the relay says it holds them (a dropped upload is sent again next time).
                    try PrekeyStore.insert(db, .oneTime, id: id, privateKey: sealedKey, createdAt: nowMS, published: false)
                    return OneTimePrekey(id: id, publicKey: key.publicKey, signedBy: identity)
                }
            }
            held = try await publishOneTimePrekeys(records, connection)
            missing -= batch
        }
    }

    /// Uploads one-time prekeys and marks them published once the relay answers; returns how many it holds.
    private func publishOneTimePrekeys(_ records: [OneTimePrekey], _ connection: RelayConnection) async throws -> UInt32 {
        guard case .prekeysPublished(let held) = try await request(connection, .publishPrekeys(try PrekeyUpload(signedPrekey: nil, oneTimePrekeys: records))) else {
            throw ClientError(.protocolViolation, "the relay did not answer prekeys_published")
        }
        let ids = records.map(\.id)
        try await database.writer.write { db in try PrekeyStore.markPublished(db, .oneTime, ids: ids) }
        return held
    }

    /// Records which one-time prekeys have left the relay: it hands them out lowest id first, so all but the `held`
    /// newest unused ones it was given (keys.md §One-time prekeys). Keys whose upload is not confirmed do not count.
    func markHandedOut(held: UInt32, now: Timestamp) async throws {
        try await database.writer.write { db in try PrekeyStore.markHandedOut(db, keepingNewest: held, at: now.signedMilliseconds) }
    }

    /// How long a one-time private key handed out by the relay and never used is kept, and how many such keys at
    /// most: someone draining the relay's one-time prekeys cannot grow the profile's private keys without bound.
    static let handedOutPrekeyGrace: UInt64 = 7 * 86_400
    static let maximumHandedOutPrekeys = 200

    /// Deletes one-time private keys handed out by the relay longer ago than the grace, and all but the newest
    /// ``maximumHandedOutPrekeys`` of them. Runs after fetching, so what waited on the relay is opened first.
    func deleteHandedOutPrekeys(now: Timestamp = .now()) async throws {
        let cutoff = now.signedMilliseconds - Int64(Self.handedOutPrekeyGrace * 1000)
        try await database.writer.write { db in
            try PrekeyStore.deleteHandedOut(db, before: cutoff, keepingAtMost: Self.maximumHandedOutPrekeys)
        }
    }

    /// Deletes retired signed prekeys once no envelope sealed to them can still arrive: the grace period after
    /// retirement plus the relay's envelope lifetime. Runs after fetching, so what waited is opened first.
    func deleteRetiredPrekeys(now: Timestamp = .now()) async throws {
        let cutoff = now.signedMilliseconds - Int64((Self.signedPrekeyGrace + Self.relayEnvelopeLifetime) * 1000)
        try await database.writer.write { db in try PrekeyStore.deleteRetired(db, before: cutoff) }
    }

    // MARK: - Contacts and trust

    /// Fetches `handle`'s bundle and checks it against the pinned identity: pins it on first use, and refuses (with
    /// the new key recorded) when it differs.
    ///
    /// With `toChangedKey`, a changed key is recorded but accepted: only for the `untrusted_sender` receipt that
    /// tells the holder of the new key why its message was held back.
    func trustedBundle(_ connection: RelayConnection, for handle: Handle, toChangedKey: Bool = false, now: Timestamp = .now()) async throws -> PrekeyBundle {
        let reply: RelayMessage
        do {
            reply = try await connection.request(.fetchBundle(handle))
        } catch RelayClientError.refused(let error) where error.code == .unknownHandle {
            throw ClientError(
                .unknownRecipient,
                "\(handle) is not registered on the relay (or has not published prekeys yet)",
                hint: "check the handle",
                relayError: error
            )
        } catch let error as RelayClientError {
            throw clientError(error)
        }
        guard case .bundle(let bundle) = reply else { throw ClientError(.protocolViolation, "the relay did not answer with a bundle") }
        guard bundle.owner.handle == handle else {
            throw ClientError(.protocolViolation, "the relay answered with \(bundle.owner.handle)'s bundle for \(handle)")
        }
        let pinned: Party
        do {
            pinned = try await pin(bundle.owner, now: now)
        } catch let error as ClientError where error.category == .trust && toChangedKey {
            pinned = bundle.owner
        }
        do {
            try bundle.verify(now: now, expecting: pinned)
        } catch let error as BundleError where error.code == .prekeyExpired {
            throw ClientError(
                .recipientKeysExpired,
                "\(handle)'s published keys have expired (they have not been online for a while)",
                hint: "the message waits in the outbox and goes out once \(handle) is back online"
            )
        } catch {
            throw ClientError(.invalidBundle, "\(handle)'s prekey bundle does not verify (\(error)); nothing was sent to it")
        }
        return bundle
    }

    /// Pins `party` if its handle is new; returns the pinned party, or throws `keyChanged` (recording the new key)
    /// when the handle is pinned to another key.
    @discardableResult
    func pin(_ party: Party, now: Timestamp = .now()) async throws -> Party {
        let trusted = try await database.writer.write { db in try ContactStore.pinOnFirstUse(db, party, now: now) }
        if !trusted { throw ClientError.keyChanged(party.handle) }
        return party
    }

    // MARK: - Sending

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
            flush.record(id, result)
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
            let reply: RelayMessage
            do {
                reply = try await connection.request(.send(try SendRequest(recipient: recipient, envelope: envelope, attachments: attachmentIDs)))
            } catch let error as RelayClientError {
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
            return .stored(stored)
        } catch let error as ClientError where error.category == .network {
            try await recordAttempt(id, error)
            return .queued(error)
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
    private func recordAttempt(_ id: MessageID, _ error: ClientError) async throws {
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

    // MARK: - Sync

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
            report.queueReason = failure.message
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

    /// Sets what incoming attachments may make this device download (default ``AttachmentLimits/standard``); an
    /// attachment past a limit is not fetched, and its sender gets an `attachment_unavailable` receipt saying which.
    public func setAttachmentLimits(_ limits: AttachmentLimits) {
        attachmentLimits = limits
    }

    /// One round with the relay: prekeys, outbox, envelopes, notices, then the receipts that produced.
    func exchange(_ connection: RelayConnection, report: inout SyncReport) async throws {
        try await maintainPrekeys(connection)
        try await flushAll(connection, report: &report)
        try await fetchAll(connection, report: &report)
        try await applyNotices(connection, report: &report)
        try await flushAll(connection, report: &report)
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

extension Client {
    /// Stays connected: syncs, then processes pushed envelopes and notices as they arrive, calling `onEvent`;
    /// reconnects with exponential back-off (1 s doubling to 60 s) when the connection is lost. Returns when the
    /// task is cancelled.
    public func watch(onEvent: @Sendable (WatchEvent) -> Void) async {
        var backoff: Duration = .seconds(1)
        func emit(_ kind: WatchEvent.Kind, _ detail: String) {
            onEvent(WatchEvent(kind: kind, detail: detail, at: Timestamp.now().millisecondsSince1970))
        }
        while !Task.isCancelled {
            do {
                try await withConnection { connection in
                    emit(.connected, "\(relay)")
                    backoff = .seconds(1)
                    var report = SyncReport()
                    try await exclusively { try await exchange(connection, report: &report) }
                    self.announce(report, emit)
                    // The relay closes connections idle for 5 minutes; a cheap request every 2 keeps this one.
                    let keepalive = Task {
                        while !Task.isCancelled {
                            try await Task.sleep(for: .seconds(120))
                            _ = try await connection.request(.fetchNotices(after: UInt64.max))
                        }
                    }
                    defer { keepalive.cancel() }
                    for await push in connection.pushes {
                        if Task.isCancelled { break }
                        var report = SyncReport()
                        try await exclusively {
                            switch push {
                            case .pushEnvelope(let delivered):
                                let disposition = try await receive(delivered, report: &report, connection: connection)
                                try await settle([(delivered.envelopeID, disposition)], on: connection)
                            case .pushNotice:
                                try await applyNotices(connection, report: &report)
                            case .prekeysLow:
                                try await maintainPrekeys(connection)
                            default:
                                break
                            }
                            try await flushAll(connection, report: &report)
                        }
                        self.announce(report, emit)
                    }
                }
                if !Task.isCancelled { emit(.disconnected, "the relay closed the connection") }
            } catch {
                if !Task.isCancelled { emit(.disconnected, "\(error)") }
            }
            guard !Task.isCancelled else { return }
            emit(.retrying, "in \(backoff.components.seconds) s")
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(60))
        }
    }

    private nonisolated func announce(_ report: SyncReport, _ emit: (WatchEvent.Kind, String) -> Void) {
        if report.received > 0 { emit(.received, "\(report.received) new consult(s) or reply(ies); `curbside inbox` lists them") }
        if report.receipts > 0 { emit(.receipt, "\(report.receipts) receipt(s); `curbside status` shows them") }
        if report.notices > 0 { emit(.notice, "\(report.notices) relay notice(s)") }
        if report.sent > 0 { emit(.sent, "\(report.sent) message(s) left the outbox") }
        if report.failed > 0 { emit(.failed, "\(report.failed) envelope(s) could not be opened") }
    }
}
