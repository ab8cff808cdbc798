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
