import Logging
import NIOCore
import PostgresNIO

/// The PostgreSQL database a relay is migrated into, through one connection held for the whole run: it holds the
/// session advisory lock that keeps a second `relay migrate` out, and runs each batch as its own transaction.
struct MigrationTarget {
    /// Where the copy stands: the one row of `migration_progress`.
    struct Progress: Sendable, Hashable {
        /// `RelayMigration.fingerprint` of the source this target is being filled from.
        let fingerprint: [UInt8]
        /// The relay.sqlite path it was read from, for messages.
        let source: String
        let startedAt: String
        /// The step to continue with (`RelayMigration.Step`).
        let step: String
        /// The last source rowid copied in `step` (for attachment bytes: the attachment being copied).
        let position: Int64
        /// For attachment bytes: how many bytes of attachment `position` are copied.
        let byteOffset: Int64
        let finishedAt: String?
    }

    let connection: PostgresConnection
    let logger: Logger

    /// The migration's bookkeeping: not part of the relay's schema (no relay reads it), made by the first
    /// `relay migrate` into a database and kept afterwards, so a later run can say the migration is done.
    static let progressTable = """
        CREATE TABLE IF NOT EXISTS migration_progress (
            source_fingerprint BYTEA NOT NULL,
            source TEXT NOT NULL,
            started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            step TEXT NOT NULL,
            position BIGINT NOT NULL DEFAULT 0,
            byte_offset BIGINT NOT NULL DEFAULT 0,
            finished_at TIMESTAMPTZ
        )
        """

    /// Gives the migration lock back at once: the pooled connection holding it may outlive the run by a moment, and a
    /// run right after this one (a re-run to check it is done) must not find it taken.
    func release() async {
        _ = try? await connection.query(
            "SELECT pg_advisory_unlock(\(PostgresSchema.LockClass.relayMigration.rawValue), 0)",
            logger: logger
        ).collect()
    }

