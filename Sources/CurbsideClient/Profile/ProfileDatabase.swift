import CurbsideWire
import Foundation
import GRDB

/// The profile's SQLite database (WAL, synchronous=FULL): contacts and pins, prekeys, messages, their timelines and
/// the outbox. Clinical content and private keys are sealed with the profile's storage key (ChaCha20-Poly1305, a
/// random nonce per value, the column's name as associated data), so a copied database file without the passphrase
/// shows who talked to whom and when, never what was said or a key.
struct ProfileDatabase: Sendable {
    let writer: any DatabaseWriter
    private let storageKey: SymmetricKey

    init(path: String, storageKey: SymmetricKey) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // Deleted rows (used one-time prekeys above all) are overwritten, not left in free pages.
            try db.execute(sql: "PRAGMA secure_delete = ON")
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        // GRDB sets the writer to synchronous = NORMAL when it turns WAL on, after prepareDatabase: back to FULL, so
        // a saved message and the deletion of its one-time prekey are on disk when the transaction returns.
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        writer = pool
        self.storageKey = storageKey
        // A migration may seal values with this key (v5): make sure first that it is this profile's, or an identity
        // file from another profile would seal them for good under a key that cannot read the rest.
        try checkStorageKey()
        let migrator = Self.migrator(storageKey: storageKey)
        let sealing = try writer.read { db in try !migrator.appliedIdentifiers(db).contains(Self.sealingMigration) }
        try migrator.migrate(writer)
        if sealing {
            // The values v5 sealed are still in the clear in the database file's old pages until the log is copied
            // over them (secure_delete then leaves nothing behind): copy it now, not at some later checkpoint.
            try writer.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
        }
    }

    static let sealingMigration = "v5: sealed signatures, media types and event details"

    /// A sealer with no database behind it, for tests that write rows the way an earlier version did.
    init(unmigratedFor storageKey: SymmetricKey) throws {
        writer = try DatabaseQueue()
        self.storageKey = storageKey
    }

    /// Throws unless a value this database sealed opens with the storage key (a new database has none to check).
    private func checkStorageKey() throws {
        let sample = try writer.read { db -> Row? in
            guard try db.tableExists("prekey") else { return nil }
            return try Row.fetchOne(db, sql: "SELECT kind, id, private_key FROM prekey LIMIT 1")
        }
        guard let sample else { return }
        let row = Self.prekeyRow(kind: UInt8(truncatingIfNeeded: sample["kind"] as Int64), id: UInt32(truncatingIfNeeded: sample["id"] as Int64))
        _ = try unseal(sample["private_key"], column: "prekey.private_key", row: row)
    }

    /// The schema's migrations; one of them seals values written in the clear by earlier versions, hence the key.
    static func migrator(storageKey: SymmetricKey) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: profile") { db in
            try db.create(table: "setting") { t in
                t.column("key", .text).primaryKey()
                t.column("value", .text).notNull()
            }
            try db.create(table: "contact") { t in
                t.column("handle", .text).primaryKey()
                t.column("identity_key", .blob).notNull()
                t.column("verified", .boolean).notNull().defaults(to: false)
                t.column("pinned_at", .integer).notNull()
                // A different key seen for the handle and not yet accepted: sending is blocked until it is verified.
                t.column("changed_key", .blob)
            }
            try db.create(table: "prekey") { t in
                t.column("kind", .integer).notNull()  // 1 signed, 2 one-time (as in the envelope header)
                t.column("id", .integer).notNull()
                t.column("private_key", .blob).notNull()  // sealed
                t.column("created_at", .integer).notNull()
                t.column("expires_at", .integer)
                t.column("retired_at", .integer)  // a signed prekey replaced by a newer one (kept for a grace period)
                t.primaryKey(["kind", "id"])
            }
            try db.create(table: "message") { t in
                t.column("id", .blob).primaryKey()
                t.column("thread_id", .blob).notNull().indexed()
                t.column("direction", .text).notNull()  // "in" or "out"
                t.column("peer", .text).notNull()
                t.column("kind", .integer).notNull()  // content type: 1 consult, 2 reply, 3 receipt
                t.column("created_at", .integer).notNull()
                t.column("received_at", .integer)
                t.column("body", .blob).notNull()  // sealed Message encoding
                t.column("signature", .blob)
                t.column("envelope_id", .blob).indexed()
                t.column("sender_key_changed", .boolean).notNull().defaults(to: false)
            }
            try db.create(table: "event") { t in
                t.autoIncrementedPrimaryKey("seq")
                t.column("message_id", .blob).notNull().indexed()
                t.column("kind", .text).notNull()
                t.column("at", .integer).notNull()
                t.column("detail", .text)
            }
            try db.create(table: "outbox") { t in
                t.column("message_id", .blob).primaryKey()
                t.column("recipient", .text).notNull()
                t.column("queued_at", .integer).notNull()
                t.column("envelope", .blob)  // sealed envelope bytes once sealed, so a resend is the same envelope
                t.column("attempts", .integer).notNull().defaults(to: 0)
                t.column("last_error", .text)
            }
            try db.create(table: "failure") { t in
                t.autoIncrementedPrimaryKey("seq")
                t.column("envelope_id", .blob).notNull()
                t.column("relay_sender", .text).notNull()
                t.column("at", .integer).notNull()
                t.column("reason", .text).notNull()
            }
        }
        // Which key signed each incoming message (so verifying a key reveals only what that key signed), and whether
        // a signed prekey has reached the relay (the previous one is retired only once it has).
        migrator.registerMigration("v2: sender keys and published prekeys") { db in
            try db.alter(table: "message") { t in t.add(column: "sender_key", .blob) }
            try db.alter(table: "prekey") { t in t.add(column: "published", .boolean).notNull().defaults(to: true) }
        }
        // Attachments of messages both ways: the encrypted file on disk, its descriptor (file name and single-use
        // identity sealed), and where its transfer stands.
        migrator.registerMigration("v3: attachments") { db in
            try db.create(table: "attachment") { t in
                t.column("message_id", .blob).notNull().indexed()
                t.column("idx", .integer).notNull()
                t.column("file_name", .blob).notNull()  // sealed
                t.column("media_type", .text).notNull()
                t.column("size", .integer).notNull()
                t.column("sha256", .blob).notNull()
                t.column("identity", .blob).notNull()  // sealed
                t.column("path", .text).notNull()
                // out: ready, uploaded; in: saved, unavailable, corrupt
                t.column("state", .text).notNull()
                t.primaryKey(["message_id", "idx"])
            }
        }
        // What receiving needs to survive hostile peers (spec/envelope.md §Receiving, §Duplicates): the envelopes
        // already opened or rejected (a re-delivery is acknowledged, never opened again), the wire id of a message
        // stored under another local id (two senders may use the same message id), how each failure ended, and when
        // each one-time prekey left the relay.
        migrator.registerMigration("v4: receiving") { db in
            try db.create(table: "seen_envelope") { t in
                t.column("envelope_id", .blob).primaryKey()
                t.column("at", .integer).notNull()
                // The reason sent with `reject`, when the envelope was rejected (a re-delivery is rejected again).
                t.column("rejected_reason", .integer)
            }
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO seen_envelope (envelope_id, at)
                    SELECT envelope_id, COALESCE(received_at, created_at) FROM message WHERE direction = 'in' AND envelope_id IS NOT NULL
                    """
            )
            try db.execute(sql: "INSERT OR IGNORE INTO seen_envelope (envelope_id, at) SELECT envelope_id, at FROM failure")
            try db.alter(table: "message") { t in t.add(column: "wire_id", .blob) }
            try db.create(index: "message_wire_id", on: "message", columns: ["wire_id"])
            try db.create(index: "message_sender_key", on: "message", columns: ["sender_key"])
            try db.alter(table: "failure") { t in
                // Shown once in `inbox` until the user has seen it.
                t.add(column: "shown", .boolean).notNull().defaults(to: false)
            }
            try db.alter(table: "prekey") { t in t.add(column: "handed_out_at", .integer) }
        }
        // A stolen profile must not confirm a guessed message: signatures (a guess of the plaintext verifies against
        // one), attachments' media types and peers' failure details were kept in the clear before this.
        migrator.registerMigration(sealingMigration) { db in
            for row in try Row.fetchAll(db, sql: "SELECT id, signature FROM message WHERE signature IS NOT NULL") {
                let id: Data = row["id"]
                let sealed = try Self.seal(Array(row["signature"] as Data), column: "message.signature", row: Array(id), key: storageKey)
                try db.execute(sql: "UPDATE message SET signature = ? WHERE id = ?", arguments: [sealed, id])
            }
            for row in try Row.fetchAll(db, sql: "SELECT message_id, idx, media_type FROM attachment") {
                let id: Data = row["message_id"]
                let index: Int64 = row["idx"]
                let mediaType: String = row["media_type"]
                let sealed = try Self.seal(Array(mediaType.utf8), column: "attachment.media_type", row: Array(id) + [UInt8(truncatingIfNeeded: index)], key: storageKey)
                try db.execute(sql: "UPDATE attachment SET media_type = ? WHERE message_id = ? AND idx = ?", arguments: [sealed, id, index])
            }
            for row in try Row.fetchAll(db, sql: "SELECT seq, message_id, kind, detail FROM event WHERE detail IS NOT NULL") {
                let detail: String = row["detail"]
                let id = try MessageID(rawValue: Array(row["message_id"] as Data))
                let sealed = try Self.seal(Array(detail.utf8), column: "event.detail", row: eventRow(id, row["kind"]), key: storageKey)
                try db.execute(sql: "UPDATE event SET detail = ? WHERE seq = ?", arguments: [sealed, row["seq"] as Int64])
            }
        }
        // Why an outbox entry waits, as codes beside the sentence: what the client decides on (an unknown recipient,
        // a changed key) is never read back from text.
        migrator.registerMigration(outboxErrorCodesMigration) { db in
            try db.alter(table: "outbox") { t in
                t.add(column: "last_error_code", .integer)  // ClientError.Code of the last attempt
                t.add(column: "last_relay_error_code", .integer)  // the relay's code (spec/errors.md), when it refused
            }
        }
        // Why an envelope could not be opened, as the code its sender was told, beside the diagnostic text: callers
        // decide on the code. Failures recorded before keep the reason still remembered for their envelope.
        migrator.registerMigration(failureReasonsMigration) { db in
            try db.alter(table: "failure") { t in
                t.add(column: "rejected_reason", .integer).notNull().defaults(to: Int64(Receipt.FailureReason.other.rawValue))
            }
            try db.execute(
                sql: """
                    UPDATE failure
                    SET rejected_reason = (SELECT rejected_reason FROM seen_envelope WHERE envelope_id = failure.envelope_id)
                    WHERE EXISTS (
                        SELECT 1 FROM seen_envelope WHERE envelope_id = failure.envelope_id AND rejected_reason IS NOT NULL
                    )
                    """
            )
        }
        // The point of no return of a send: set just before the `send` request goes to the relay and cleared when the
        // relay refuses it, so a cancellation (Ctrl-C, `curbside outbox cancel`) can tell a message nobody can have
        // received from one the relay may have stored.
        migrator.registerMigration(outboxSendingMigration) { db in
            try db.alter(table: "outbox") { t in
                t.add(column: "sending_at", .integer)  // milliseconds since 1970; NULL: no send request went out
            }
        }
        // Uploads of cancelled messages the relay is still to be told to forget (abandon_upload).
        migrator.registerMigration(abandonedUploadsMigration) { db in
            try db.create(table: "abandoned_upload") { t in
                t.column("attachment_id", .blob).primaryKey()  // SHA-256 of the encrypted file
                t.column("at", .integer).notNull()  // when the message was cancelled, milliseconds since 1970
            }
        }
        // An attachment's upload begun while it was encrypted, under a provisional id, for the flush to continue.
        migrator.registerMigration(provisionalUploadsMigration) { db in
            try db.alter(table: "attachment") { t in
                t.add(column: "upload_id", .blob)  // 32 random bytes (spec/relay.md §Attachments, commit_upload_as)
                t.add(column: "upload_bound", .integer)  // the most bytes it was opened with
            }
        }
        return migrator
    }

    static let outboxErrorCodesMigration = "v6: outbox error codes"
    static let failureReasonsMigration = "v7: failure reasons as codes"
    static let outboxSendingMigration = "v8: outbox sending mark"
    static let abandonedUploadsMigration = "v9: abandoned uploads"
    static let provisionalUploadsMigration = "v10: provisional uploads"

    // MARK: - Sealed columns

    /// Seals a value of `column` for row `row`: the associated data binds both, so sealed values cannot be moved
    /// between columns or rows.
    func seal(_ plaintext: [UInt8], column: String, row: [UInt8]) throws -> Data {
        try Self.seal(plaintext, column: column, row: row, key: storageKey)
    }

    private static func seal(_ plaintext: [UInt8], column: String, row: [UInt8], key: SymmetricKey) throws -> Data {
        let nonce = secureRandomBytes(count: ChaChaPoly.nonceByteCount)
        return Data(nonce + (try ChaChaPoly.seal(plaintext, using: key, nonce: nonce, authenticating: associatedData(column, row))))
    }

    /// The row identifier of an event's sealed detail: its message and kind.
    static func eventRow(_ id: MessageID, _ kind: String) -> [UInt8] {
        id.rawValue + [0] + Array(kind.utf8)
    }

    private static func associatedData(_ column: String, _ row: [UInt8]) -> [UInt8] {
        Array(column.utf8) + [0] + row
    }

    func unseal(_ sealed: Data, column: String, row: [UInt8]) throws -> [UInt8] {
        let bytes = Array(sealed)
        guard bytes.count >= ChaChaPoly.nonceByteCount + ChaChaPoly.tagByteCount else {
            throw ClientError(.profileDamaged, "a sealed \(column) value in the profile database is damaged")
        }
        do {
            return try ChaChaPoly.open(
                Array(bytes[ChaChaPoly.nonceByteCount...]),
                using: storageKey,
                nonce: Array(bytes[..<ChaChaPoly.nonceByteCount]),
                authenticating: Self.associatedData(column, row)
            )
        } catch {
            throw ClientError(.profileDamaged, "a sealed \(column) value in the profile database does not open with this profile's key")
        }
    }

    // MARK: - Settings

    func setting(_ key: String) async throws -> String? {
        try await writer.read { db in try String.fetchOne(db, sql: "SELECT value FROM setting WHERE key = ?", arguments: [key]) }
    }

    func setSetting(_ key: String, _ value: String) async throws {
        try await writer.write { db in try Self.setSetting(db, key, value) }
    }

    static func setSetting(_ db: Database, _ key: String, _ value: String) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO setting (key, value) VALUES (?, ?)", arguments: [key, value])
    }

    static func setting(_ db: Database, _ key: String) throws -> String? {
        try String.fetchOne(db, sql: "SELECT value FROM setting WHERE key = ?", arguments: [key])
    }

    /// The row identifier of a prekey in sealed values.
    static func prekeyRow(kind: UInt8, id: UInt32) -> [UInt8] {
        [kind, UInt8(id >> 24), UInt8(truncatingIfNeeded: id >> 16), UInt8(truncatingIfNeeded: id >> 8), UInt8(truncatingIfNeeded: id)]
    }

    /// How many rows `table` holds (for checks that a step changed nothing).
    static func rowCount(_ db: Database, table: String) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table.quotedDatabaseIdentifier)") ?? 0
    }

    /// Takes the next number of a counter kept in settings (prekey ids).
    static func nextNumber(_ db: Database, _ key: String, startingAt start: UInt32) throws -> UInt32 {
        let next = try setting(db, key).flatMap(UInt32.init) ?? start
        try setSetting(db, key, String(next == UInt32.max ? start : next + 1))
        return next
    }
}
