import CurbsideWire
import Foundation
import GRDB

/// A row of the `contact` table: a handle pinned to the identity key first seen for it.
struct ContactRecord: Sendable {
    let handle: String
    /// The pinned Ed25519 identity key.
    let identityKey: Data
    let verified: Bool
    /// A different key the relay presented for the handle, not yet verified: sending is blocked while it is set.
    let changedKey: Data?
    /// Milliseconds since 1970.
    let pinnedAt: Int64

    init(row: Row) {
        handle = row["handle"]
        identityKey = row["identity_key"]
        verified = row["verified"]
        changedKey = row["changed_key"]
        pinnedAt = row["pinned_at"]
    }
}

/// The SQL of the `contact` table: pins, changed keys and verification.
enum ContactStore {
    static func all(_ db: Database) throws -> [ContactRecord] {
        try Row.fetchAll(db, sql: "SELECT * FROM contact ORDER BY handle").map(ContactRecord.init(row:))
    }

    static func contact(_ db: Database, _ handle: Handle) throws -> ContactRecord? {
        try Row.fetchOne(db, sql: "SELECT * FROM contact WHERE handle = ?", arguments: [handle.rawValue]).map(ContactRecord.init(row:))
    }

    /// Pins `party` on first use; false when the handle is pinned to another key (which is recorded as changed).
    static func pinOnFirstUse(_ db: Database, _ party: Party, now: Timestamp) throws -> Bool {
        let key = Data(party.identityKey.rawRepresentation)
        guard let pinned = try contact(db, party.handle) else {
            try db.execute(
                sql: "INSERT INTO contact (handle, identity_key, pinned_at) VALUES (?, ?, ?)",
                arguments: [party.handle.rawValue, key, now.signedMilliseconds]
            )
            return true
        }
        guard pinned.identityKey == key else {
            try db.execute(sql: "UPDATE contact SET changed_key = ? WHERE handle = ?", arguments: [key, party.handle.rawValue])
            return false
        }
        return true
    }

    /// Pins `key` (the changed key, when one was pending) and marks the contact verified.
    static func markVerified(_ db: Database, _ handle: Handle, key: Data) throws {
        try db.execute(
            sql: "UPDATE contact SET identity_key = ?, changed_key = NULL, verified = 1 WHERE handle = ?",
            arguments: [key, handle.rawValue]
        )
    }
}
