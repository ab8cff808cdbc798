import CurbsideWire
import Foundation
import GRDB

/// The SQL of the `event` table: each message's timeline, in order. A detail (a peer's failure text) is sealed like
/// message bodies, bound to its message and kind.
enum EventStore {
    /// Adds a timeline event.
    static func add(
        _ db: Database,
        _ database: ProfileDatabase,
        _ id: MessageID,
        _ kind: DeliveryState,
        at: Timestamp,
        detail: String? = nil
    ) throws {
        let sealedDetail = try detail.map {
            try database.seal(Array($0.utf8), column: "event.detail", row: ProfileDatabase.eventRow(id, kind.rawValue))
        }
        try db.execute(
            sql: "INSERT INTO event (message_id, kind, at, detail) VALUES (?, ?, ?, ?)",
            arguments: [Data(id.rawValue), kind.rawValue, at.signedMilliseconds, sealedDetail]
        )
    }

    /// Whether message `id`'s timeline has reached `kind`.
    static func contains(_ db: Database, _ id: MessageID, _ kind: DeliveryState) throws -> Bool {
        try Bool.fetchOne(
            db,
            sql: "SELECT EXISTS (SELECT 1 FROM event WHERE message_id = ? AND kind = ?)",
            arguments: [Data(id.rawValue), kind.rawValue]
        ) ?? false
    }

    /// The latest step of message `id`'s timeline, if it has one.
    static func latest(_ db: Database, _ id: MessageID) throws -> DeliveryState? {
        try String.fetchOne(
            db,
            sql: "SELECT kind FROM event WHERE message_id = ? ORDER BY at DESC, seq DESC LIMIT 1",
            arguments: [Data(id.rawValue)]
        ).flatMap(DeliveryState.init(rawValue:))
    }

    /// Message `id`'s timeline, oldest first, details opened.
    static func timeline(_ db: Database, _ database: ProfileDatabase, _ id: MessageID) throws -> [TimelineEvent] {
        try Row.fetchAll(db, sql: "SELECT kind, at, detail FROM event WHERE message_id = ? ORDER BY at, seq", arguments: [Data(id.rawValue)])
            .map { row in
                let stored: String = row["kind"]
                guard let kind = DeliveryState(rawValue: stored) else {
                    throw ClientError(.profileDamaged, "message \(id) has an event of unknown kind in the profile database")
                }
                let detail = try (row["detail"] as Data?).map {
                    String(decoding: try database.unseal($0, column: "event.detail", row: ProfileDatabase.eventRow(id, stored)), as: UTF8.self)
                }
                return TimelineEvent(kind: kind, at: UInt64(clamping: row["at"] as Int64), detail: detail)
            }
    }

    /// Deletes message `id`'s timeline.
    static func deleteAll(_ db: Database, of id: MessageID) throws {
        try db.execute(sql: "DELETE FROM event WHERE message_id = ?", arguments: [Data(id.rawValue)])
    }
}
