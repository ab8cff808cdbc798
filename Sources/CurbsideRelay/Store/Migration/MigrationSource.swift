import CurbsideDigest
import Foundation
import GRDB

/// The SQLite relay being migrated: relay.sqlite, held under an exclusive lock for as long as this value is open, and
/// the attachment files beside it.
///
/// The lock is SQLite's own (`locking_mode = EXCLUSIVE` and an exclusive transaction): it cannot be taken while any
/// other process has the file open — a relay serving it, `relay status`, `relay enroll` — and while it is held none of
/// them can open it. So the rows cannot change under the copy, and no consult can be acknowledged by a relay on the
/// SQLite store after it has been copied.
struct MigrationSource: Sendable {
    /// An attachment row with the bytes its files hold.
    struct Attachment: Sendable, Hashable {
        let key: Int64
        let owner: String
        let sha256: [UInt8]
        let size: Int64
        let complete: Bool
        let expiresAt: Int64?
        /// Bytes held: the whole size once the upload was committed, else what the partial file holds (0 if none).
        let held: Int64

        /// The row as `CopiedTable.attachment` lists its columns.
        var copiedRow: CopiedRow {
            CopiedRow(
                rowid: key,
                values: [
                    .integer(key), .text(owner), .bytes(sha256), .integer(size), .integer(complete ? 1 : 0),
                    expiresAt.map(CopiedValue.integer) ?? .null, .integer(held),
                ]
            )
        }
    }

    let path: String
    let database: DatabaseQueue
    let blobs: BlobStore
    /// Every attachment row, by key.
    let attachments: [Attachment]

    /// Locks relay.sqlite at `storePath` and brings its schema up to date, as `relay serve` would.
    ///
    /// - Throws: `sourceMissing` when there is no file, `sourceInUse` when another process has it open,
    ///   `sourceDamaged` when an attachment's files contradict its row.
    static func open(storePath: String, attachmentsPath: String) async throws -> MigrationSource {
        guard FileManager.default.fileExists(atPath: storePath) else {
            throw RelayMigrationError(
                .sourceMissing,
                "there is no relay.sqlite at \(storePath)",
                hint: "give --data the directory of a relay that ran on SQLite"
            )
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(2)
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA locking_mode = EXCLUSIVE") }
        let database: DatabaseQueue
        do {
            database = try DatabaseQueue(path: storePath, configuration: configuration)
            // Taken now and kept until the queue closes (exclusive locking mode never gives a lock back).
            try await database.writeWithoutTransaction { db in try db.inTransaction(.exclusive) { .commit } }
            try SQLiteRelayStore.migrator.migrate(database)
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED
        {
            throw RelayMigrationError(
                .sourceInUse,
                "\(storePath) is in use by another process",
                hint:
                    "stop `curbside relay serve` (and any `relay status` or `relay enroll`) for this data directory, then migrate"
            )
        } catch let error as DatabaseError {
            throw RelayMigrationError(
                .sourceDamaged,
                "cannot read \(storePath): \(error.message ?? "\(error.resultCode)")"
            )
        }
        let blobs = try BlobStore(root: attachmentsPath)
        let rows = try await database.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT key, owner, sha256, size, complete, expires_at FROM attachment ORDER BY key"
            )
            .map { row in
                (
                    key: row["key"] as Int64, owner: row["owner"] as String, sha256: Array(row["sha256"] as Data),
                    size: row["size"] as Int64, complete: row["complete"] as Bool,
                    expiresAt: row["expires_at"] as Int64?
                )
            }
        }
        var attachments: [Attachment] = []
        for row in rows {
            let held = Int64(try await blobs.progress(row.key) ?? 0)
            guard held <= row.size else {
                throw RelayMigrationError(
                    .sourceDamaged,
                    "attachment \(row.key) of \(row.owner) holds \(held) bytes, more than its size of \(row.size)"
                )
            }
            guard !row.complete || held == row.size else {
                throw RelayMigrationError(
                    .sourceDamaged,
                    "attachment \(row.key) of \(row.owner) is recorded complete, but its file holds \(held) of \(row.size) bytes",
                    hint:
                        "the file \(attachmentsPath)/complete/\(row.key) is missing or cut short; restore it from a backup"
                )
            }
            attachments.append(
                Attachment(
                    key: row.key,
                    owner: row.owner,
                    sha256: row.sha256,
                    size: row.size,
                    complete: row.complete,
                    expiresAt: row.expiresAt,
                    held: held
                )
            )
        }
        return MigrationSource(path: storePath, database: database, blobs: blobs, attachments: attachments)
    }