    /// Takes the migration lock, refuses a database that holds tables of something else, brings the relay's schema
    /// up to date and makes the progress table.
    func prepare(_ description: String) async throws {
        let locked = try await connection.query(
            "SELECT pg_try_advisory_lock(\(PostgresSchema.LockClass.relayMigration.rawValue), 0)",
            logger: logger
        ).decode(Bool.self).first { _ in true }
        guard locked == true else {
            throw RelayMigrationError(
                .targetInUse,
                "another `curbside relay migrate` is writing to \(description)",
                hint: "let it finish; run this again afterwards to see that it is done"
            )
        }
        var tables: [String] = []
        for try await name in try await connection.query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename",
            logger: logger
        ).decode(String.self) {
            tables.append(name)
        }
        if !tables.isEmpty, !tables.contains("schema_migration") {
            throw RelayMigrationError(
                .targetNotEmpty,
                "\(description) holds tables that are not a Curbside relay's (\(tables.prefix(5).joined(separator: ", "))"
                    + (tables.count > 5 ? ", …" : "") + "); nothing was copied",
                hint: "migrate into a database of its own: createdb -O USER curbside"
            )
        }
        try await PostgresSchema.migrate(connection, logger: logger)
        try await connection.query(PostgresQuery(unsafeSQL: Self.progressTable), logger: logger)
    }

    /// The progress row, if a migration into this database began.
    func progress() async throws -> Progress? {
        let rows = try await connection.query(
            """
            SELECT source_fingerprint, source, \(unescaped: Self.utc("started_at")), step, position, byte_offset,
                \(unescaped: Self.utc("finished_at"))
            FROM migration_progress LIMIT 1
            """,
            logger: logger
        )
        for try await (fingerprint, source, startedAt, step, position, offset, finishedAt) in rows.decode(
            (ByteBuffer, String, String, String, Int64, Int64, String?).self
        ) {
            return Progress(
                fingerprint: Array(buffer: fingerprint),
                source: source,
                startedAt: startedAt,
                step: step,
                position: position,
                byteOffset: offset,
                finishedAt: finishedAt
            )
        }
        return nil
    }

    private static func utc(_ column: String) -> String {
        "to_char(\(column) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    }

    /// Rows in the relay's tables, by table, for those that hold any.
    func nonEmptyTables() async throws -> [(table: String, rows: Int64)] {
        var found: [(String, Int64)] = []
        for table in ["account", "enrollment", "signed_prekey", "one_time_prekey", "attachment", "envelope", "notice"] {
            let count =
                try await connection.query(PostgresQuery(unsafeSQL: "SELECT COUNT(*) FROM \(table)"), logger: logger)
                .decode(Int64.self).first { _ in true } ?? 0
            if count > 0 { found.append((table, count)) }
        }
        return found
    }

    /// Records the start of a migration from the source with `fingerprint`.
    func begin(fingerprint: [UInt8], source: String, step: String) async throws {
        try await transaction {
            try await connection.query(
                "INSERT INTO migration_progress (source_fingerprint, source, step) VALUES (\(ByteBuffer(bytes: fingerprint)), \(source), \(step))",
                logger: logger
            )
        }
    }

    /// Runs `body` in one transaction (begun with `begin`); any failure rolls it back.
    @discardableResult
    func transaction<T>(_ begin: PostgresQuery = "BEGIN", _ body: () async throws -> T) async throws -> T {
        try await connection.query(begin, logger: logger)
        do {
            let value = try await body()
            try await connection.query("COMMIT", logger: logger)
            return value
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }

    /// Where the copy stands, written in the transaction of what was copied.
    func setProgress(step: String, position: Int64, byteOffset: Int64 = 0) async throws {
        try await connection.query(
            "UPDATE migration_progress SET step = \(step), position = \(position), byte_offset = \(byteOffset), updated_at = now()",
            logger: logger
        )
    }

    /// Marks the migration finished (after verification).
    func finish() async throws {
        try await connection.query(
            "UPDATE migration_progress SET step = 'done', finished_at = now(), updated_at = now()",
            logger: logger
        )
    }

    /// Inserts `rows` into `table` with one statement: each column a bound array, unnested.
    func insert(_ rows: [CopiedRow], into table: CopiedTable) async throws {
        guard !rows.isEmpty else { return }
        var bindings = PostgresBindings()
        var arrays: [String] = []
        var names: [String] = []
        var selected: [String] = []
        for (index, column) in table.columns.enumerated() {
            let values = rows.map { $0.values[index] }
            let label = "\(table.name).\(column.name)"
            switch column.type {
            case .text: bindings.append(try values.map { try $0.text(label) })
            case .bytes: bindings.append(try values.map { ByteBuffer(bytes: try $0.bytes(label)) })
            case .integer: bindings.append(try values.map { try $0.integer(label) })
            case .boolean: bindings.append(try values.map { try $0.integer(label) != 0 })
            }
            arrays.append("$\(bindings.count)::\(column.type.arrayType)")
            names.append("c\(index)")
            if column.nullable {
                bindings.append(values.map { $0 == .null })
                arrays.append("$\(bindings.count)::boolean[]")
                names.append("n\(index)")
                selected.append("CASE WHEN n\(index) THEN NULL ELSE c\(index) END")
            } else {
                selected.append("c\(index)")
            }
        }
        let sql = """
            INSERT INTO \(table.name) (\(table.columns.map(\.name).joined(separator: ", ")))\(table.identity == nil ? "" : " OVERRIDING SYSTEM VALUE")
            SELECT \(selected.joined(separator: ", ")) FROM unnest(\(arrays.joined(separator: ", "))) AS t(\(names.joined(separator: ", ")))
            """
        try await connection.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger)
    }

    /// One row of an attachment's bytes.
    func insertChunk(attachment key: Int64, offset: Int64, bytes: [UInt8]) async throws {
        try await connection.query(
            "INSERT INTO attachment_chunk (attachment, \"offset\", data) VALUES (\(key), \(offset), \(ByteBuffer(bytes: bytes)))",
            logger: logger
        )
    }

    /// Sets the identity of `table` to continue after `last`, the highest value the source handed out.
    func continueIdentity(of table: CopiedTable, after last: Int64) async throws {
        guard let column = table.identity else { return }
        _ = try await connection.query(
            PostgresQuery(
                unsafeSQL: "SELECT setval(pg_get_serial_sequence('\(table.name)', '\(column)'), $1, $2)",
                binds: {
                    var bindings = PostgresBindings()
                    bindings.append(max(last, 1))
                    bindings.append(last > 0)
                    return bindings
                }()
            ),
            logger: logger
        ).collect()
    }

    /// The digest of every table `RelayMigration.digestQueries` lists, by name, from one snapshot.
    func rowDigests() async throws -> [String: ContentDigest] {
        try await transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") {
            var digests: [String: ContentDigest] = [:]
            for query in RelayMigration.digestQueries {
                let digester = RowDigester()
                for try await row in try await connection.query(PostgresQuery(unsafeSQL: query.target), logger: logger)
                {
                    try digester.add(row)
                }
                digests[query.name] = digester.finalize()
            }
            return digests
        }
    }

    /// Every attachment with the SHA-256 of the bytes its chunks hold, read back in order.
    ///
    /// - Throws: `verificationFailed` when the chunks leave a gap or do not add up to `held`.
    func attachmentHashes() async throws -> [(
        owner: String, sha256: [UInt8], held: Int64, complete: Bool, hash: [UInt8]
    )] {
        var attachments: [(key: Int64, owner: String, sha256: [UInt8], held: Int64, complete: Bool)] = []
        for try await (key, owner, sha256, held, complete) in try await connection.query(
            "SELECT key, owner, sha256, held, complete FROM attachment ORDER BY key",
            logger: logger
        ).decode((Int64, String, ByteBuffer, Int64, Bool).self) {
            attachments.append((key, owner, Array(buffer: sha256), held, complete))
        }
        var hashed: [(owner: String, sha256: [UInt8], held: Int64, complete: Bool, hash: [UInt8])] = []
        for attachment in attachments {
            let digest: (sha256: [UInt8], bytes: Int64)
            do {
                digest = try await PostgresAttachmentStorage.chunkDigest(
                    of: attachment.key,
                    on: connection,
                    logger: logger
                )
            } catch BlobStore.Failure.io(let detail) {
                throw RelayMigrationError(.verificationFailed, "in the target, \(detail)")
            }
            guard digest.bytes == attachment.held else {
                throw RelayMigrationError(
                    .verificationFailed,
                    "attachment \(attachment.key) in the target holds \(digest.bytes) bytes in chunks but records \(attachment.held)"
                )
            }
            hashed.append((attachment.owner, attachment.sha256, attachment.held, attachment.complete, digest.sha256))
        }
        return hashed
    }
}

extension CopiedValue {
    func text(_ column: String) throws -> String {
        switch self {
        case .text(let text): return text
        case .null: return ""
        default: throw RelayMigrationError(.sourceDamaged, "\(column) holds a value that is not text")
        }
    }

    func bytes(_ column: String) throws -> [UInt8] {
        switch self {
        case .bytes(let bytes): return bytes
        case .null: return []
        default: throw RelayMigrationError(.sourceDamaged, "\(column) holds a value that is not bytes")
        }
    }

    func integer(_ column: String) throws -> Int64 {
        switch self {
        case .integer(let integer): return integer
        case .null: return 0
        default: throw RelayMigrationError(.sourceDamaged, "\(column) holds a value that is not an integer")
        }
    }
}
