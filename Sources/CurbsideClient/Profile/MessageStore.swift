import CurbsideWire
import Foundation
import GRDB

/// A row of the `message` table: a consult, reply or receipt, sent or received, its body sealed.
struct MessageRecord: Sendable {
    let id: MessageID
    /// The id it was sent with, when it is kept under another local id (its sender reused someone else's id).
    let wireID: MessageID?
    let threadID: MessageID
    let direction: Direction
    let peer: String
    let kind: MessageKind
    /// Milliseconds since 1970, as the sender stated it.
    let createdAt: Int64
    /// The sealed `Content` encoding (`message.body`).
    let body: Data
    /// The sender's key differs from the pinned one: the content stays hidden until it is verified.
    let senderKeyChanged: Bool

    init(row: Row) throws {
        id = try MessageID(rawValue: Array(row["id"] as Data))
        wireID = try (row["wire_id"] as Data?).map { try MessageID(rawValue: Array($0)) }
        threadID = try MessageID(rawValue: Array(row["thread_id"] as Data))
        guard let direction = Direction(rawValue: row["direction"]) else {
            throw ClientError(.profileDamaged, "message \(id) has an unknown direction in the profile database")
        }
        self.direction = direction
        peer = row["peer"]
        // As before the kinds were typed: an unknown content type is listed as a consult.
        kind = Content.Kind(rawValue: UInt8(truncatingIfNeeded: row["kind"] as Int64)).map(MessageKind.init) ?? .consult
        createdAt = row["created_at"]
        body = row["body"]
        senderKeyChanged = row["sender_key_changed"]
    }
}

/// The SQL of the `message` table: every consult, reply and receipt this profile sent or received.
enum MessageStore {
    static func message(_ db: Database, _ id: MessageID) throws -> MessageRecord? {
        try Row.fetchOne(db, sql: "SELECT * FROM message WHERE id = ?", arguments: [Data(id.rawValue)]).map(MessageRecord.init(row:))
    }