    /// Gives the lock back.
    func close() throws {
        try database.close()
    }

    /// Rows of `table` after rowid `position`, in rowid order: at most `limit`, and no more than `maximumBytes` of
    /// values unless a single row is larger.
    func rows(of table: CopiedTable, after position: Int64, limit: Int, maximumBytes: Int) async throws -> [CopiedRow] {
        if table.name == CopiedTable.attachment.name {
            return Array(attachments.lazy.filter { $0.key > position }.prefix(limit).map(\.copiedRow))
        }
        return try await database.read { db in
            var rows: [CopiedRow] = []
            var bytes = 0
            let cursor = try Row.fetchCursor(db, sql: table.sourceQuery, arguments: [position])
            while rows.count < limit, let row = try cursor.next() {
                let values = try row.databaseValues.dropFirst().map(CopiedValue.init)
                let size = values.reduce(0) { $0 + $1.byteCount }
                if !rows.isEmpty, bytes + size > maximumBytes { break }
                bytes += size
                rows.append(CopiedRow(rowid: row[0], values: values))
            }
            return rows
        }
    }

    /// The attachment links of envelopes with sequences in `range`.
    func links(ofEnvelopes range: ClosedRange<Int64>) async throws -> [CopiedRow] {
        try await database.read { db in
            try Row.fetchAll(
                db,
                sql:
                    "SELECT envelope, attachment FROM envelope_attachment WHERE envelope BETWEEN ? AND ? ORDER BY envelope, attachment",
                arguments: [range.lowerBound, range.upperBound]
            ).map { row in CopiedRow(rowid: row[0], values: [.integer(row[0]), .integer(row[1])]) }
        }
    }

    /// The highest value SQLite's AUTOINCREMENT has handed out for `table` (deleted rows included), so PostgreSQL's
    /// identity continues after it and no sequence is used twice.
    func lastAutoincrement(_ table: String) async throws -> Int64 {
        try await database.read { db in
            let handedOut =
                try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = ?", arguments: [table]) ?? 0
            let highest = try Int64.fetchOne(db, sql: "SELECT MAX(rowid) FROM \(table)") ?? 0
            return max(handedOut, highest)
        }
    }

    /// The digest of every table `RelayMigration.digestQueries` lists, by name; attachments' rows carry `held`.
    func rowDigests() async throws -> [String: ContentDigest] {
        let held = Dictionary(uniqueKeysWithValues: attachments.map { ($0.key, $0.held) })
        return try await database.read { db in
            var digests: [String: ContentDigest] = [:]
            for query in RelayMigration.digestQueries {
                let digester = RowDigester()
                let cursor = try Row.fetchCursor(db, sql: query.source)
                while let row = try cursor.next() {
                    guard query.name == CopiedTable.attachment.name else {
                        try digester.add(row)
                        continue
                    }
                    // The key orders nothing and is left out; `held` comes from the files.
                    let key: Int64 = row[0]
                    for value in row.databaseValues.dropFirst() { try digester.add(CopiedValue(value)) }
                    digester.add(held[key] ?? 0)
                    digester.endRow()
                }
                digests[query.name] = digester.finalize()
            }
            return digests
        }
    }

    /// SHA-256 of the bytes held for each attachment, by key, reading its file in 1 MiB pieces.
    ///
    /// - Throws: `sourceDamaged` for a committed attachment whose bytes are not its SHA-256.
    func attachmentHashes() async throws -> [Int64: [UInt8]] {
        var hashes: [Int64: [UInt8]] = [:]
        for attachment in attachments {
            let hasher = FileSHA256()
            var offset: Int64 = 0
            while offset < attachment.held {
                let piece = try await blobs.readHeld(
                    attachment.key,
                    from: UInt64(offset),
                    length: Int(min(1 << 20, attachment.held - offset))
                )
                guard !piece.isEmpty else {
                    throw RelayMigrationError(
                        .sourceDamaged,
                        "attachment \(attachment.key)'s file ended at byte \(offset) of \(attachment.held)"
                    )
                }
                hasher.update(piece)
                offset += Int64(piece.count)
            }
            let hash = hasher.finalize()
            if attachment.complete, hash != attachment.sha256 {
                throw RelayMigrationError(
                    .sourceDamaged,
                    "attachment \(attachment.key) of \(attachment.owner) does not match its SHA-256",
                    hint:
                        "the file \(blobs.root)/complete/\(attachment.key) was changed or damaged; restore it from a backup"
                )
            }
            hashes[attachment.key] = hash
        }
        return hashes
    }
}
