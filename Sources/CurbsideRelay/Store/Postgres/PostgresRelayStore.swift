import CurbsideWire
import Foundation
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle

/// The relay's store on PostgreSQL, for relays that outgrow one machine: several relay processes share one database,
/// and a synchronous standby keeps every acknowledged consult when the primary's machine is lost.
///
/// The semantics are `SQLiteRelayStore`'s, method for method (the same test suite runs against both): each method is
/// one transaction, and a send is answered `stored` only after its COMMIT returned under `synchronous_commit = on`.
/// Sends that arrive while a transaction is being written share the next one, written as multi-row statements.
///
/// Where SQLite has one writer, PostgreSQL has many, across processes: what SQLite's serialisation gave for free is
/// made explicit here. Sends to one recipient take a transaction-level advisory lock on it (so its quota and the
/// duplicate check see every earlier send), one-time prekeys are taken with `FOR UPDATE SKIP LOCKED`, and removals
/// notice only the rows their own `DELETE … RETURNING` removed, so two processes never notice one envelope twice.
///
/// After each commit that stores envelopes or notices, a notification on the `curbside_relay` channel tells the other
/// relay processes, which push to their own connections (`PostgresFanOut`).
public final class PostgresRelayStore: RelayStore, Service {
    let pool: PostgresPool
    let logger: Logger
    private let groupCommit: GroupCommit
    /// Names this process in its notifications, so it skips its own (it pushed those already).
    public let origin: String

    /// Connects, brings the schema up to date, and returns the store; requests find the writable server themselves.
    public static func open(settings: PostgresSettings, logger: Logger = Logger(label: "curbside.relay.postgres")) async throws
        -> PostgresRelayStore
    {
        let store = PostgresRelayStore(pool: PostgresPool(settings: settings, logger: logger), logger: logger)
        try await store.pool.withConnection { connection in
            try await PostgresSchema.migrate(connection, logger: logger)
        }
        return store
    }

    init(pool: PostgresPool, logger: Logger) {
        self.pool = pool
        self.logger = logger
        self.origin = UUID().uuidString.prefix(8).lowercased()
        let origin = self.origin
        groupCommit = GroupCommit { [pool, logger] batch in
            // Not in `transaction`: the call commits before it answers.
            try await pool.withConnection { connection in
                try await Self.write(batch, origin: origin, on: connection, logger: logger)
            }
        }
    }

    /// Closes the connections; requests from now on fail with `store_unavailable`.
    public func close() async {
        await pool.close()
    }

    /// As a service of the relay's group: runs until the group shuts down, then closes the connections. Added
    /// before the listener, it is stopped after it, so requests being answered keep their database.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }

    /// The settings the store was opened with (the fan-out connects with them).
    public var settings: PostgresSettings { pool.settings }

    /// Transactions written for sends, and the envelopes in them.
    var groupCommitStatistics: (transactions: Int, envelopes: Int) {
        get async { (await groupCommit.transactions, await groupCommit.items) }
    }

    /// The names of the schema migrations applied.
    public func appliedMigrations() async throws -> [String] {
        let logger = self.logger
        return try await pool.withConnection { try await PostgresSchema.appliedMigrations($0, logger: logger) }
    }

    // MARK: - Transactions

