import Foundation
import CurbsideWire
import GRDB

/// The relay's store in one SQLite file (WAL, synchronous=FULL), or in memory for tests.
///
/// Every method is one write or read transaction on GRDB's serialized writer, so concurrent callers see each other's
/// effects in some order and never half of one.
public final class SQLiteRelayStore: RelayStore {
    private let database: any DatabaseWriter

    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    public convenience init(path: String) throws {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // Durable before acknowledged: a commit returns only once it is on disk.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        try self.init(writer: DatabasePool(path: path, configuration: configuration))
    }

    /// A store in memory, for tests.
    public static func inMemory() throws -> SQLiteRelayStore {
        try SQLiteRelayStore(writer: DatabaseQueue())
    }

    init(writer: any DatabaseWriter) throws {
        database = writer
        try Self.migrator.migrate(writer)
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
        return migrator
    }

    public func addEnrollment(handle: Handle, codeHash: [UInt8], expiresAt: Timestamp) async throws {
        try await database.write { db in
            try db.execute(
                sql: "INSERT INTO enrollment (code_hash, handle, expires_at) VALUES (?, ?, ?)",
                arguments: [Data(codeHash), handle.rawValue, Int64(clamping: expiresAt.millisecondsSince1970)]
            )
        }
    }

    public func register(handle: Handle, identityKey: VerifyingKey, codeHash: [UInt8], now: Timestamp) async throws {
        try await database.write { db in
            let row = try Row.fetchOne(
                db,
                sql: "SELECT handle, expires_at, used_at FROM enrollment WHERE code_hash = ?",
                arguments: [Data(codeHash)]
            )
            guard let row, row["handle"] as String == handle.rawValue, row["used_at"] as Int64? == nil,
                Int64(clamping: now.millisecondsSince1970) < row["expires_at"] as Int64
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
                arguments: [Int64(clamping: now.millisecondsSince1970), Data(codeHash)]
            )
            try db.execute(
                sql: "INSERT INTO account (handle, identity_key, registered_at) VALUES (?, ?, ?)",
                arguments: [handle.rawValue, Data(identityKey.rawRepresentation), Int64(clamping: now.millisecondsSince1970)]
            )
        }
    }

    public func identityKey(for handle: Handle) async throws -> VerifyingKey? {
        let raw = try await database.read { db in
            try Data.fetchOne(db, sql: "SELECT identity_key FROM account WHERE handle = ?", arguments: [handle.rawValue])
        }
        return try raw.map { try VerifyingKey(rawRepresentation: Array($0)) }
    }

    public func storePrekeys(for handle: Handle, signedPrekey: SignedPrekey?, oneTimePrekeys: [OneTimePrekey]) async throws {
        try await database.write { db in
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

    public func takeBundle(for handle: Handle) async throws -> (bundle: PrekeyBundle, oneTimePrekeysLeft: Int)? {
        try await database.write { db in
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
            if let taken = try Row.fetchOne(
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
        try await database.read { db in
            RelayStatistics(
                accounts: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM account") ?? 0,
                oneTimePrekeys: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM one_time_prekey") ?? 0,
                pendingEnrollments: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM enrollment WHERE used_at IS NULL") ?? 0
            )
        }
    }
}