    static func exists(_ db: Database, _ id: MessageID) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM message WHERE id = ?)", arguments: [Data(id.rawValue)]) ?? false
    }

    /// The ids of the messages (any kind, either direction) whose id begins with `hexPrefix` (lower-case hex digits),
    /// oldest first, at most `limit`.
    static func ids(_ db: Database, withHexPrefix hexPrefix: String, limit: Int) throws -> [MessageID] {
        // hex() spells a blob in upper case; the prefix has been checked to be hex digits only, so LIKE sees no
        // wildcard in it.
        try Data.fetchAll(
            db,
            sql: "SELECT id FROM message WHERE hex(id) LIKE ? ORDER BY created_at, id LIMIT ?",
            arguments: [hexPrefix.uppercased() + "%", limit]
        ).map { try MessageID(rawValue: Array($0)) }
    }

    /// Every consult, sent or received, oldest first.
    static func consults(_ db: Database) throws -> [MessageRecord] {
        try Row.fetchAll(db, sql: "SELECT * FROM message WHERE kind = ? ORDER BY created_at, id", arguments: [Int64(Content.Kind.consult.rawValue)])
            .map(MessageRecord.init(row:))
    }

    /// When this profile wrote its first reply in `thread` (milliseconds since 1970), if it has written one.
    static func firstReplySent(_ db: Database, inThread thread: MessageID) throws -> Int64? {
        try Int64.fetchOne(
            db,
            sql: "SELECT MIN(created_at) FROM message WHERE thread_id = ? AND direction = ? AND kind = ?",
            arguments: [Data(thread.rawValue), Direction.outgoing.rawValue, Int64(Content.Kind.reply.rawValue)]
        )
    }

    /// What was received, newest first.
    static func received(_ db: Database) throws -> [MessageRecord] {
        try Row.fetchAll(db, sql: "SELECT * FROM message WHERE direction = ? ORDER BY created_at DESC, received_at DESC", arguments: [Direction.incoming.rawValue])
            .map(MessageRecord.init(row:))
    }

    /// The consults and replies this profile sent (not its receipts), newest first.
    static func sentConsultsAndReplies(_ db: Database) throws -> [MessageRecord] {
        try Row.fetchAll(
            db,
            sql: "SELECT * FROM message WHERE direction = ? AND kind != ? ORDER BY created_at DESC",
            arguments: [Direction.outgoing.rawValue, Int64(Content.Kind.receipt.rawValue)]
        ).map(MessageRecord.init(row:))
    }

    /// Records a message this profile sends; `body` is sealed already.
    static func insertOutgoing(_ db: Database, _ id: MessageID, thread: MessageID, to recipient: Handle, kind: Content.Kind, at: Timestamp, body: Data) throws {
        try db.execute(
            sql: """
                INSERT INTO message (id, thread_id, direction, peer, kind, created_at, body)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                Data(id.rawValue), Data(thread.rawValue), Direction.outgoing.rawValue, recipient.rawValue, Int64(kind.rawValue),
                at.signedMilliseconds, body,
            ]
        )
    }

    /// Records a received message under `localID` (its wire id is kept when they differ); `body` and `signature`
    /// are sealed already.
    static func insertIncoming(
        _ db: Database,
        _ message: Message,
        storedAs localID: MessageID,
        receivedAt: Timestamp,
        body: Data,
        signature: Data,
        envelopeID: Data,
        trusted: Bool
    ) throws {
        try db.execute(
            sql: """
                INSERT INTO message (id, wire_id, thread_id, direction, peer, kind, created_at, received_at, body, signature,
                    envelope_id, sender_key_changed, sender_key)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                Data(localID.rawValue), localID == message.id ? nil : Data(message.id.rawValue), Data(message.threadID.rawValue),
                Direction.incoming.rawValue, message.sender.handle.rawValue, Int64(message.content.kind.rawValue),
                message.createdAt.signedMilliseconds, receivedAt.signedMilliseconds, body, signature, envelopeID, !trusted,
                Data(message.sender.identityKey.rawRepresentation),
            ]
        )
    }

    static func delete(_ db: Database, _ id: MessageID) throws {
        try db.execute(sql: "DELETE FROM message WHERE id = ?", arguments: [Data(id.rawValue)])
    }

    /// Records the id the relay gave a sent message's envelope (its notices name it).
    static func setEnvelopeID(_ db: Database, _ id: MessageID, _ envelopeID: [UInt8]) throws {
        try db.execute(sql: "UPDATE message SET envelope_id = ? WHERE id = ?", arguments: [Data(envelopeID), Data(id.rawValue)])
    }

    /// The sent message whose envelope has this id.
    static func sent(_ db: Database, envelopeID: [UInt8]) throws -> MessageID? {
        try Data.fetchOne(
            db,
            sql: "SELECT id FROM message WHERE envelope_id = ? AND direction = ?",
            arguments: [Data(envelopeID), Direction.outgoing.rawValue]
        ).map { try MessageID(rawValue: Array($0)) }
    }

    /// Whether this profile sent message `id` to `peer` (in `thread`, when given): only that peer may report on it.
    static func wasSent(_ db: Database, _ id: MessageID, to peer: Handle, inThread thread: MessageID? = nil) throws -> Bool {
        if let thread {
            return try Bool.fetchOne(
                db,
                sql: "SELECT EXISTS (SELECT 1 FROM message WHERE id = ? AND direction = ? AND peer = ? AND thread_id = ?)",
                arguments: [Data(id.rawValue), Direction.outgoing.rawValue, peer.rawValue, Data(thread.rawValue)]
            ) ?? false
        }
        return try Bool.fetchOne(
            db,
            sql: "SELECT EXISTS (SELECT 1 FROM message WHERE id = ? AND direction = ? AND peer = ?)",
            arguments: [Data(id.rawValue), Direction.outgoing.rawValue, peer.rawValue]
        ) ?? false
    }

    /// Whether a message with this sender key and wire id was accepted already.
    static func isDuplicate(_ db: Database, senderKey: Data, wireID: Data) throws -> Bool {
        try Bool.fetchOne(
            db,
            sql: """
                SELECT EXISTS (SELECT 1 FROM message WHERE direction = ? AND sender_key = ?
                    AND (wire_id = ? OR (wire_id IS NULL AND id = ?)))
                """,
            arguments: [Direction.incoming.rawValue, senderKey, wireID, wireID]
        ) ?? false
    }

    /// Shows the messages `peer` sent with `key`, held back while that key was not verified.
    static func trustSender(_ db: Database, _ peer: Handle, key: Data) throws {
        try db.execute(
            sql: "UPDATE message SET sender_key_changed = 0 WHERE peer = ? AND direction = ? AND sender_key = ?",
            arguments: [peer.rawValue, Direction.incoming.rawValue, key]
        )
    }
}
