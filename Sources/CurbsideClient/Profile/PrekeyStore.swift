import CurbsideWire
import Foundation
import GRDB

/// The private half of a prekey as stored (`prekey` table): sealed, bound to its kind and id.
struct PrekeyRecord: Sendable {
    typealias Kind = SealedEnvelope.PrekeyReference.Kind

    let kind: Kind
    let id: UInt32
    /// The sealed private key (`prekey.private_key`).
    let privateKey: Data
    /// Milliseconds since 1970; signed prekeys only.
    let expiresAt: Int64?

    init(row: Row) {
        kind = Kind(rawValue: UInt8(truncatingIfNeeded: row["kind"] as Int64)) ?? .oneTime
        id = UInt32(truncatingIfNeeded: row["id"] as Int64)
        privateKey = row["private_key"]
        expiresAt = row["expires_at"]
    }
}

/// The SQL of the `prekey` table: signed prekeys (rotated, retired, then deleted) and one-time prekeys (published,
/// handed out by the relay, deleted once used or after a grace period).
enum PrekeyStore {
    /// The sealed private key of prekey `id` of `kind`, if this profile still has it.
    static func privateKey(_ db: Database, _ kind: PrekeyRecord.Kind, id: UInt32) throws -> Data? {
        try Data.fetchOne(db, sql: "SELECT private_key FROM prekey WHERE kind = ? AND id = ?", arguments: [Int64(kind.rawValue), Int64(id)])
    }

    /// When the newest signed prekey was made (milliseconds since 1970).
    static func newestSignedCreatedAt(_ db: Database) throws -> Int64? {
        try Int64.fetchOne(
            db,
            sql: "SELECT created_at FROM prekey WHERE kind = ? ORDER BY id DESC LIMIT 1",
            arguments: [Int64(PrekeyRecord.Kind.signed.rawValue)]
        )
    }

    /// Adds a prekey (sealed already); with `replacing`, one of the same kind and id is overwritten.
    static func insert(
        _ db: Database,
        _ kind: PrekeyRecord.Kind,
        id: UInt32,
        privateKey: Data,
        createdAt: Int64,
        expiresAt: Int64? = nil,
        published: Bool,
        replacing: Bool = false
    ) throws {
        try db.execute(
            sql: """
                INSERT \(replacing ? "OR REPLACE " : "")INTO prekey (kind, id, private_key, created_at, expires_at, published)
                VALUES (?, ?, ?, ?, ?, ?)
                """,
            arguments: [Int64(kind.rawValue), Int64(id), privateKey, createdAt, expiresAt, published]
        )
    }

    /// The newest signed prekey the relay does not have yet.
    static func unpublishedSigned(_ db: Database) throws -> PrekeyRecord? {
        try Row.fetchOne(
            db,
            sql: "SELECT kind, id, private_key, expires_at FROM prekey WHERE kind = ? AND published = 0 ORDER BY id DESC LIMIT 1",
            arguments: [Int64(PrekeyRecord.Kind.signed.rawValue)]
        ).map(PrekeyRecord.init(row:))
    }

    /// One-time prekeys the relay has not confirmed holding, lowest id first.
    static func unpublishedOneTime(_ db: Database) throws -> [PrekeyRecord] {
        try Row.fetchAll(
            db,
            sql: "SELECT kind, id, private_key, expires_at FROM prekey WHERE kind = ? AND published = 0 ORDER BY id",
            arguments: [Int64(PrekeyRecord.Kind.oneTime.rawValue)]
        ).map(PrekeyRecord.init(row:))
    }

    static func markPublished(_ db: Database, _ kind: PrekeyRecord.Kind, ids: [UInt32]) throws {
        guard !ids.isEmpty else { return }
        try db.execute(
            sql: "UPDATE prekey SET published = 1 WHERE kind = ? AND id IN (\(databaseQuestionMarks(count: ids.count)))",
            arguments: StatementArguments([Int64(kind.rawValue)] + ids.map(Int64.init))
        )
    }

    /// Retires every signed prekey but `current` not retired yet.
    static func retireSigned(_ db: Database, except current: UInt32, at: Int64) throws {
        try db.execute(
            sql: "UPDATE prekey SET retired_at = ? WHERE kind = ? AND id != ? AND retired_at IS NULL",
            arguments: [at, Int64(PrekeyRecord.Kind.signed.rawValue), Int64(current)]
        )
    }

    /// Deletes a one-time prekey (used, or refused by the relay when `unpublishedOnly`).
    static func deleteOneTime(_ db: Database, ids: [UInt32], unpublishedOnly: Bool = false) throws {
        guard !ids.isEmpty else { return }
        try db.execute(
            sql: "DELETE FROM prekey WHERE kind = ?\(unpublishedOnly ? " AND published = 0" : "") AND id IN (\(databaseQuestionMarks(count: ids.count)))",
            arguments: StatementArguments([Int64(PrekeyRecord.Kind.oneTime.rawValue)] + ids.map(Int64.init))
        )
    }

    /// Marks handed out all published one-time prekeys not yet marked but the `held` newest (the relay hands them
    /// out lowest id first).
    static func markHandedOut(_ db: Database, keepingNewest held: UInt32, at: Int64) throws {
        try db.execute(
            sql: """
                UPDATE prekey SET handed_out_at = ? WHERE kind = 2 AND published = 1 AND handed_out_at IS NULL AND id NOT IN (
                    SELECT id FROM prekey WHERE kind = 2 AND published = 1 AND handed_out_at IS NULL ORDER BY id DESC LIMIT ?)
                """,
            arguments: [at, Int64(held)]
        )
    }

    /// Deletes one-time prekeys handed out before `cutoff`, and all but the `maximum` most recently handed out.
    static func deleteHandedOut(_ db: Database, before cutoff: Int64, keepingAtMost maximum: Int) throws {
        try db.execute(
            sql: """
                DELETE FROM prekey WHERE kind = 2 AND handed_out_at IS NOT NULL AND (handed_out_at < ? OR id NOT IN (
                    SELECT id FROM prekey WHERE kind = 2 AND handed_out_at IS NOT NULL ORDER BY handed_out_at DESC, id DESC LIMIT ?))
                """,
            arguments: [cutoff, maximum]
        )
    }

    /// Deletes signed prekeys retired before `cutoff`.
    static func deleteRetired(_ db: Database, before cutoff: Int64) throws {
        try db.execute(sql: "DELETE FROM prekey WHERE kind = 1 AND retired_at IS NOT NULL AND retired_at < ?", arguments: [cutoff])
    }
}
