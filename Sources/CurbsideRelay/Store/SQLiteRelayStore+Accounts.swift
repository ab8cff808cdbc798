import CurbsideWire
import Foundation
import GRDB

extension SQLiteRelayStore {
    public func accounts() async throws -> [AccountSummary] {
        try await Self.reading(database) { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT a.handle, a.identity_key, a.registered_at, a.last_seen_at,
                        COALESCE(q.envelopes, 0) AS envelopes, COALESCE(q.bytes, 0) AS bytes
                    FROM account a LEFT JOIN queue_usage q ON q.recipient = a.handle
                    ORDER BY a.handle
                    """
            ).map { row in
                AccountSummary(
                    handle: try Handle(row["handle"] as String),
                    identityKey: try VerifyingKey(rawRepresentation: Array(row["identity_key"] as Data)),
                    registeredAt: Timestamp(storedMilliseconds: row["registered_at"]),
                    lastSeenAt: (row["last_seen_at"] as Int64?).map(Timestamp.init(storedMilliseconds:)),
                    queuedEnvelopes: row["envelopes"],
                    queuedBytes: row["bytes"]
                )
            }
        }
    }

    /// Read on the calling thread, not GRDB's reader queue: a login is a lookup of one row by its primary key, and
    /// the two thread hops of an asynchronous read were a good part of a login's context switches. A WAL reader
    /// waits for no writer, so the thread is held for the read alone.
    public func loginKey(for handle: Handle) async throws -> (key: VerifyingKey, lastSeenAt: Timestamp?)? {
        let row = try Self.readingHere(database) { db in
            try Row.fetchOne(db, sql: "SELECT identity_key, last_seen_at FROM account WHERE handle = ?", arguments: [handle.rawValue])
        }
        guard let row else { return nil }
        return (
            try VerifyingKey(rawRepresentation: Array(row["identity_key"] as Data)),
            (row["last_seen_at"] as Int64?).map(Timestamp.init(storedMilliseconds:))
        )
    }

    /// A read on the calling thread (GRDB's synchronous read), with the store's errors as `reading` gives them.
    private static func readingHere<T>(_ database: any DatabaseWriter, _ value: (Database) throws -> T) throws -> T {
        do {
            return try database.read(value)
        } catch let error as DatabaseError {
            throw storageError(error)
        }
    }

    public func identityKeyBytes(for handles: [Handle]) async throws -> [Handle: [UInt8]] {
        guard !handles.isEmpty else { return [:] }
        return try await Self.reading(database) { db in
            var keys: [Handle: [UInt8]] = [:]
            // SQLite binds at most 32 766 parameters a statement: a chunk stays far below it.
            for chunk in handles.chunked(into: 500) {
                let rows = try Row.fetchAll(
                    db,
                    sql: "SELECT handle, identity_key FROM account WHERE handle IN (\(databaseQuestionMarks(count: chunk.count)))",
                    arguments: StatementArguments(chunk.map(\.rawValue))
                )
                for row in rows {
                    keys[try Handle(row["handle"] as String)] = Array(row["identity_key"] as Data)
                }
            }
            return keys
        }
    }

    public func pendingEnrollments(at now: Timestamp) async throws -> [PendingEnrollment] {
        try await Self.reading(database) { db in
            try Row.fetchAll(
                db,
                sql: "SELECT handle, expires_at FROM enrollment WHERE used_at IS NULL AND expires_at > ? ORDER BY handle, expires_at",
                arguments: [now.signedMilliseconds]
            ).map { row in
                PendingEnrollment(handle: try Handle(row["handle"] as String), expiresAt: Timestamp(storedMilliseconds: row["expires_at"]))
            }
        }
    }

    public func recordLogin(_ handle: Handle, at: Timestamp) async throws {
        try await Self.transaction(database) { db in
            try db.execute(
                sql: """
                    UPDATE account SET last_seen_at = ?1
                    WHERE handle = ?2 AND (last_seen_at IS NULL OR last_seen_at <= ?1 - ?3)
                    """,
                arguments: [at.signedMilliseconds, handle.rawValue, AccountSummary.lastSeenResolutionMilliseconds]
            )
        }
    }

    public func revoke(_ handle: Handle, droppingQueue: Bool, now: Timestamp) async throws -> Revocation? {
        try await Self.transaction(database) { db in
            guard
                let key = try Data.fetchOne(db, sql: "SELECT identity_key FROM account WHERE handle = ?", arguments: [handle.rawValue])
            else { return nil }
            // The prekeys go with the account (ON DELETE CASCADE): nobody can seal to the revoked key any more.
            try db.execute(sql: "DELETE FROM account WHERE handle = ?", arguments: [handle.rawValue])
            // A code made before the revocation (mailed, and perhaps as lost as the laptop) must not register the
            // handle after it.
            try db.execute(sql: "DELETE FROM enrollment WHERE handle = ? AND used_at IS NULL", arguments: [handle.rawValue])
            let voided = db.changesCount
            var removal = Removal()
            if droppingQueue {
                // Metadata only, as expiry does: dropping a large queue must not load its bodies.
                let queued = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT sequence, envelope_id, sender, recipient, X'' AS body, stored_at, expires_at
                        FROM envelope WHERE recipient = ? ORDER BY sequence
                        """,
                    arguments: [handle.rawValue]
                ).map(QueuedEnvelope.init(row:))
                var referenced: [Int64] = []
                for envelope in queued {
                    referenced += try Self.deleteEnvelope(db, envelope.sequence)
                    removal.notices.append(try Self.addNotice(db, .expired, for: envelope, at: now))
                }
                try Self.pruneNotices(db, of: Set(removal.notices.map(\.sender)))
                removal.attachmentFiles = try Self.forgetUnreferenced(db, referenced)
            }
            let kept = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM envelope WHERE recipient = ?", arguments: [handle.rawValue]) ?? 0
            return Revocation(
                identityKey: try VerifyingKey(rawRepresentation: Array(key)),
                keptEnvelopes: kept,
                removal: removal,
                voidedCodes: voided
            )
        }
    }
}

extension Array {
    /// Consecutive slices of at most `size` elements.
    fileprivate func chunked(into size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
