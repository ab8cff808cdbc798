import CurbsideWire
import Foundation
import GRDB

/// A queued message as the outbox flush needs it: the `outbox` row joined with its `message` row.
struct OutboxEntry: Sendable {
    let id: MessageID
    let recipient: String
    /// The sealed envelope, once sealed: every resend is this envelope.
    let envelope: Data?
    /// Failed attempts so far.
    let attempts: Int64
    let threadID: MessageID
    /// Milliseconds since 1970.
    let createdAt: Int64
    /// The sealed `Content` encoding (`message.body`).
    let body: Data
    let kind: MessageKind

    init(row: Row) throws {
        id = try MessageID(rawValue: Array(row["message_id"] as Data))
        recipient = row["recipient"]
        envelope = row["envelope"]
        attempts = row["attempts"]
        threadID = try MessageID(rawValue: Array(row["thread_id"] as Data))
        createdAt = row["created_at"]
        body = row["body"]
        kind = Content.Kind(rawValue: UInt8(truncatingIfNeeded: row["kind"] as Int64)).map(MessageKind.init) ?? .consult
    }
}

/// The SQL of the `outbox` table: messages waiting to be stored on the relay, in the order they were queued.
enum OutboxStore {
    /// Everything queued, oldest first.
    static func entries(_ db: Database) throws -> [OutboxEntry] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT o.message_id, o.recipient, o.envelope, o.attempts, m.thread_id, m.created_at, m.body, m.kind
                FROM outbox o JOIN message m ON m.id = o.message_id ORDER BY o.queued_at, o.rowid
                """
        ).map(OutboxEntry.init(row:))
    }

    static func add(_ db: Database, _ id: MessageID, to recipient: Handle, at: Timestamp) throws {
        try db.execute(
            sql: "INSERT INTO outbox (message_id, recipient, queued_at) VALUES (?, ?, ?)",
            arguments: [Data(id.rawValue), recipient.rawValue, at.signedMilliseconds]
        )
    }

    static func contains(_ db: Database, _ id: MessageID) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM outbox WHERE message_id = ?)", arguments: [Data(id.rawValue)]) ?? false
    }

    static func count(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox") ?? 0
    }

    static func remove(_ db: Database, _ id: MessageID) throws {
        try db.execute(sql: "DELETE FROM outbox WHERE message_id = ?", arguments: [Data(id.rawValue)])
    }

    /// Records a failed attempt: the sentence for people, the codes for decisions.
    static func recordAttempt(_ db: Database, _ id: MessageID, _ error: ClientError) throws {
        try db.execute(
            sql: """
                UPDATE outbox SET attempts = attempts + 1, last_error = ?, last_error_code = ?, last_relay_error_code = ?
                WHERE message_id = ?
                """,
            arguments: [error.message, Int64(error.code.rawValue), error.relayError.map { Int64($0.code.rawValue) }, Data(id.rawValue)]
        )
    }

    /// Marks entry `id` as being sent, just before its `send` request goes to the relay. Returns false when the entry
    /// is gone (cancelled meanwhile, by this process or another): it must not be sent then.
    static func markSending(_ db: Database, _ id: MessageID, at: Timestamp) throws -> Bool {
        try db.execute(
            sql: "UPDATE outbox SET sending_at = ? WHERE message_id = ?",
            arguments: [at.signedMilliseconds, Data(id.rawValue)]
        )
        return db.changesCount == 1
    }

    /// Clears the sending mark: the relay refused the `send`, so it cannot have stored it.
    static func clearSending(_ db: Database, _ id: MessageID) throws {
        try db.execute(sql: "UPDATE outbox SET sending_at = NULL WHERE message_id = ?", arguments: [Data(id.rawValue)])
    }

    /// Whether entry `id` exists and whether a `send` of it may be with the relay; nil when it is not queued.
    static func sendingMark(_ db: Database, _ id: MessageID) throws -> Bool? {
        guard let row = try Row.fetchOne(db, sql: "SELECT sending_at FROM outbox WHERE message_id = ?", arguments: [Data(id.rawValue)]) else {
            return nil
        }
        return (row["sending_at"] as Int64?) != nil
    }

    /// What the outbox listing shows, oldest first: each entry with its sealed body, attachment count and bytes.
    static func listing(_ db: Database) throws -> [Row] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT o.message_id, o.recipient, o.queued_at, o.attempts, o.last_error, o.last_error_code, o.sending_at,
                    m.kind, m.body,
                    (SELECT COUNT(*) FROM attachment a WHERE a.message_id = o.message_id) AS attachments,
                    (SELECT COALESCE(SUM(a.size), 0) FROM attachment a WHERE a.message_id = o.message_id) AS attachment_bytes
                FROM outbox o JOIN message m ON m.id = o.message_id ORDER BY o.queued_at, o.rowid
                """
        )
    }

    /// Keeps `sealed` as the entry's envelope unless one is kept already (another process sealed it first), and
    /// returns the envelope kept.
    static func keepEnvelope(_ db: Database, _ id: MessageID, _ sealed: [UInt8]) throws -> [UInt8] {
        try db.execute(
            sql: "UPDATE outbox SET envelope = ? WHERE message_id = ? AND envelope IS NULL",
            arguments: [Data(sealed), Data(id.rawValue)]
        )
        let stored = try Data.fetchOne(db, sql: "SELECT envelope FROM outbox WHERE message_id = ?", arguments: [Data(id.rawValue)])
        return stored.map(Array.init) ?? sealed
    }
}
