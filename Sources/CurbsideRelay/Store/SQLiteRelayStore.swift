import Foundation
import CurbsideWire
import GRDB

/// The relay's store in one SQLite file (WAL, synchronous=FULL), or in memory for tests.
///
/// Every method is one write or read transaction on GRDB's serialized writer, so concurrent callers see each other's
/// effects in some order and never half of one.
public final class SQLiteRelayStore: RelayStore {
    let database: any DatabaseWriter
    private let commits: CommitQueue
    private let checkpointer: WALCheckpointer?

    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    ///
    /// - Parameter _testOnlyUnsafeNoSync: commits are not fsynced (`synchronous = OFF`), for the power-cut test's
    ///   control run alone, which must see acknowledged consults lost to show that the test can see loss.
    public convenience init(path: String, _testOnlyUnsafeNoSync: Bool = false) throws {
        var configuration = Configuration()
        // `relay status` and `relay enroll` open the file while `relay serve` has it: wait for locks, don't fail.
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // Durable before acknowledged: a commit returns only once it is on disk.
            try db.execute(sql: _testOnlyUnsafeNoSync ? "PRAGMA synchronous = OFF" : "PRAGMA synchronous = FULL")
            // Checkpoints run beside the writer (WALCheckpointer); a commit checkpoints only as a backstop, when the
            // log passes 64 MiB, so a send is not made to wait for copying the log into the database.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(WALCheckpointer.backstopPages)")
            // Once checkpointed, the log starts over in place; its file is cut back only past 64 MiB (what the
            // backstop lets it reach), so the writer does not wait for the file system to free and allocate blocks.
            try db.execute(sql: "PRAGMA journal_size_limit = \(WALCheckpointer.logSizeLimit)")
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        // GRDB turns WAL on after prepareDatabase and sets the writer to synchronous = NORMAL as it does, under which
        // a commit reaches the disk only at the next checkpoint: the writer is set back here (the power-cut test
        // lost acknowledged consults without this).
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: _testOnlyUnsafeNoSync ? "PRAGMA synchronous = OFF" : "PRAGMA synchronous = FULL")
        }
        try self.init(writer: pool, checkpointer: WALCheckpointer(path: path, configuration: configuration))
    }

    /// A store in memory, for tests.
    public static func inMemory() throws -> SQLiteRelayStore {
        try SQLiteRelayStore(writer: DatabaseQueue())
    }

    init(writer: any DatabaseWriter, checkpointer: WALCheckpointer? = nil) throws {
        database = writer
        self.checkpointer = checkpointer
        commits = CommitQueue(writer)
        try Self.migrator.migrate(writer)
    }

    /// One write transaction; a full disk (SQLITE_FULL) becomes `RelayError.storageFull`, so the client learns what
    /// happened and the connection goes on.
    static func transaction<T: Sendable>(
        _ database: any DatabaseWriter,
        _ updates: @escaping @Sendable (Database) throws -> T
    ) async throws -> T {
        do {
            return try await database.write(updates)
        } catch let error as DatabaseError {
            throw storageError(error)
        }
    }

    /// One read; as `transaction`, the disk's failures become relay errors.
    static func reading<T: Sendable>(
        _ database: any DatabaseWriter,
        _ value: @escaping @Sendable (Database) throws -> T
    ) async throws -> T {
        do {
            return try await database.read(value)
        } catch let error as DatabaseError {
            throw storageError(error)
        }
    }

    /// `storage_full` for a full disk, `storage_failed` when the disk or file cannot be used; anything else (a bug,
    /// such as a violated constraint) is left as it is.
    static func storageError(_ error: DatabaseError) -> any Error {
        switch error.resultCode {
        case .SQLITE_FULL:
            RelayError(.storageFull, "the relay's disk is full")
        case .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_READONLY, .SQLITE_CORRUPT, .SQLITE_NOTADB, .SQLITE_BUSY, .SQLITE_LOCKED:
            RelayError(.storageFailed, "the relay's database could not be used (\(error.resultCode))")
        default:
            error
        }
    }

    /// Transactions written for sends, and the envelopes in them (group commit makes the first smaller).
    var groupCommitStatistics: (transactions: Int, envelopes: Int) {
        commits.statistics
    }

    /// Named migrations; a migration is never edited once it has landed (GRDB's rule): new ones are appended.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: accounts and key directory") { db in
            try db.create(table: "account") { t in
                t.column("handle", .text).primaryKey()
                t.column("identity_key", .blob).notNull().unique()
                t.column("registered_at", .integer).notNull()
            }
            try db.create(table: "enrollment") { t in
                t.column("code_hash", .blob).primaryKey()
                t.column("handle", .text).notNull()
                t.column("expires_at", .integer).notNull()
                t.column("used_at", .integer)
            }
            try db.create(table: "signed_prekey") { t in
                t.column("handle", .text).primaryKey().references("account", onDelete: .cascade)
                t.column("record", .blob).notNull()
            }
            try db.create(table: "one_time_prekey") { t in
                t.column("handle", .text).notNull().references("account", onDelete: .cascade)
                t.column("id", .integer).notNull()
                t.column("record", .blob).notNull()
                t.primaryKey(["handle", "id"])
            }
        }
        migrator.registerMigration("v2: envelope queue and sender notices") { db in
            try db.create(table: "envelope") { t in
                t.autoIncrementedPrimaryKey("sequence")
                t.column("envelope_id", .blob).notNull().unique()
                t.column("sender", .text).notNull()
                t.column("recipient", .text).notNull().indexed()
                t.column("body", .blob).notNull()
                t.column("stored_at", .integer).notNull()
                t.column("expires_at", .integer).notNull().indexed()
            }
            try db.create(table: "notice") { t in
                t.autoIncrementedPrimaryKey("sequence")
                t.column("sender", .text).notNull().indexed()
                t.column("kind", .integer).notNull()
                t.column("envelope_id", .blob).notNull()
                t.column("recipient", .text).notNull()
                t.column("at", .integer).notNull()
            }
        }
        // v2 made envelope ids unique across recipients, so bytes queued for one recipient made a send of the same
        // bytes to another answer `stored` with nothing stored. Ids are unique per recipient from here on.
        migrator.registerMigration("v3: envelope ids unique per recipient") { db in
            try db.execute(
                sql: """
                    CREATE TABLE envelope_v3 (
                        sequence INTEGER PRIMARY KEY AUTOINCREMENT,
                        envelope_id BLOB NOT NULL,
                        sender TEXT NOT NULL,
                        recipient TEXT NOT NULL,
                        body BLOB NOT NULL,
                        stored_at INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL,
                        UNIQUE (recipient, envelope_id)
                    );
                    INSERT INTO envelope_v3 (sequence, envelope_id, sender, recipient, body, stored_at, expires_at)
                        SELECT sequence, envelope_id, sender, recipient, body, stored_at, expires_at FROM envelope;
                    DROP TABLE envelope;
                    ALTER TABLE envelope_v3 RENAME TO envelope;
                    CREATE INDEX envelope_on_expires_at ON envelope (expires_at);
                    """
            )
        }
        // Attachments: one row per account and id (two accounts' uploads never share a file), and which queued
        // envelopes refer to which attachment; deleting an envelope deletes its references.
        migrator.registerMigration("v4: attachments") { db in
            try db.create(table: "attachment") { t in
                t.autoIncrementedPrimaryKey("key")
                t.column("owner", .text).notNull()
                t.column("sha256", .blob).notNull().indexed()
                t.column("size", .integer).notNull()
                t.column("complete", .boolean).notNull().defaults(to: false)
                t.column("expires_at", .integer).indexed()
                t.uniqueKey(["owner", "sha256"])
            }
            try db.create(table: "envelope_attachment") { t in
                t.column("envelope", .integer).notNull().references("envelope", column: "sequence", onDelete: .cascade)
                t.column("attachment", .integer).notNull().indexed().references("attachment", column: "key")
                t.primaryKey(["envelope", "attachment"])
            }
        }
        // Each recipient's queue size, kept by triggers: the quota check on every send reads one row instead of
        // scanning the queue (which made sending slower as a queue grew).
        migrator.registerMigration("v5: queue usage counters") { db in
            try db.execute(
                sql: """
                    CREATE TABLE queue_usage (
                        recipient TEXT PRIMARY KEY,
                        envelopes INTEGER NOT NULL,
                        bytes INTEGER NOT NULL
                    );
                    INSERT INTO queue_usage (recipient, envelopes, bytes)
                        SELECT recipient, COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM envelope GROUP BY recipient;
                    CREATE TRIGGER envelope_counted AFTER INSERT ON envelope BEGIN
                        INSERT INTO queue_usage (recipient, envelopes, bytes) VALUES (NEW.recipient, 1, LENGTH(NEW.body))
                            ON CONFLICT (recipient) DO UPDATE SET envelopes = envelopes + 1, bytes = bytes + LENGTH(NEW.body);
                    END;
                    CREATE TRIGGER envelope_uncounted AFTER DELETE ON envelope BEGIN
                        UPDATE queue_usage SET envelopes = envelopes - 1, bytes = bytes - LENGTH(OLD.body)
                            WHERE recipient = OLD.recipient;
                    END;
                    """
            )
        }
        // A recipient's queue is shared between its senders, and an attachment counts against it once for every
        // envelope that names it (each is downloaded and kept once per envelope): per (recipient, sender) counters
        // beside the per-recipient ones, and each envelope's attachment bytes, both kept by triggers that replace
        // v5's.
        migrator.registerMigration("v6: per-sender queue shares and attachment bytes per envelope") { db in
            try db.execute(
                sql: """
                    ALTER TABLE envelope ADD COLUMN attachment_bytes INTEGER NOT NULL DEFAULT 0;
                    UPDATE envelope SET attachment_bytes = (
                        SELECT COALESCE(SUM(a.size), 0) FROM envelope_attachment l JOIN attachment a ON a.key = l.attachment
                        WHERE l.envelope = envelope.sequence);
                    CREATE TABLE sender_usage (
                        recipient TEXT NOT NULL,
                        sender TEXT NOT NULL,
                        envelopes INTEGER NOT NULL,
                        bytes INTEGER NOT NULL,
                        PRIMARY KEY (recipient, sender)
                    );
                    INSERT INTO sender_usage (recipient, sender, envelopes, bytes)
                        SELECT recipient, sender, COUNT(*), SUM(LENGTH(body) + attachment_bytes) FROM envelope
                        GROUP BY recipient, sender;
                    DELETE FROM queue_usage;
                    INSERT INTO queue_usage (recipient, envelopes, bytes)
                        SELECT recipient, COUNT(*), SUM(LENGTH(body) + attachment_bytes) FROM envelope GROUP BY recipient;
                    DROP TRIGGER envelope_counted;
                    DROP TRIGGER envelope_uncounted;
                    CREATE TRIGGER envelope_counted AFTER INSERT ON envelope BEGIN
                        INSERT INTO queue_usage (recipient, envelopes, bytes)
                            VALUES (NEW.recipient, 1, LENGTH(NEW.body) + NEW.attachment_bytes)
                            ON CONFLICT (recipient) DO UPDATE
                            SET envelopes = envelopes + 1, bytes = bytes + LENGTH(NEW.body) + NEW.attachment_bytes;
                        INSERT INTO sender_usage (recipient, sender, envelopes, bytes)
                            VALUES (NEW.recipient, NEW.sender, 1, LENGTH(NEW.body) + NEW.attachment_bytes)
                            ON CONFLICT (recipient, sender) DO UPDATE
                            SET envelopes = envelopes + 1, bytes = bytes + LENGTH(NEW.body) + NEW.attachment_bytes;
                    END;
                    CREATE TRIGGER envelope_uncounted AFTER DELETE ON envelope BEGIN
                        UPDATE queue_usage SET envelopes = envelopes - 1, bytes = bytes - LENGTH(OLD.body) - OLD.attachment_bytes
                            WHERE recipient = OLD.recipient;
                        UPDATE sender_usage SET envelopes = envelopes - 1, bytes = bytes - LENGTH(OLD.body) - OLD.attachment_bytes
                            WHERE recipient = OLD.recipient AND sender = OLD.sender;
                        DELETE FROM sender_usage WHERE recipient = OLD.recipient AND sender = OLD.sender AND envelopes = 0;
                    END;
                    """
            )
        }
        // When each account last logged in, for `relay accounts` (RelayStore.recordLogin).
        migrator.registerMigration("v7: account last seen") { db in
            try db.execute(sql: "ALTER TABLE account ADD COLUMN last_seen_at INTEGER")
        }
        return migrator
    }

    public func addEnrollment(handle: Handle, codeHash: [UInt8], expiresAt: Timestamp) async throws {
        try await Self.transaction(database) { db in
            try db.execute(
                sql: "INSERT INTO enrollment (code_hash, handle, expires_at) VALUES (?, ?, ?)",
                arguments: [Data(codeHash), handle.rawValue, expiresAt.signedMilliseconds]
            )
        }
    }

    public func register(handle: Handle, identityKey: VerifyingKey, codeHash: [UInt8], now: Timestamp) async throws {
        try await Self.transaction(database) { db in
            let row = try Row.fetchOne(
                db,
                sql: "SELECT handle, expires_at, used_at FROM enrollment WHERE code_hash = ?",
                arguments: [Data(codeHash)]
            )
            guard let row, row["handle"] as String == handle.rawValue, row["used_at"] as Int64? == nil,
                now.signedMilliseconds < row["expires_at"] as Int64
            else {
                throw RelayError(.enrollmentInvalid, "no usable enrollment code for \(handle)")
            }
            let taken = try Bool.fetchOne(
                db,
                sql: "SELECT EXISTS (SELECT 1 FROM account WHERE handle = ? OR identity_key = ?)",
                arguments: [handle.rawValue, Data(identityKey.rawRepresentation)]
            ) ?? false
            guard !taken else {
                throw RelayError(.handleTaken, "\(handle) or its identity key is registered already")
            }
            try db.execute(
                sql: "UPDATE enrollment SET used_at = ? WHERE code_hash = ?",
                arguments: [now.signedMilliseconds, Data(codeHash)]
            )
            try db.execute(
                sql: "INSERT INTO account (handle, identity_key, registered_at) VALUES (?, ?, ?)",
                arguments: [handle.rawValue, Data(identityKey.rawRepresentation), now.signedMilliseconds]
            )
        }
    }

    public func checkEnrollment(handle: Handle, codeHash: [UInt8], now: Timestamp) async throws {
        let (usable, taken) = try await Self.reading(database) { db in
            let usable = try Bool.fetchOne(
                db,
                sql: """
                    SELECT EXISTS (
                        SELECT 1 FROM enrollment WHERE code_hash = ? AND handle = ? AND used_at IS NULL AND expires_at > ?
                    )
                    """,
                arguments: [Data(codeHash), handle.rawValue, now.signedMilliseconds]
            ) ?? false
            let taken = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM account WHERE handle = ?)", arguments: [handle.rawValue]) ?? false
            return (usable, taken)
        }
        guard usable else { throw RelayError(.enrollmentInvalid, "no usable enrollment code for \(handle)") }
        guard !taken else { throw RelayError(.handleTaken, "\(handle) is registered already") }
    }

    public func identityKey(for handle: Handle) async throws -> VerifyingKey? {
        let raw = try await Self.reading(database) { db in
            try Data.fetchOne(db, sql: "SELECT identity_key FROM account WHERE handle = ?", arguments: [handle.rawValue])
        }
        return try raw.map { try VerifyingKey(rawRepresentation: Array($0)) }
    }

    public func storePrekeys(for handle: Handle, signedPrekey: SignedPrekey?, oneTimePrekeys: [OneTimePrekey]) async throws {
        try await Self.transaction(database) { db in
            if let signedPrekey {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO signed_prekey (handle, record) VALUES (?, ?)",
                    arguments: [handle.rawValue, Data(signedPrekey.encoded)]
                )
            }
            for prekey in oneTimePrekeys {
                try db.execute(
                    sql: "INSERT OR IGNORE INTO one_time_prekey (handle, id, record) VALUES (?, ?, ?)",
                    arguments: [handle.rawValue, Int64(prekey.id), Data(prekey.encoded)]
                )
            }
        }
    }

    public func oneTimePrekeyCount(for handle: Handle) async throws -> Int {
        try await Self.reading(database) { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM one_time_prekey WHERE handle = ?", arguments: [handle.rawValue]) ?? 0
        }
    }

    public func takeBundle(for handle: Handle, withOneTimePrekey: Bool) async throws
        -> (bundle: PrekeyBundle, oneTimePrekeysLeft: Int)?
    {
        try await Self.transaction(database) { db in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT a.identity_key, s.record FROM account a JOIN signed_prekey s ON s.handle = a.handle
                        WHERE a.handle = ?
                        """,
                    arguments: [handle.rawValue]
                )
            else { return nil }
            let owner = Party(identityKey: try VerifyingKey(rawRepresentation: Array(row[0] as Data)), handle: handle)
            let signed = try SignedPrekey(decoding: Array(row[1] as Data))
            var oneTime: OneTimePrekey?
            if withOneTimePrekey, let taken = try Row.fetchOne(
                db,
                sql: "SELECT id, record FROM one_time_prekey WHERE handle = ? ORDER BY id LIMIT 1",
                arguments: [handle.rawValue]
            ) {
                oneTime = try OneTimePrekey(decoding: Array(taken["record"] as Data))
                try db.execute(
                    sql: "DELETE FROM one_time_prekey WHERE handle = ? AND id = ?",
                    arguments: [handle.rawValue, taken["id"] as Int64]
                )
            }
            let left = try Int.fetchOne(
                db,
                sql: "SELECT COUNT(*) FROM one_time_prekey WHERE handle = ?",
                arguments: [handle.rawValue]
            ) ?? 0
            return (PrekeyBundle(owner: owner, signedPrekey: signed, oneTimePrekey: oneTime), left)
        }
    }

    public func statistics() async throws -> RelayStatistics {
        try await Self.reading(database) { db in
            RelayStatistics(
                accounts: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM account") ?? 0,
                oneTimePrekeys: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM one_time_prekey") ?? 0,
                pendingEnrollments: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM enrollment WHERE used_at IS NULL") ?? 0,
                queuedEnvelopes: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM envelope") ?? 0,
                queuedBytes: try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(bytes), 0) FROM queue_usage") ?? 0,
                attachments: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM attachment") ?? 0,
                attachmentBytes: try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(size), 0) FROM attachment") ?? 0
            )
        }
    }

    // MARK: - Envelope queue

    public func enqueue(_ submission: Submission, whenCommitted: SendCompletion?) async throws -> EnqueueOutcome {
        try await commits.enqueue(submission, whenCommitted: whenCommitted)
    }

    public func submit(_ submission: Submission, settle: @escaping SendSettlement) {
        commits.submit(submission, settle: settle)
    }

    /// Writes `batch` in one transaction as `CommitQueue` writes a batch, for tests that decide what one transaction
    /// holds.
    func write(_ batch: [Submission]) async throws -> [EnqueueOutcome] {
        try await Self.transaction(database) { db in try Self.insert(batch, into: db) }
    }

    /// The inserts of a batch of envelopes (`CommitQueue`), in the one transaction that writes them, so one fsync makes them all
    /// durable. Items are applied in order, so a body repeated within the batch is stored once; an item that cannot
    /// be stored (queue full, unknown attachment) gets its outcome without failing the others.
    ///
    /// A batch often holds several sends to one recipient (a backlog, a busy colleague): whether the recipient
    /// exists and what its queue and each sender's share hold are read once per batch and then kept up to date here
    /// as the envelope triggers keep them in the database (bytes are the body's plus the attachments').
    ///
    /// A retry (bytes already stored for the recipient) is answered `duplicate` with the stored row whatever the
    /// quota, as it takes no new space. Retries are rare, so the stored row is not looked up first: the insert finds
    /// it on the unique (recipient, envelope_id) index it probes anyway (`ON CONFLICT DO NOTHING`), and only a send
    /// that conflicted or would be refused looks for it (`duplicate(of:)`). A separate lookup before every insert was
    /// about 20,000 instructions a send.
    static func insert(_ batch: [Submission], into db: Database) throws -> [EnqueueOutcome] {
        var recipientExists: [String: Bool] = [:]
        var queueUsage: [String: (envelopes: Int, bytes: Int)] = [:]
        var senderUsage: [SenderShareKey: (envelopes: Int, bytes: Int)] = [:]
        // Prepared once per connection (cached), looked up once per batch (the lookup hashes the SQL).
        let insert = try db.cachedStatement(
            sql: """
                INSERT INTO envelope (envelope_id, sender, recipient, body, stored_at, expires_at, attachment_bytes)
                VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (recipient, envelope_id) DO NOTHING
                """
        )
        return try batch.map { item in
            let id = item.id
            let recipient = item.recipient.rawValue
            // A refusal, unless the send is a retry of something stored.
            func refused(_ outcome: EnqueueOutcome) throws -> EnqueueOutcome {
                try Self.duplicate(of: item, in: db) ?? outcome
            }
            let exists = try recipientExists[recipient] ?? {
                let exists = try Bool.fetchOne(
                    try db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM account WHERE handle = ?)"),
                    arguments: [recipient]
                ) == true
                recipientExists[recipient] = exists
                return exists
            }()
            guard exists else { return try refused(.unknownRecipient) }
            var keys: [Int64] = []
            var attachmentBytes = 0
            for attachment in item.attachments {
                guard
                    let row = try Row.fetchOne(
                        db,
                        sql: "SELECT key, size FROM attachment WHERE owner = ? AND sha256 = ? AND complete",
                        arguments: [item.sender.rawValue, Data(attachment)]
                    )
                else { return try refused(.unknownAttachment(attachment)) }
                keys.append(row[0])
                attachmentBytes += row[1] as Int
            }
            // What the envelope costs its recipient: its bytes, and those of every attachment it names, which
            // the recipient downloads and keeps for this envelope however many others name them too.
            let size = item.body.count + attachmentBytes
            let shareKey = SenderShareKey(recipient: recipient, sender: item.sender.rawValue)
            let share = try senderUsage[shareKey] ?? {
                let row = try Row.fetchOne(
                    try db.cachedStatement(sql: "SELECT envelopes, bytes FROM sender_usage WHERE recipient = ? AND sender = ?"),
                    arguments: [recipient, item.sender.rawValue]
                )
                return (row?[0] ?? 0, row?[1] ?? 0)
            }()
            senderUsage[shareKey] = share
            if share.envelopes >= item.maximumQueuedEnvelopesPerSender || share.bytes + size > item.maximumQueuedBytesPerSender {
                return try refused(.senderShareFull(envelopes: share.envelopes, bytes: share.bytes))
            }
            let usage = try queueUsage[recipient] ?? {
                let row = try Row.fetchOne(
                    try db.cachedStatement(sql: "SELECT envelopes, bytes FROM queue_usage WHERE recipient = ?"),
                    arguments: [recipient]
                )
                return (row?[0] ?? 0, row?[1] ?? 0)
            }()
            queueUsage[recipient] = usage
            if usage.envelopes >= item.maximumQueuedEnvelopes || usage.bytes + size > item.maximumQueuedBytes {
                return try refused(.queueFull)
            }
            try insert.execute(
                arguments: [
                    Data(id.bytes), item.sender.rawValue, recipient, Data(item.body),
                    item.storedAt.signedMilliseconds, item.expiresAt.signedMilliseconds, attachmentBytes,
                ]
            )
            guard db.changesCount == 1 else {
                // Stored before, or earlier in this batch: nothing was inserted, and no trigger counted it. The
                // insert used up a sequence number all the same (AUTOINCREMENT records the rowid it tried). It is
                // not handed back: a gap is harmless (clients resume after the last sequence they saw, as they do
                // over PostgreSQL's sequences), while handing one back relies on SQLite having taken it, and were
                // it not, the next envelope could take the number of a deleted one that a client's cursor has
                // already passed.
                guard let stored = try Self.duplicate(of: item, in: db) else {
                    throw DatabaseError(resultCode: .SQLITE_INTERNAL, message: "an envelope conflicted with no stored row")
                }
                return stored
            }
            // As envelope_counted has just counted it in the database.
            queueUsage[recipient] = (usage.envelopes + 1, usage.bytes + size)
            senderUsage[shareKey] = (share.envelopes + 1, share.bytes + size)
            let sequence = db.lastInsertedRowID
            for key in keys {
                try db.execute(
                    sql: "INSERT INTO envelope_attachment (envelope, attachment) VALUES (?, ?)",
                    arguments: [sequence, key]
                )
                // Referenced: it lives as long as an envelope refers to it, not by its own expiry.
                try db.execute(sql: "UPDATE attachment SET expires_at = NULL WHERE key = ?", arguments: [key])
            }
            return .stored(sequence: sequence)
        }
    }

    /// The stored envelope `item` repeats, as a duplicate outcome, if there is one.
    private static func duplicate(of item: Submission, in db: Database) throws -> EnqueueOutcome? {
        try Row.fetchOne(
            try db.cachedStatement(sql: "SELECT sequence, stored_at, expires_at FROM envelope WHERE envelope_id = ? AND recipient = ?"),
            arguments: [Data(item.id.bytes), item.recipient.rawValue]
        ).map { existing in
            EnqueueOutcome.duplicate(
                sequence: existing[0],
                storedAt: Timestamp(storedMilliseconds: existing[1]),
                expiresAt: Timestamp(storedMilliseconds: existing[2])
            )
        }
    }

    /// A sender's share of a recipient's queue, as `write` keeps it during a batch.
    private struct SenderShareKey: Hashable {
        let recipient: String
        let sender: String
    }

    public func storedEnvelope(_ id: EnvelopeID, for recipient: Handle) async throws -> (storedAt: Timestamp, expiresAt: Timestamp)? {
        try await Self.reading(database) { db in
            try Row.fetchOne(
                db,
                sql: "SELECT stored_at, expires_at FROM envelope WHERE envelope_id = ? AND recipient = ?",
                arguments: [Data(id.bytes), recipient.rawValue]
            ).map { (Timestamp(storedMilliseconds: $0[0]), Timestamp(storedMilliseconds: $0[1])) }
        }
    }

    public func queueUsage(for recipient: Handle) async throws -> (envelopes: Int, bytes: Int) {
        try await Self.reading(database) { db in
            let row = try Row.fetchOne(
                db,
                sql: "SELECT envelopes, bytes FROM queue_usage WHERE recipient = ?",
                arguments: [recipient.rawValue]
            )
            return (row?[0] ?? 0, row?[1] ?? 0)
        }
    }

    public func pending(for recipient: Handle, after cursor: Int64, limit: Int, maximumBytes: Int) async throws
        -> [QueuedEnvelope]
    {
        try await Self.reading(database) { db in
            // Sizes first, so only the bodies that fit are loaded: memory stays bounded by `maximumBytes`.
            let sizes = try Row.fetchAll(
                db,
                sql: """
                    SELECT sequence, LENGTH(body), LENGTH(CAST(sender AS BLOB)) FROM envelope
                    WHERE recipient = ? AND sequence > ? ORDER BY sequence LIMIT ?
                    """,
                arguments: [recipient.rawValue, cursor, limit]
            )
            var total = 0
            var last: Int64?
            for row in sizes {
                // Each envelope as the answer encodes it, routing fields included.
                let size = DeliveredEnvelope.encodedByteCount(senderByteCount: row[2], envelopeByteCount: row[1])
                if last != nil, total + size > maximumBytes { break }
                total += size
                last = row[0]
            }
            guard let last else { return [] }
            return try Row.fetchAll(
                db,
                sql: "SELECT * FROM envelope WHERE recipient = ? AND sequence > ? AND sequence <= ? ORDER BY sequence",
                arguments: [recipient.rawValue, cursor, last]
            ).map(QueuedEnvelope.init(row:))
        }
    }


    public func acknowledge(_ ids: [EnvelopeID], by recipient: Handle, now: Timestamp) async throws -> Removal {
        try await remove(ids.map { ($0, SenderNotice.Kind.deliveredToDevice) }, by: recipient, now: now)
    }

    public func reject(_ rejections: [(id: EnvelopeID, reason: Receipt.FailureReason)], by recipient: Handle, now: Timestamp)
        async throws -> Removal
    {
        try await remove(rejections.map { ($0.id, SenderNotice.Kind.rejected($0.reason)) }, by: recipient, now: now)
    }

    /// Deletes the envelopes named that are addressed to `recipient`, each with a notice of its kind for its sender.
    private func remove(_ removals: [(EnvelopeID, SenderNotice.Kind)], by recipient: Handle, now: Timestamp) async throws -> Removal {
        try await Self.transaction(database) { db in
            var removal = Removal()
            var referenced: [Int64] = []
            for (id, kind) in removals {
                guard
                    let row = try Row.fetchOne(
                        db,
                        sql: """
                            SELECT sequence, envelope_id, sender, recipient, X'' AS body, stored_at, expires_at
                            FROM envelope WHERE envelope_id = ? AND recipient = ?
                            """,
                        arguments: [Data(id.bytes), recipient.rawValue]
                    )
                else { continue }
                let envelope = try QueuedEnvelope(row: row)
                referenced += try Self.deleteEnvelope(db, envelope.sequence)
                removal.notices.append(try Self.addNotice(db, kind, for: envelope, at: now))
            }
            try Self.pruneNotices(db, of: Set(removal.notices.map(\.sender)))
            removal.attachmentFiles = try Self.forgetUnreferenced(db, referenced)
            return removal
        }
    }

    /// Deletes an envelope (and so its attachment references); returns the attachments it referred to.
    static func deleteEnvelope(_ db: Database, _ sequence: Int64) throws -> [Int64] {
        let keys = try Int64.fetchAll(db, sql: "SELECT attachment FROM envelope_attachment WHERE envelope = ?", arguments: [sequence])
        try db.execute(sql: "DELETE FROM envelope WHERE sequence = ?", arguments: [sequence])
        return keys
    }

    /// Forgets those of `keys` that no envelope refers to any more; returns them (their files are to be deleted).
    static func forgetUnreferenced(_ db: Database, _ keys: [Int64]) throws -> [Int64] {
        var forgotten: [Int64] = []
        for key in Set(keys).sorted() {
            let referenced = try Bool.fetchOne(
                db,
                sql: "SELECT EXISTS (SELECT 1 FROM envelope_attachment WHERE attachment = ?)",
                arguments: [key]
            ) ?? false
            guard !referenced else { continue }
            try db.execute(sql: "DELETE FROM attachment WHERE key = ?", arguments: [key])
            forgotten.append(key)
        }
        return forgotten
    }

    public func expire(now: Timestamp) async throws -> Removal {
        try await Self.transaction(database) { db in
            // Metadata only: expiring a large backlog must not load its bodies.
            let expired = try Row.fetchAll(
                db,
                sql: """
                    SELECT sequence, envelope_id, sender, recipient, X'' AS body, stored_at, expires_at
                    FROM envelope WHERE expires_at <= ? ORDER BY sequence
                    """,
                arguments: [now.signedMilliseconds]
            ).map(QueuedEnvelope.init(row:))
            var removal = Removal()
            var referenced: [Int64] = []
            for envelope in expired {
                referenced += try Self.deleteEnvelope(db, envelope.sequence)
                removal.notices.append(try Self.addNotice(db, .expired, for: envelope, at: now))
            }
            try Self.pruneNotices(db, of: Set(removal.notices.map(\.sender)))
            removal.attachmentFiles = try Self.forgetUnreferenced(db, referenced)
            // Uploads never sent (or no longer referred to and past their own expiry).
            let stale = try Int64.fetchAll(
                db,
                sql: "SELECT key FROM attachment WHERE expires_at IS NOT NULL AND expires_at <= ?",
                arguments: [now.signedMilliseconds]
            )
            for key in stale {
                try db.execute(sql: "DELETE FROM attachment WHERE key = ?", arguments: [key])
            }
            removal.attachmentFiles += stale
            return removal
        }
    }

    // MARK: - Attachments

    public func openUpload(owner: Handle, id: [UInt8], size: UInt64, expiresAt: Timestamp, quota: UInt64, maximumCount: Int)
        async throws -> UploadOpening
    {
        try await Self.transaction(database) { db in
            if let existing = try Self.attachment(db, where: "owner = ? AND sha256 = ?", [owner.rawValue, Data(id)]) {
                return existing.size == size ? .opened(existing) : .sizeDiffers(existing)
            }
            let usage = try Row.fetchOne(
                db,
                sql: "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM attachment WHERE owner = ?",
                arguments: [owner.rawValue]
            )
            let (count, used): (Int, Int64) = (usage?[0] ?? 0, usage?[1] ?? 0)
            guard count < maximumCount, UInt64(used) + size <= quota else {
                return .quotaExceeded(used: UInt64(used), count: count)
            }
            try db.execute(
                sql: "INSERT INTO attachment (owner, sha256, size, expires_at) VALUES (?, ?, ?, ?)",
                arguments: [owner.rawValue, Data(id), Int64(size), expiresAt.signedMilliseconds]
            )
            return .opened(
                StoredAttachment(key: db.lastInsertedRowID, owner: owner, id: id, size: size, complete: false, expiresAt: expiresAt)
            )
        }
    }

    public func upload(owner: Handle, id: [UInt8]) async throws -> StoredAttachment? {
        try await Self.reading(database) { db in
            try Self.attachment(db, where: "owner = ? AND sha256 = ?", [owner.rawValue, Data(id)])
        }
    }

    public func abandonUpload(owner: Handle, id: [UInt8]) async throws -> [Int64] {
        try await Self.transaction(database) { db in
            let keys = try Int64.fetchAll(
                db,
                sql: """
                    SELECT key FROM attachment
                    WHERE owner = ? AND sha256 = ? AND NOT EXISTS (SELECT 1 FROM envelope_attachment WHERE attachment = attachment.key)
                    """,
                arguments: [owner.rawValue, Data(id)]
            )
            for key in keys { try db.execute(sql: "DELETE FROM attachment WHERE key = ?", arguments: [key]) }
            return keys
        }
    }

    public func markCommitted(_ key: Int64, expiresAt: Timestamp) async throws {
        try await Self.transaction(database) { db in
            // An upload already referred to (committed before) keeps living by its envelopes.
            try db.execute(
                sql: """
                    UPDATE attachment SET complete = 1,
                        expires_at = CASE WHEN EXISTS (SELECT 1 FROM envelope_attachment WHERE attachment = ?)
                            THEN NULL ELSE ? END
                    WHERE key = ?
                    """,
                arguments: [key, expiresAt.signedMilliseconds, key]
            )
        }
    }

    public func renameUpload(_ key: Int64, owner: Handle, to id: [UInt8], size: UInt64) async throws -> UploadRenaming {
        try await Self.transaction(database) { db in
            guard try Bool.fetchOne(db, sql: "SELECT NOT complete FROM attachment WHERE key = ? AND owner = ?", arguments: [key, owner.rawValue]) == true
            else { return .unknown }
            var forgotten: [Int64] = []
            if let existing = try Self.attachment(db, where: "owner = ? AND sha256 = ? AND key != ?", [owner.rawValue, Data(id), key]) {
                // Uncommitted uploads are named by no envelope (a send names committed ones only).
                forgotten.append(existing.complete ? key : existing.key)
                try db.execute(sql: "DELETE FROM attachment WHERE key = ?", arguments: [forgotten[0]])
                if existing.complete { return .committedAlready(existing, forgotten: forgotten) }
            }
            try db.execute(
                sql: "UPDATE attachment SET sha256 = ?, size = ? WHERE key = ?",
                arguments: [Data(id), Int64(size), key]
            )
            return .renamed(forgotten: forgotten)
        }
    }

    public func downloadable(_ id: [UInt8], by account: Handle) async throws -> StoredAttachment? {
        try await Self.reading(database) { db in
            try Self.attachment(
                db,
                where: """
                    sha256 = ? AND complete AND (owner = ? OR EXISTS (
                        SELECT 1 FROM envelope_attachment l JOIN envelope e ON e.sequence = l.envelope
                        WHERE l.attachment = attachment.key AND e.recipient = ?))
                    """,
                [Data(id), account.rawValue, account.rawValue]
            )
        }
    }

    public func attachmentKeys() async throws -> Set<Int64> {
        try await Self.reading(database) { db in Set(try Int64.fetchAll(db, sql: "SELECT key FROM attachment")) }
    }

    private static func attachment(_ db: Database, where condition: String, _ arguments: StatementArguments) throws
        -> StoredAttachment?
    {
        try Row.fetchOne(db, sql: "SELECT * FROM attachment WHERE \(condition) LIMIT 1", arguments: arguments).map { row in
            StoredAttachment(
                key: row["key"],
                owner: try Handle(row["owner"] as String),
                id: Array(row["sha256"] as Data),
                size: UInt64(row["size"] as Int64),
                complete: row["complete"],
                expiresAt: (row["expires_at"] as Int64?).map(Timestamp.init(storedMilliseconds:))
            )
        }
    }

    public func notices(for sender: Handle, after cursor: Int64, limit: Int) async throws -> [SenderNotice] {
        try await Self.reading(database) { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM notice WHERE sender = ? AND sequence > ? ORDER BY sequence LIMIT ?",
                arguments: [sender.rawValue, cursor, limit]
            ).map { row in
                SenderNotice(
                    sequence: row["sequence"],
                    kind: SenderNotice.Kind(storedValue: row["kind"]) ?? .expired,
                    sender: sender,
                    envelopeID: EnvelopeID(bytes: Array(row["envelope_id"] as Data))!,
                    recipient: try Handle(row["recipient"] as String),
                    at: Timestamp(storedMilliseconds: row["at"])
                )
            }
        }
    }

    public func removeNotices(for sender: Handle, through sequence: Int64) async throws {
        try await Self.transaction(database) { db in
            try db.execute(
                sql: "DELETE FROM notice WHERE sender = ? AND sequence <= ?",
                arguments: [sender.rawValue, sequence]
            )
        }
    }

    /// Notices kept per sender; beyond it the oldest are dropped (a sender that never acknowledges its notices
    /// cannot grow the store without bound; envelopes themselves are unaffected).
    static let maximumNoticesPerSender = 10_000

    /// Keeps each of `senders`' newest `maximumNoticesPerSender` notices; once per transaction, after its notices
    /// were added (the walk costs up to that many index steps, so not once per notice).
    ///
    /// By the sender's own count: sequences are relay-wide, so "newest sequence - limit" would let another account's
    /// notices push this sender's unfetched ones (its expiry notices included) out. The sender index holds the
    /// sequence (the rowid), so the offset walks that sender's entries alone.
    static func pruneNotices(_ db: Database, of senders: Set<Handle>) throws {
        for sender in senders {
            try db.cachedStatement(
                sql: """
                    DELETE FROM notice WHERE sender = ?1 AND sequence <= (
                        SELECT sequence FROM notice WHERE sender = ?1 ORDER BY sequence DESC LIMIT 1 OFFSET ?2)
                    """
            ).execute(arguments: [sender.rawValue, maximumNoticesPerSender])
        }
    }

    static func addNotice(_ db: Database, _ kind: SenderNotice.Kind, for envelope: QueuedEnvelope, at: Timestamp)
        throws -> SenderNotice
    {
        try db.execute(
            sql: "INSERT INTO notice (sender, kind, envelope_id, recipient, at) VALUES (?, ?, ?, ?, ?)",
            arguments: [envelope.sender.rawValue, kind.storedValue, Data(envelope.id.bytes), envelope.recipient.rawValue, at.signedMilliseconds]
        )
        let inserted = db.lastInsertedRowID
        return SenderNotice(
            sequence: inserted,
            kind: kind,
            sender: envelope.sender,
            envelopeID: envelope.id,
            recipient: envelope.recipient,
            at: at
        )
    }

}

extension QueuedEnvelope {
    init(row: Row) throws {
        self.init(
            sequence: row["sequence"],
            id: EnvelopeID(bytes: Array(row["envelope_id"] as Data))!,
            sender: try Handle(row["sender"] as String),
            recipient: try Handle(row["recipient"] as String),
            body: Array(row["body"] as Data),
            storedAt: Timestamp(storedMilliseconds: row["stored_at"]),
            expiresAt: Timestamp(storedMilliseconds: row["expires_at"])
        )
    }
}
