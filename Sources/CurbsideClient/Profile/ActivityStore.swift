import CurbsideWire
import Foundation
import GRDB

/// Where a reader of the profile's activity has got to: the newest message row and timeline event it has seen.
struct ActivityCursor: Sendable, Hashable {
    var messageRow: Int64
    var eventSeq: Int64
}

/// The SQL of what happened in the profile since an `ActivityCursor`: messages received, and timeline steps of
/// the consults and replies this profile sent. `watch` reports these one by one.
enum ActivityStore {
    /// The cursor past everything the profile holds now.
    static func end(_ db: Database) throws -> ActivityCursor {
        ActivityCursor(
            messageRow: try Int64.fetchOne(db, sql: "SELECT IFNULL(MAX(rowid), 0) FROM message") ?? 0,
            eventSeq: try Int64.fetchOne(db, sql: "SELECT IFNULL(MAX(seq), 0) FROM event") ?? 0
        )
    }

    /// Messages received after `cursor`, oldest first, consults and replies only (a received receipt shows as a
    /// step of the message it reports on).
    static func received(_ db: Database, after cursor: ActivityCursor) throws -> [MessageRecord] {
        try Row.fetchAll(
            db,
            sql: "SELECT * FROM message WHERE rowid > ? AND direction = ? AND kind != ? ORDER BY rowid",
            arguments: [cursor.messageRow, Direction.incoming.rawValue, Int64(Content.Kind.receipt.rawValue)]
        ).map(MessageRecord.init(row:))
    }

    /// Timeline steps after `cursor` of consults and replies this profile sent, oldest first.
    static func sentSteps(_ db: Database, after cursor: ActivityCursor) throws -> [(id: MessageID, step: DeliveryState, seq: Int64)] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT event.message_id, event.kind, event.seq FROM event JOIN message ON message.id = event.message_id
                WHERE event.seq > ? AND message.direction = ? AND message.kind != ? ORDER BY event.seq
                """,
            arguments: [cursor.eventSeq, Direction.outgoing.rawValue, Int64(Content.Kind.receipt.rawValue)]
        ).compactMap { row in
            guard let step = DeliveryState(rawValue: row["kind"]) else { return nil }
            return (try MessageID(rawValue: Array(row["message_id"] as Data)), step, row["seq"])
        }
    }
}