    /// Runs `body` in one transaction on a connection to the writable server. COMMIT has returned (durably, on the
    /// synchronous standby too if there is one) before this does; any failure rolls back.
    static func transaction<T: Sendable>(
        _ pool: PostgresPool,
        logger: Logger,
        _ body: @Sendable @escaping (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await pool.withConnection { connection in
            try await connection.query(ifOpen: "BEGIN", logger: logger)
            do {
                let value = try await body(connection)
                try await connection.query(ifOpen: "COMMIT", logger: logger)
                return value
            } catch {
                try? await connection.query(ifOpen: "ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    func transaction<T: Sendable>(_ body: @Sendable @escaping (PostgresConnection) async throws -> T) async throws -> T {
        try await Self.transaction(pool, logger: logger, body)
    }

    /// One read (a single statement sees one snapshot; several are wrapped in a transaction).
    func reading<T: Sendable>(_ body: @Sendable @escaping (PostgresConnection) async throws -> T) async throws -> T {
        try await pool.withConnection(body)
    }

    // MARK: - Accounts and key directory

    public func addEnrollment(handle: Handle, codeHash: [UInt8], expiresAt: Timestamp) async throws {
        let logger = self.logger
        try await transaction { connection in
            try await connection.query(ifOpen:
                """
                INSERT INTO enrollment (code_hash, handle, expires_at)
                VALUES (\(ByteBuffer(bytes: codeHash)), \(handle.rawValue), \(expiresAt.signedMilliseconds))
                """,
                logger: logger
            )
        }
    }

    public func register(handle: Handle, identityKey: VerifyingKey, codeHash: [UInt8], now: Timestamp) async throws {
        let logger = self.logger
        let key = ByteBuffer(bytes: identityKey.rawRepresentation)
        try await transaction { connection in
            // Marking the code used is the check: of two registrations with one code, one updates the row.
            let used = try await connection.query(ifOpen:
                """
                UPDATE enrollment SET used_at = \(now.signedMilliseconds)
                WHERE code_hash = \(ByteBuffer(bytes: codeHash)) AND handle = \(handle.rawValue) AND used_at IS NULL
                    AND expires_at > \(now.signedMilliseconds)
                RETURNING 1
                """,
                logger: logger
            ).collect().count
            guard used == 1 else {
                throw RelayError(.enrollmentInvalid, "no usable enrollment code for \(handle)")
            }
            let taken = try await connection.query(ifOpen:
                "SELECT 1 FROM account WHERE handle = \(handle.rawValue) OR identity_key = \(key)",
                logger: logger
            ).collect().count
            guard taken == 0 else {
                throw RelayError(.handleTaken, "\(handle) or its identity key is registered already")
            }
            let inserted = try await connection.query(ifOpen:
                """
                INSERT INTO account (handle, identity_key, registered_at) VALUES (\(handle.rawValue), \(key), \(now.signedMilliseconds))
                ON CONFLICT DO NOTHING RETURNING 1
                """,
                logger: logger
            ).collect().count
            // Another process registered the handle or the key between the check and the insert.
            guard inserted == 1 else {
                throw RelayError(.handleTaken, "\(handle) or its identity key is registered already")
            }
        }
    }

    public func checkEnrollment(handle: Handle, codeHash: [UInt8], now: Timestamp) async throws {
        let logger = self.logger
        let (usable, taken) = try await reading { connection in
            let usable = try await connection.query(ifOpen:
                """
                SELECT 1 FROM enrollment WHERE code_hash = \(ByteBuffer(bytes: codeHash)) AND handle = \(handle.rawValue)
                    AND used_at IS NULL AND expires_at > \(now.signedMilliseconds)
                """,
                logger: logger
            ).collect().count == 1
            let taken = try await connection.query(ifOpen: "SELECT 1 FROM account WHERE handle = \(handle.rawValue)", logger: logger)
                .collect().count == 1
            return (usable, taken)
        }
        guard usable else { throw RelayError(.enrollmentInvalid, "no usable enrollment code for \(handle)") }
        guard !taken else { throw RelayError(.handleTaken, "\(handle) is registered already") }
    }

    public func identityKey(for handle: Handle) async throws -> VerifyingKey? {
        let logger = self.logger
        let raw = try await reading { connection in
            try await connection.query(ifOpen: "SELECT identity_key FROM account WHERE handle = \(handle.rawValue)", logger: logger)
                .decode(ByteBuffer.self).first { _ in true }
        }
        return try raw.map { try VerifyingKey(rawRepresentation: Array(buffer: $0)) }
    }

    public func loginKey(for handle: Handle) async throws -> (key: VerifyingKey, lastSeenAt: Timestamp?)? {
        let logger = self.logger
        let row = try await reading { connection in
            try await connection.query(ifOpen: "SELECT identity_key, last_seen_at FROM account WHERE handle = \(handle.rawValue)", logger: logger)
                .decode((ByteBuffer, Int64?).self).first { _ in true }
        }
        return try row.map { (try VerifyingKey(rawRepresentation: Array(buffer: $0.0)), $0.1.map(Timestamp.init(storedMilliseconds:))) }
    }

    public func storePrekeys(for handle: Handle, signedPrekey: SignedPrekey?, oneTimePrekeys: [OneTimePrekey]) async throws {
        let logger = self.logger
        try await transaction { connection in
            if let signedPrekey {
                try await connection.query(ifOpen:
                    """
                    INSERT INTO signed_prekey (handle, record) VALUES (\(handle.rawValue), \(ByteBuffer(bytes: signedPrekey.encoded)))
                    ON CONFLICT (handle) DO UPDATE SET record = excluded.record
                    """,
                    logger: logger
                )
            }
            if !oneTimePrekeys.isEmpty {
                let ids = oneTimePrekeys.map { Int64($0.id) }
                let records = oneTimePrekeys.map { ByteBuffer(bytes: $0.encoded) }
                try await connection.query(ifOpen:
                    """
                    INSERT INTO one_time_prekey (handle, id, record)
                    SELECT \(handle.rawValue), id, record FROM unnest(\(ids)::bigint[], \(records)::bytea[]) AS t(id, record)
                    ON CONFLICT DO NOTHING
                    """,
                    logger: logger
                )
            }
        }
    }

    public func oneTimePrekeyCount(for handle: Handle) async throws -> Int {
        let logger = self.logger
        return try await reading { connection in
            try await Self.count(connection, "SELECT COUNT(*) FROM one_time_prekey WHERE handle = \(handle.rawValue)", logger: logger)
        }
    }

    public func takeBundle(for handle: Handle, withOneTimePrekey: Bool) async throws
        -> (bundle: PrekeyBundle, oneTimePrekeysLeft: Int)?
    {
        let logger = self.logger
        return try await transaction { connection in
            guard
                let (identity, signed) = try await connection.query(ifOpen:
                    """
                    SELECT a.identity_key, s.record FROM account a JOIN signed_prekey s ON s.handle = a.handle
                    WHERE a.handle = \(handle.rawValue)
                    """,
                    logger: logger
                ).decode((ByteBuffer, ByteBuffer).self).first(where: { _ in true })
            else { return nil }
            let owner = Party(identityKey: try VerifyingKey(rawRepresentation: Array(buffer: identity)), handle: handle)
            var oneTime: OneTimePrekey?
            if withOneTimePrekey {
                // SKIP LOCKED: concurrent fetches, from any process, each take a different prekey instead of waiting
                // for the same one and then finding it gone.
                let taken = try await connection.query(ifOpen:
                    """
                    DELETE FROM one_time_prekey WHERE (handle, id) = (
                        SELECT handle, id FROM one_time_prekey WHERE handle = \(handle.rawValue)
                        ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                    RETURNING record
                    """,
                    logger: logger
                ).decode(ByteBuffer.self).first { _ in true }
                oneTime = try taken.map { try OneTimePrekey(decoding: Array(buffer: $0)) }
            }
            let left = try await Self.count(connection, "SELECT COUNT(*) FROM one_time_prekey WHERE handle = \(handle.rawValue)", logger: logger)
            let bundle = PrekeyBundle(owner: owner, signedPrekey: try SignedPrekey(decoding: Array(buffer: signed)), oneTimePrekey: oneTime)
            return (bundle, left)
        }
    }

    public func statistics() async throws -> RelayStatistics {
        let logger = self.logger
        // One statement: one snapshot, no transaction needed around it.
        return try await reading { connection in
            let row = try await connection.query(ifOpen:
                """
                SELECT (SELECT COUNT(*) FROM account), (SELECT COUNT(*) FROM one_time_prekey),
                    (SELECT COUNT(*) FROM enrollment WHERE used_at IS NULL), (SELECT COUNT(*) FROM envelope),
                    (SELECT COALESCE(SUM(bytes), 0)::bigint FROM queue_usage), (SELECT COUNT(*) FROM attachment),
                    (SELECT COALESCE(SUM(size), 0)::bigint FROM attachment)
                """,
                logger: logger
            ).decode((Int64, Int64, Int64, Int64, Int64, Int64, Int64).self).first { _ in true }
            guard let row else { throw RelayError(.storageFailed, "the relay's database returned no statistics") }
            return RelayStatistics(
                accounts: Int(row.0),
                oneTimePrekeys: Int(row.1),
                pendingEnrollments: Int(row.2),
                queuedEnvelopes: Int(row.3),
                queuedBytes: Int(row.4),
                attachments: Int(row.5),
                attachmentBytes: Int(row.6)
            )
        }
    }

    // MARK: - Envelope queue

    public func enqueue(_ submission: Submission, whenCommitted: SendCompletion?) async throws -> EnqueueOutcome {
        // Run by group commit once the batch's COMMIT has answered (after `write` returns).
        try await groupCommit.enqueue(submission, whenCommitted: whenCommitted)
    }

    /// Writes `batch` as group commit writes a batch, for tests that decide what one transaction holds.
    func write(_ batch: [Submission]) async throws -> [EnqueueOutcome] {
        let (origin, logger) = (self.origin, self.logger)
        return try await pool.withConnection { try await Self.write(batch, origin: origin, on: $0, logger: logger) }
    }

    /// Writes a batch of sends in one transaction and one round trip: `curbside_send` (PostgresSchema.sendProcedure)
    /// decides each in order as `SQLiteRelayStore.write` does (a body repeated within the batch is stored once; an
    /// item that cannot be stored gets its outcome without failing the others), writes them with multi-row
    /// statements and commits before it answers.
    fileprivate static func write(_ batch: [Submission], origin: String, on connection: PostgresConnection, logger: Logger)
        async throws -> [EnqueueOutcome]
    {
        let attachments = batch.enumerated().flatMap { index, item in item.attachments.map { (Int32(index + 1), $0) } }
        let rows = try await connection.query(ifOpen:
            """
            CALL curbside_send(
                \(batch.map { ByteBuffer(bytes: $0.id.bytes) })::bytea[], \(batch.map(\.sender.rawValue))::text[],
                \(batch.map(\.recipient.rawValue))::text[], \(batch.map { ByteBuffer(bytes: $0.body) })::bytea[],
                \(batch.map(\.storedAt.signedMilliseconds))::bigint[], \(batch.map(\.expiresAt.signedMilliseconds))::bigint[],
                \(batch.map { Int64(clamping: $0.maximumQueuedEnvelopes) })::bigint[],
                \(batch.map { Int64(clamping: $0.maximumQueuedBytes) })::bigint[],
                \(batch.map { Int64(clamping: $0.maximumQueuedEnvelopesPerSender) })::bigint[],
                \(batch.map { Int64(clamping: $0.maximumQueuedBytesPerSender) })::bigint[],
                \(attachments.map(\.0))::integer[], \(attachments.map { ByteBuffer(bytes: $0.1) })::bytea[],
                \(FanOutEvent.channel), \(FanOutEvent.envelopePayloadPrefix(origin: origin)),
                NULL, NULL, NULL, NULL, NULL
            )
            """,
            logger: logger
        )
        var answer: ([Int32], [Int64], [Int64], [Int64], [ByteBuffer])?
        for try await row in rows.decode(([Int32], [Int64], [Int64], [Int64], [ByteBuffer]).self) {
            answer = row
        }
        guard let (kinds, first, second, third, missing) = answer,
            [kinds.count, first.count, second.count, third.count, missing.count].allSatisfy({ $0 == batch.count })
        else {
            throw RelayError(.storageFailed, "the relay's database answered a batch of sends with the wrong number of outcomes")
        }
        return try kinds.indices.map { n in
            switch kinds[n] {
            case 0: .stored(sequence: first[n])
            case 1:
                .duplicate(
                    sequence: first[n],
                    storedAt: Timestamp(storedMilliseconds: second[n]),
                    expiresAt: Timestamp(storedMilliseconds: third[n])
                )
            case 2: .unknownRecipient
            case 3: .unknownAttachment(Array(buffer: missing[n]))
            case 4: .senderShareFull(envelopes: Int(first[n]), bytes: Int(second[n]))
            case 5: .queueFull
            default: throw RelayError(.storageFailed, "the relay's database answered a send with an unknown outcome \(kinds[n])")
            }
        }
    }

    /// Queues notifications for the other relay processes; PostgreSQL delivers them when (and only if) the
    /// transaction commits.
    static func notify(_ connection: PostgresConnection, _ events: [FanOutEvent], origin: String, logger: Logger) async throws {
        guard !events.isEmpty else { return }
        try await connection.query(ifOpen:
            "SELECT pg_notify(\(FanOutEvent.channel), p) FROM unnest(\(events.map { $0.payload(origin: origin) })::text[]) AS p",
            logger: logger
        ).collect()
    }

    public func queueUsage(for recipient: Handle) async throws -> (envelopes: Int, bytes: Int) {
        let logger = self.logger
        return try await reading { connection in
            let row = try await connection.query(ifOpen:
                "SELECT envelopes, bytes FROM queue_usage WHERE recipient = \(recipient.rawValue)",
                logger: logger
            ).decode((Int64, Int64).self).first { _ in true }
            return (Int(row?.0 ?? 0), Int(row?.1 ?? 0))
        }
    }

    public func pending(for recipient: Handle, after cursor: Int64, limit: Int, maximumBytes: Int) async throws -> [QueuedEnvelope] {
        let logger = self.logger
        return try await transaction { connection in
            // Sizes first, so only the bodies that fit are loaded: memory stays bounded by `maximumBytes`.
            var total = 0
            var last: Int64?
            for try await (sequence, bodyLength, senderLength) in try await connection.query(ifOpen:
                """
                SELECT sequence, length(body), octet_length(sender) FROM envelope
                WHERE recipient = \(recipient.rawValue) AND sequence > \(cursor) ORDER BY sequence LIMIT \(Int64(limit))
                """,
                logger: logger
            ).decode((Int64, Int32, Int32).self) {
                let size = DeliveredEnvelope.encodedByteCount(senderByteCount: Int(senderLength), envelopeByteCount: Int(bodyLength))
                if last != nil, total + size > maximumBytes { break }
                total += size
                last = sequence
            }
            guard let last else { return [] }
            return try await Self.envelopes(
                connection,
                """
                SELECT sequence, envelope_id, sender, recipient, body, stored_at, expires_at FROM envelope
                WHERE recipient = \(recipient.rawValue) AND sequence > \(cursor) AND sequence <= \(last) ORDER BY sequence
                """,
                logger: logger
            )
        }
    }

    public func storedEnvelope(_ id: EnvelopeID, for recipient: Handle) async throws -> (storedAt: Timestamp, expiresAt: Timestamp)? {
        let logger = self.logger
        return try await reading { connection in
            try await connection.query(ifOpen:
                """
                SELECT stored_at, expires_at FROM envelope
                WHERE envelope_id = \(ByteBuffer(bytes: id.bytes)) AND recipient = \(recipient.rawValue)
                """,
                logger: logger
            ).decode((Int64, Int64).self).first { _ in true }
                .map { (Timestamp(storedMilliseconds: $0.0), Timestamp(storedMilliseconds: $0.1)) }
        }
    }

    /// Envelopes stored for any of `recipients` after `sequence`, bodies included (the fan-out's catch-up).
    func envelopes(for recipients: [Handle], storedSince: Timestamp, limit: Int) async throws -> [QueuedEnvelope] {
        let logger = self.logger
        return try await reading { connection in
            try await Self.envelopes(
                connection,
                """
                SELECT sequence, envelope_id, sender, recipient, body, stored_at, expires_at FROM envelope
                WHERE recipient = ANY(\(recipients.map(\.rawValue))::text[]) AND stored_at >= \(storedSince.signedMilliseconds)
                ORDER BY sequence LIMIT \(Int64(limit))
                """,
                logger: logger
            )
        }
    }

    /// The envelope stored with `sequence`, if it is still queued.
    func envelope(sequence: Int64) async throws -> QueuedEnvelope? {
        let logger = self.logger
        return try await reading { connection in
            try await Self.envelopes(
                connection,
                """
                SELECT sequence, envelope_id, sender, recipient, body, stored_at, expires_at FROM envelope
                WHERE sequence = \(sequence)
                """,
                logger: logger
            ).first
        }
    }

    private static func envelopes(_ connection: PostgresConnection, _ query: PostgresQuery, logger: Logger) async throws
        -> [QueuedEnvelope]
    {
        var envelopes: [QueuedEnvelope] = []
        for try await (sequence, id, sender, recipient, body, storedAt, expiresAt) in try await connection.query(ifOpen: query, logger: logger)
            .decode((Int64, ByteBuffer, String, String, ByteBuffer, Int64, Int64).self)
        {
            guard let id = EnvelopeID(bytes: Array(buffer: id)) else {
                throw RelayError(.storageFailed, "an envelope id in the relay's database is not 32 bytes")
            }
            envelopes.append(
                QueuedEnvelope(
                    sequence: sequence,
                    id: id,
                    sender: try Handle(sender),
                    recipient: try Handle(recipient),
                    body: Array(buffer: body),
                    storedAt: Timestamp(storedMilliseconds: storedAt),
                    expiresAt: Timestamp(storedMilliseconds: expiresAt)
                )
            )
        }
        return envelopes
    }

    public func acknowledge(_ ids: [EnvelopeID], by recipient: Handle, now: Timestamp) async throws -> Removal {
        try await remove(ids.map { ($0, SenderNotice.Kind.deliveredToDevice) }, by: recipient, now: now)
    }

    public func reject(_ rejections: [(id: EnvelopeID, reason: Receipt.FailureReason)], by recipient: Handle, now: Timestamp)
        async throws -> Removal
    {
        try await remove(rejections.map { ($0.id, SenderNotice.Kind.rejected($0.reason)) }, by: recipient, now: now)
    }

    /// Deletes the envelopes named that are addressed to `recipient`, each with a notice of its kind for its sender;
    /// only what this transaction's DELETE removed is noticed, so a concurrent removal never notices twice.
    private func remove(_ removals: [(EnvelopeID, SenderNotice.Kind)], by recipient: Handle, now: Timestamp) async throws -> Removal {
        guard !removals.isEmpty else { return Removal() }
        let logger = self.logger
        let origin = self.origin
        var firstKinds: [[UInt8]: SenderNotice.Kind] = [:]
        for (id, kind) in removals where firstKinds[id.bytes] == nil { firstKinds[id.bytes] = kind }
        let kinds = firstKinds
        let ids = removals.map { ByteBuffer(bytes: $0.0.bytes) }
        return try await transaction { connection in
            let removed = try await Self.deleteEnvelopes(
                connection,
                """
                DELETE FROM envelope WHERE recipient = \(recipient.rawValue) AND envelope_id = ANY(\(ids)::bytea[])
                RETURNING sequence, envelope_id, sender, recipient
                """,
                logger: logger
            )
            return try await Self.settle(
                connection,
                removed.map { ($0, kinds[$0.id.bytes] ?? .deliveredToDevice) },
                now: now,
                origin: origin,
                logger: logger
            )
        }
    }

    /// What a removal's DELETE … RETURNING gave: each envelope's routing and the attachments it named.
    struct RemovedEnvelope {
        let sequence: Int64
        let id: EnvelopeID
        let sender: Handle
        let recipient: Handle
    }

    static func deleteEnvelopes(_ connection: PostgresConnection, _ query: PostgresQuery, logger: Logger) async throws
        -> [RemovedEnvelope]
    {
        var removed: [RemovedEnvelope] = []
        for try await (sequence, id, sender, recipient) in try await connection.query(ifOpen: query, logger: logger)
            .decode((Int64, ByteBuffer, String, String).self)
        {
            guard let id = EnvelopeID(bytes: Array(buffer: id)) else { continue }
            removed.append(RemovedEnvelope(sequence: sequence, id: id, sender: try Handle(sender), recipient: try Handle(recipient)))
        }
        return removed.sorted { $0.sequence < $1.sequence }
    }

    /// The rest of a removal, in its transaction: a notice for each removed envelope's sender, pruning, forgetting
    /// attachments no envelope names any more, and the notifications for the other relay processes.
    ///
    /// The envelope_attachment rows went with their envelopes (ON DELETE CASCADE), so an attachment is unreferenced
    /// when none is left; only attachments with no expiry of their own (referenced until now) are candidates.
    static func settle(
        _ connection: PostgresConnection,
        _ removed: [(RemovedEnvelope, SenderNotice.Kind)],
        now: Timestamp,
        origin: String,
        logger: Logger
    ) async throws -> Removal {
        var removal = Removal()
        guard !removed.isEmpty else { return removal }
        let rows = try await connection.query(ifOpen:
            """
            INSERT INTO notice (sender, kind, envelope_id, recipient, at)
            SELECT sender, kind, envelope_id, recipient, \(now.signedMilliseconds)
            FROM unnest(\(removed.map(\.0.sender.rawValue))::text[], \(removed.map { $0.1.storedValue })::bigint[],
                \(removed.map { ByteBuffer(bytes: $0.0.id.bytes) })::bytea[], \(removed.map(\.0.recipient.rawValue))::text[])
                WITH ORDINALITY AS t(sender, kind, envelope_id, recipient, n)
            ORDER BY n
            RETURNING sequence, envelope_id, recipient
            """,
            logger: logger
        )
        var sequences: [[UInt8]: [String: Int64]] = [:]
        for try await (sequence, id, recipient) in rows.decode((Int64, ByteBuffer, String).self) {
            sequences[Array(buffer: id), default: [:]][recipient] = sequence
        }
        for (envelope, kind) in removed {
            guard let sequence = sequences[envelope.id.bytes]?[envelope.recipient.rawValue] else { continue }
            removal.notices.append(
                SenderNotice(sequence: sequence, kind: kind, sender: envelope.sender, envelopeID: envelope.id, recipient: envelope.recipient, at: now)
            )
        }
        removal.notices.sort { $0.sequence < $1.sequence }
        try await pruneNotices(connection, of: Set(removal.notices.map(\.sender.rawValue)), logger: logger)
        removal.attachmentFiles = try await forgetUnreferenced(connection, logger: logger)
        try await notify(connection, removal.notices.map { .notice(sender: $0.sender.rawValue, sequence: $0.sequence) }, origin: origin, logger: logger)
        return removal
    }

    /// Deletes attachments that were kept for envelopes (no expiry of their own) and that no envelope names now.
    private static func forgetUnreferenced(_ connection: PostgresConnection, logger: Logger) async throws -> [Int64] {
        var forgotten: [Int64] = []
        for try await key in try await connection.query(ifOpen:
            """
            DELETE FROM attachment a WHERE a.expires_at IS NULL AND a.complete
                AND NOT EXISTS (SELECT 1 FROM envelope_attachment l WHERE l.attachment = a.key)
            RETURNING key
            """,
            logger: logger
        ).decode(Int64.self) {
            forgotten.append(key)
        }
        return forgotten.sorted()
    }

    public func expire(now: Timestamp) async throws -> Removal {
        let logger = self.logger
        let origin = self.origin
        return try await transaction { connection in
            // One sweeper at a time across relay processes; another finding the lock taken skips this round (the
            // holder is sweeping, and DELETE … RETURNING would keep even a concurrent sweep from noticing twice).
            let locked = try await connection.query(ifOpen:
                "SELECT pg_try_advisory_xact_lock(\(PostgresSchema.LockClass.expirySweeper.rawValue), 0)",
                logger: logger
            ).decode(Bool.self).first { _ in true }
            guard locked == true else { return Removal() }
            let removed = try await Self.deleteEnvelopes(
                connection,
                """
                DELETE FROM envelope WHERE expires_at <= \(now.signedMilliseconds)
                RETURNING sequence, envelope_id, sender, recipient
                """,
                logger: logger
            )
            var removal = try await Self.settle(connection, removed.map { ($0, .expired) }, now: now, origin: origin, logger: logger)
            // Uploads never sent (or no longer referred to and past their own expiry); their chunks go with them.
            for try await key in try await connection.query(ifOpen:
                """
                DELETE FROM attachment a WHERE a.expires_at IS NOT NULL AND a.expires_at <= \(now.signedMilliseconds)
                    AND NOT EXISTS (SELECT 1 FROM envelope_attachment l WHERE l.attachment = a.key)
                RETURNING key
                """,
                logger: logger
            ).decode(Int64.self) {
                removal.attachmentFiles.append(key)
            }
            return removal
        }
    }

    // MARK: - Notices

    public func notices(for sender: Handle, after cursor: Int64, limit: Int) async throws -> [SenderNotice] {
        let logger = self.logger
        return try await reading { connection in
            try await Self.notices(
                connection,
                """
                SELECT sequence, kind, sender, envelope_id, recipient, at FROM notice
                WHERE sender = \(sender.rawValue) AND sequence > \(cursor) ORDER BY sequence LIMIT \(Int64(limit))
                """,
                logger: logger
            )
        }
    }

    /// Notices recorded for any of `senders` at or after `since` (the fan-out's catch-up).
    func notices(for senders: [Handle], since: Timestamp, limit: Int) async throws -> [SenderNotice] {
        let logger = self.logger
        return try await reading { connection in
            try await Self.notices(
                connection,
                """
                SELECT sequence, kind, sender, envelope_id, recipient, at FROM notice
                WHERE sender = ANY(\(senders.map(\.rawValue))::text[]) AND at >= \(since.signedMilliseconds)
                ORDER BY sequence LIMIT \(Int64(limit))
                """,
                logger: logger
            )
        }
    }

    /// The notice recorded with `sequence`, if it is still kept.
    func notice(sequence: Int64) async throws -> SenderNotice? {
        let logger = self.logger
        return try await reading { connection in
            try await Self.notices(
                connection,
                "SELECT sequence, kind, sender, envelope_id, recipient, at FROM notice WHERE sequence = \(sequence)",
                logger: logger
            ).first
        }
    }

    private static func notices(_ connection: PostgresConnection, _ query: PostgresQuery, logger: Logger) async throws -> [SenderNotice] {
        var notices: [SenderNotice] = []
        for try await (sequence, kind, sender, id, recipient, at) in try await connection.query(ifOpen: query, logger: logger)
            .decode((Int64, Int32, String, ByteBuffer, String, Int64).self)
        {
            guard let id = EnvelopeID(bytes: Array(buffer: id)) else { continue }
            notices.append(
                SenderNotice(
                    sequence: sequence,
                    kind: SenderNotice.Kind(storedValue: Int64(kind)) ?? .expired,
                    sender: try Handle(sender),
                    envelopeID: id,
                    recipient: try Handle(recipient),
                    at: Timestamp(storedMilliseconds: at)
                )
            )
        }
        return notices
    }

    public func removeNotices(for sender: Handle, through sequence: Int64) async throws {
        let logger = self.logger
        try await transaction { connection in
            try await connection.query(ifOpen: "DELETE FROM notice WHERE sender = \(sender.rawValue) AND sequence <= \(sequence)", logger: logger)
        }
    }

    /// Keeps each of `senders`' newest `SQLiteRelayStore.maximumNoticesPerSender` notices, by the sender's own count
    /// (as the SQLite store does: another account's notices never push this sender's out).
    private static func pruneNotices(_ connection: PostgresConnection, of senders: Set<String>, logger: Logger) async throws {
        for sender in senders.sorted() {
            try await connection.query(ifOpen:
                """
                DELETE FROM notice WHERE sender = \(sender) AND sequence <= (
                    SELECT sequence FROM notice WHERE sender = \(sender) ORDER BY sequence DESC
                    LIMIT 1 OFFSET \(Int64(SQLiteRelayStore.maximumNoticesPerSender)))
                """,
                logger: logger
            )
        }
    }

    // MARK: - Attachments

    public func openUpload(owner: Handle, id: [UInt8], size: UInt64, expiresAt: Timestamp, quota: UInt64, maximumCount: Int)
        async throws -> UploadOpening
    {
        let logger = self.logger
        return try await transaction { connection in
            // Uploads of one owner are counted under the owner's lock, so two processes cannot both pass the quota.
            try await Self.lockUploads(of: owner, on: connection, logger: logger)
            if let existing = try await Self.attachment(connection, owner: owner, id: id, logger: logger) {
                return existing.size == size ? .opened(existing) : .sizeDiffers(existing)
            }
            let usage = try await connection.query(ifOpen:
                "SELECT COUNT(*), COALESCE(SUM(size), 0)::bigint FROM attachment WHERE owner = \(owner.rawValue)",
                logger: logger
            ).decode((Int64, Int64).self).first { _ in true }
            let (count, used) = (Int(usage?.0 ?? 0), UInt64(usage?.1 ?? 0))
            guard count < maximumCount, used + size <= quota else {
                return .quotaExceeded(used: used, count: count)
            }
            let key = try await connection.query(ifOpen:
                """
                INSERT INTO attachment (owner, sha256, size, expires_at)
                VALUES (\(owner.rawValue), \(ByteBuffer(bytes: id)), \(Int64(size)), \(expiresAt.signedMilliseconds))
                RETURNING key
                """,
                logger: logger
            ).decode(Int64.self).first { _ in true }
            guard let key else { throw RelayError(.storageFailed, "the relay's database did not record the upload") }
            return .opened(StoredAttachment(key: key, owner: owner, id: id, size: size, complete: false, expiresAt: expiresAt))
        }
    }

    public func upload(owner: Handle, id: [UInt8]) async throws -> StoredAttachment? {
        let logger = self.logger
        return try await reading { connection in try await Self.attachment(connection, owner: owner, id: id, logger: logger) }
    }

    public func abandonUpload(owner: Handle, id: [UInt8]) async throws -> [Int64] {
        let logger = self.logger
        return try await transaction { connection in
            var keys: [Int64] = []
            for try await key in try await connection.query(ifOpen:
                """
                DELETE FROM attachment a WHERE a.owner = \(owner.rawValue) AND a.sha256 = \(ByteBuffer(bytes: id))
                    AND NOT EXISTS (SELECT 1 FROM envelope_attachment l WHERE l.attachment = a.key)
                RETURNING key
                """,
                logger: logger
            ).decode(Int64.self) {
                keys.append(key)
            }
            return keys
        }
    }

    public func markCommitted(_ key: Int64, expiresAt: Timestamp) async throws {
        let logger = self.logger
        try await transaction { connection in
            // An upload already referred to (committed before) keeps living by its envelopes.
            try await connection.query(ifOpen:
                """
                UPDATE attachment SET complete = TRUE,
                    expires_at = CASE WHEN EXISTS (SELECT 1 FROM envelope_attachment WHERE attachment = \(key))
                        THEN NULL ELSE \(expiresAt.signedMilliseconds) END
                WHERE key = \(key)
                """,
                logger: logger
            )
        }
    }

    public func renameUpload(_ key: Int64, owner: Handle, to id: [UInt8], size: UInt64) async throws -> UploadRenaming {
        let logger = self.logger
        return try await transaction { connection in
            // Under the owner's upload lock, as openUpload: no other process opens or names one of its uploads meanwhile.
            try await Self.lockUploads(of: owner, on: connection, logger: logger)
            let open = try await connection.query(ifOpen:
                "SELECT NOT complete FROM attachment WHERE key = \(key) AND owner = \(owner.rawValue) FOR UPDATE",
                logger: logger
            ).decode(Bool.self).first { _ in true }
            guard open == true else { return .unknown }
            var forgotten: [Int64] = []
            if let existing = try await Self.attachment(connection, owner: owner, id: id, logger: logger), existing.key != key {
                // Uncommitted uploads are named by no envelope (a send names committed ones only).
                forgotten.append(existing.complete ? key : existing.key)
                try await connection.query(ifOpen: "DELETE FROM attachment WHERE key = \(forgotten[0])", logger: logger)
                if existing.complete { return .committedAlready(existing, forgotten: forgotten) }
            }
            try await connection.query(ifOpen:
                "UPDATE attachment SET sha256 = \(ByteBuffer(bytes: id)), size = \(Int64(size)) WHERE key = \(key)",
                logger: logger
            )
            return .renamed(forgotten: forgotten)
        }
    }

    /// Takes `owner`'s upload lock until the transaction ends.
    private static func lockUploads(of owner: Handle, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(ifOpen:
            "SELECT pg_advisory_xact_lock(\(PostgresSchema.LockClass.recipient.rawValue), hashtext(\("upload:" + owner.rawValue)))",
            logger: logger
        ).collect()
    }

    public func downloadable(_ id: [UInt8], by account: Handle) async throws -> StoredAttachment? {
        let logger = self.logger
        return try await reading { connection in
            try await Self.attachments(
                connection,
                """
                SELECT key, owner, sha256, size, complete, expires_at FROM attachment a
                WHERE sha256 = \(ByteBuffer(bytes: id)) AND complete AND (owner = \(account.rawValue) OR EXISTS (
                    SELECT 1 FROM envelope_attachment l JOIN envelope e ON e.sequence = l.envelope
                    WHERE l.attachment = a.key AND e.recipient = \(account.rawValue)))
                LIMIT 1
                """,
                logger: logger
            ).first
        }
    }

    public func attachmentKeys() async throws -> Set<Int64> {
        let logger = self.logger
        return try await reading { connection in
            var keys: Set<Int64> = []
            for try await key in try await connection.query(ifOpen: "SELECT key FROM attachment", logger: logger).decode(Int64.self) {
                keys.insert(key)
            }
            return keys
        }
    }

    private static func attachment(_ connection: PostgresConnection, owner: Handle, id: [UInt8], logger: Logger) async throws
        -> StoredAttachment?
    {
        try await attachments(
            connection,
            """
            SELECT key, owner, sha256, size, complete, expires_at FROM attachment
            WHERE owner = \(owner.rawValue) AND sha256 = \(ByteBuffer(bytes: id))
            """,
            logger: logger
        ).first
    }

    private static func attachments(_ connection: PostgresConnection, _ query: PostgresQuery, logger: Logger) async throws
        -> [StoredAttachment]
    {
        var found: [StoredAttachment] = []
        for try await (key, owner, sha256, size, complete, expiresAt) in try await connection.query(ifOpen: query, logger: logger)
            .decode((Int64, String, ByteBuffer, Int64, Bool, Int64?).self)
        {
            found.append(
                StoredAttachment(
                    key: key,
                    owner: try Handle(owner),
                    id: Array(buffer: sha256),
                    size: UInt64(size),
                    complete: complete,
                    expiresAt: expiresAt.map(Timestamp.init(storedMilliseconds:))
                )
            )
        }
        return found
    }

    static func count(_ connection: PostgresConnection, _ query: PostgresQuery, logger: Logger) async throws -> Int {
        Int(try await connection.query(ifOpen: query, logger: logger).decode(Int64.self).first { _ in true } ?? 0)
    }
}

/// What one relay process tells the others through PostgreSQL after a commit: an envelope stored for a recipient, or
/// a notice recorded for a sender. A hint only: the receiving process reads the row itself, and its periodic
/// catch-up finds anything a lost notification left out.
enum FanOutEvent: Sendable, Hashable {
    case envelope(recipient: String, sequence: Int64)
    case notice(sender: String, sequence: Int64)

    static let channel = "curbside_relay"

    /// `<origin> e|n <sequence> <handle>`: handles never contain spaces, and the whole stays far below NOTIFY's
    /// 8000-byte payload limit.
    func payload(origin: String) -> String {
        switch self {
        case .envelope(let recipient, let sequence): "\(Self.envelopePayloadPrefix(origin: origin))\(sequence) \(recipient)"
        case .notice(let sender, let sequence): "\(origin) n \(sequence) \(sender)"
        }
    }

    /// What an envelope's payload starts with; the sequence, a space and the recipient follow (the batch INSERT in
    /// `PostgresRelayStore.write` appends them in SQL, so its notifications cost no round trip of their own).
    static func envelopePayloadPrefix(origin: String) -> String { "\(origin) e " }

    /// The event and its origin, or nil for a payload this version does not know.
    init?(payload: String, origin: inout String) {
        let parts = payload.split(separator: " ", maxSplits: 3)
        guard parts.count == 4, let sequence = Int64(parts[2]) else { return nil }
        origin = String(parts[0])
        switch parts[1] {
        case "e": self = .envelope(recipient: String(parts[3]), sequence: sequence)
        case "n": self = .notice(sender: String(parts[3]), sequence: sequence)
        default: return nil
        }
    }
}
