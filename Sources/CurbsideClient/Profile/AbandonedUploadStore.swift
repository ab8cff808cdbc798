import CurbsideWire
import Foundation
import GRDB

/// The SQL of the `abandoned_upload` table: uploads of cancelled messages (by attachment id, the SHA-256 of the
/// encrypted file, or the provisional id of an upload begun while encrypting) that the relay has not yet been told to
/// forget. Kept until it has, so a cancellation on a poor network still frees the relay's copy at the next
/// connection. An upload begun while encrypting is entered before it starts and crossed off when its message is
/// queued, so one whose message never was (refused, cancelled, the process killed) is forgotten too.
enum AbandonedUploadStore {
    static func add(_ db: Database, _ ids: [[UInt8]], at now: Timestamp) throws {
        for id in ids {
            try db.execute(sql: "INSERT OR IGNORE INTO abandoned_upload (attachment_id, at) VALUES (?, ?)", arguments: [Data(id), now.signedMilliseconds])
        }
    }

    /// Oldest first.
    static func all(_ db: Database) throws -> [[UInt8]] {
        try Data.fetchAll(db, sql: "SELECT attachment_id FROM abandoned_upload ORDER BY at, attachment_id").map(Array.init)
    }

    static func remove(_ db: Database, _ id: [UInt8]) throws {
        try db.execute(sql: "DELETE FROM abandoned_upload WHERE attachment_id = ?", arguments: [Data(id)])
    }
}
