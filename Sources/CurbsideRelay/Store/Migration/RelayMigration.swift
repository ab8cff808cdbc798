import CurbsideWire
import Logging
import PostgresNIO

/// Copies a SQLite relay — relay.sqlite and its attachment files — into an empty PostgreSQL database, checks that the
/// two hold the same, and can be interrupted and run again to continue (`curbside relay migrate`).
///
/// Everything is copied as it is: accounts, enrollments (used or not), prekeys, queued envelopes with their ids,
/// sequences, times and attachment links, sender notices with their kinds, and attachments with their bytes —
/// committed ones whole, half-uploaded ones as far as they got (`held`), so a client resumes its upload where it
/// stood. Handles and keys are unchanged, so clients go on as before.
///
/// The source is locked for the whole run (`MigrationSource`): no relay can serve it meanwhile. The target is filled
/// in batches, each its own transaction that also records where the copy stands in `migration_progress`; a run that
/// finds such a record for the same source (by `fingerprint`) continues after the last batch committed. Once copied,
/// every table's row count and content digest, and every attachment's bytes, are compared between the two; only when
/// all agree is the migration marked finished.
public struct RelayMigration: Sendable {
    public struct Options: Sendable {
        /// Rows copied per transaction, at most.
        public var batchRows = 500
        /// Bytes (envelope bodies, attachment bytes) copied per transaction, at most; a larger single row goes alone.
        public var batchBytes = 16 << 20
        /// Bytes of an attachment per `attachment_chunk` row.
        public var chunkBytes = 256 << 10

        public init() {}
    }

    /// What a migration does, in order: foreign keys want accounts before prekeys and attachments before the
    /// envelopes that name them.
    public enum Step: String, CaseIterable, Sendable, Comparable {
        case account
        case enrollment
        case signedPrekey = "signed_prekey"
        case oneTimePrekey = "one_time_prekey"
        case attachment
        case attachmentBytes = "attachment_bytes"
        case envelope
        case notice
        /// PostgreSQL's identities set to continue after the highest sequence and key SQLite handed out.
        case sequences
        case verify
        case done

        public static func < (lhs: Self, rhs: Self) -> Bool {
            allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
        }

        var next: Step { Self.allCases[Self.allCases.firstIndex(of: self)! + 1] }

        /// The table this step copies row for row, if it does.
        var table: CopiedTable? {
            switch self {
            case .account: .account
            case .enrollment: .enrollment
            case .signedPrekey: .signedPrekey
            case .oneTimePrekey: .oneTimePrekey
            case .attachment: .attachment
            case .envelope: .envelope
            case .notice: .notice
            case .attachmentBytes, .sequences, .verify, .done: nil
            }
        }
    }

    /// What a run reports as it goes.
    public enum Event: Sendable {
        /// An earlier run into this target was interrupted; this one continues at `step`.
        case resuming(step: Step, startedAt: String)
        /// A batch committed: its rows (attachment bytes: chunks) and bytes; `batches` counts this run's so far.
        case batchCommitted(step: Step, rows: Int, bytes: Int, batches: Int)
        /// A step has copied everything (this run's share of it).
        case stepFinished(step: Step, rows: Int, bytes: Int)
        case verifying
    }

    /// One comparison of source and target.
    public struct Check: Sendable, Hashable {
        /// A table, or `attachment_data` for the attachments' bytes.
        public let name: String
        public let source: ContentDigest
        public let target: ContentDigest
        public var matches: Bool { source == target }
    }

    public struct Report: Sendable {
        /// Every comparison, all matching.
        public let checks: [Check]
        /// Where this run began, if an earlier one was interrupted.
        public let resumedAt: Step?
        public let attachments: Int
        public let partialAttachments: Int
        public let attachmentBytes: Int64
        /// Files in the attachments directory that relay.sqlite does not name (a crash left them); not copied.
        public let orphanFiles: Int
    }

    public enum Outcome: Sendable {
        case migrated(Report)
        /// A finished migration of this same source is recorded in the target: nothing was done.
        case alreadyMigrated(startedAt: String, finishedAt: String)
    }

    /// One digest computed the same way from both stores: columns and order as the relay means them, surrogate keys
    /// left out (the attachment key is read for `held`, then dropped), text ordered byte by byte on both sides.
    struct DigestQuery: Sendable {
        let name: String
        let source: String
        let target: String
    }

    static let digestQueries: [DigestQuery] = [
        DigestQuery(
            name: "account",
            source: "SELECT handle, identity_key, registered_at, last_seen_at FROM account ORDER BY handle",
            target: #"SELECT handle, identity_key, registered_at, last_seen_at FROM account ORDER BY handle COLLATE "C""#
        ),
        DigestQuery(
            name: "enrollment",
            source: "SELECT code_hash, handle, expires_at, used_at FROM enrollment ORDER BY code_hash",
            target: "SELECT code_hash, handle, expires_at, used_at FROM enrollment ORDER BY code_hash"
        ),
        DigestQuery(
            name: "signed_prekey",
            source: "SELECT handle, record FROM signed_prekey ORDER BY handle",
            target: #"SELECT handle, record FROM signed_prekey ORDER BY handle COLLATE "C""#
        ),
        DigestQuery(
            name: "one_time_prekey",
            source: "SELECT handle, id, record FROM one_time_prekey ORDER BY handle, id",
            target: #"SELECT handle, id, record FROM one_time_prekey ORDER BY handle COLLATE "C", id"#
        ),
        DigestQuery(
            name: "attachment",
            source: "SELECT key, owner, sha256, size, complete, expires_at FROM attachment ORDER BY owner, sha256",
            target:
                #"SELECT owner, sha256, size, complete, expires_at, held FROM attachment ORDER BY owner COLLATE "C", sha256"#
        ),
        DigestQuery(
            name: "envelope",
            source: """
                SELECT envelope_id, sender, recipient, body, stored_at, expires_at, attachment_bytes FROM envelope
                ORDER BY recipient, sequence
                """,
            target: """
                SELECT envelope_id, sender, recipient, body, stored_at, expires_at, attachment_bytes FROM envelope
                ORDER BY recipient COLLATE "C", sequence
                """
        ),
        DigestQuery(
            name: "envelope_attachment",
            source: """
                SELECT e.recipient, e.envelope_id, a.owner, a.sha256 FROM envelope_attachment l
                JOIN envelope e ON e.sequence = l.envelope JOIN attachment a ON a.key = l.attachment
                ORDER BY e.recipient, e.envelope_id, a.owner, a.sha256
                """,
            target: """
                SELECT e.recipient, e.envelope_id, a.owner, a.sha256 FROM envelope_attachment l
                JOIN envelope e ON e.sequence = l.envelope JOIN attachment a ON a.key = l.attachment
                ORDER BY e.recipient COLLATE "C", e.envelope_id, a.owner COLLATE "C", a.sha256
                """
        ),
        DigestQuery(
            name: "notice",
            source: "SELECT sender, kind, envelope_id, recipient, at FROM notice ORDER BY sender, sequence",
            target:
                #"SELECT sender, kind, envelope_id, recipient, at FROM notice ORDER BY sender COLLATE "C", sequence"#
        ),
        // Kept by triggers on both sides: equal when the envelopes and their attachment bytes are.
        DigestQuery(
            name: "queue_usage",
            source: "SELECT recipient, envelopes, bytes FROM queue_usage WHERE envelopes > 0 ORDER BY recipient",
            target:
                #"SELECT recipient, envelopes, bytes FROM queue_usage WHERE envelopes > 0 ORDER BY recipient COLLATE "C""#
        ),
        DigestQuery(
            name: "sender_usage",
            source:
                "SELECT recipient, sender, envelopes, bytes FROM sender_usage WHERE envelopes > 0 ORDER BY recipient, sender",
            target: """
                SELECT recipient, sender, envelopes, bytes FROM sender_usage WHERE envelopes > 0
                ORDER BY recipient COLLATE "C", sender COLLATE "C"
                """
        ),
    ]

    /// The name of the check over attachments' bytes.
    static let attachmentData = "attachment_data"

    public let storePath: String
    public let attachmentsPath: String
    public let target: PostgresSettings
    public let options: Options
    let logger: Logger

    /// - Parameters:
    ///   - storePath: the source relay.sqlite.
    ///   - attachmentsPath: the directory of its attachment files (`partial/`, `complete/`).
    ///   - target: the PostgreSQL database; it must be empty, or hold an interrupted migration of this source.
    public init(
        storePath: String,
        attachmentsPath: String,
        target: PostgresSettings,
        options: Options = Options(),
        logger: Logger
    ) {
        self.storePath = storePath
        self.attachmentsPath = attachmentsPath
        self.target = target
        self.options = options
        self.logger = logger
    }

    /// The target as messages name it: its database and servers, never a password.
    var targetDescription: String {
        "database \(target.database) on \(target.servers.map(\.description).joined(separator: ", "))"
    }

    /// Copies what is left to copy, verifies, and marks the migration finished.
    ///
    /// - Throws: `RelayMigrationError` — `sourceMissing`, `sourceInUse`, `sourceDamaged`, `sourceChanged`,
    ///   `targetNotEmpty`, `targetInUse`, `verificationFailed` (with every check); `RelayError`
    ///   (`store_unavailable`, `storage_failed`) when the database cannot be reached or refuses. Whatever was
    ///   committed stays, and a later run continues from it.
    public func run(onEvent: @escaping @Sendable (Event) -> Void = { _ in }) async throws -> Outcome {
        let source = try await MigrationSource.open(storePath: storePath, attachmentsPath: attachmentsPath)
        defer { try? source.close() }
        let sourceHashes = try await source.attachmentHashes()
        let sourceDigests = try await source.rowDigests().merging([
            Self.attachmentData: Self.attachmentDataDigest(
                source.attachments.map { ($0.owner, $0.sha256, $0.held, sourceHashes[$0.key] ?? []) }
            )
        ]) { $1 }
        let fingerprint = Self.fingerprint(sourceDigests)
        let orphans = try await source.blobs.fileKeys().subtracting(source.attachments.map(\.key)).count

        let pool = PostgresPool(settings: target, logger: logger)
        do {
            let outcome = try await pool.withConnection { connection in
                let target = MigrationTarget(connection: connection, logger: logger)
                do {
                    let outcome = try await migrate(
                        source,
                        into: target,
                        fingerprint: fingerprint,
                        sourceDigests: sourceDigests,
                        orphans: orphans,
                        onEvent: onEvent
                    )
                    await target.release()
                    return outcome
                } catch {
                    await target.release()
                    throw error
                }
            }
            await pool.close()
            return outcome
        } catch {
            await pool.close()
            throw error
        }
    }

    private func migrate(
        _ source: MigrationSource,
        into target: MigrationTarget,
        fingerprint: [UInt8],
        sourceDigests: [String: ContentDigest],
        orphans: Int,
        onEvent: @Sendable (Event) -> Void
    ) async throws -> Outcome {
        try await target.prepare(targetDescription)
        var step = Step.account
        var position: Int64 = 0
        var byteOffset: Int64 = 0
        var resumedAt: Step?
        if let progress = try await target.progress() {
            guard progress.fingerprint == fingerprint else {
                if progress.source == source.path, let finishedAt = progress.finishedAt {
                    throw RelayMigrationError(
                        .sourceChanged,
                        "\(source.path) changed after it was migrated into \(targetDescription) (finished at \(finishedAt));"
                            + " what a relay stored in it since is not in PostgreSQL",
                        hint: "if the relay ran on SQLite after the migration, migrate again into a new, empty database"
                    )
                }
                if progress.source == source.path {
                    throw RelayMigrationError(
                        .sourceChanged,
                        "\(source.path) changed since the migration into \(targetDescription) began at \(progress.startedAt)"
                            + " (did a relay run on it meanwhile?); nothing was copied",
                        hint: "drop and create the target database again (dropdb, createdb), then migrate again"
                    )
                }
                throw RelayMigrationError(
                    .targetNotEmpty,
                    "\(targetDescription) holds a migration from another relay (\(progress.source), begun at "
                        + "\(progress.startedAt)); nothing was copied",
                    hint: "migrate into a new, empty database"
                )
            }
            if let finishedAt = progress.finishedAt {
                return .alreadyMigrated(startedAt: progress.startedAt, finishedAt: finishedAt)
            }
            guard let recorded = Step(rawValue: progress.step) else {
                throw RelayMigrationError(
                    .targetFailed,
                    "migration_progress names a step this version does not know: \(progress.step)"
                )
            }
            step = recorded
            position = progress.position
            byteOffset = progress.byteOffset
            resumedAt = recorded
            onEvent(.resuming(step: recorded, startedAt: progress.startedAt))
        } else {
            let filled = try await target.nonEmptyTables()
            guard filled.isEmpty else {
                throw RelayMigrationError(
                    .targetNotEmpty,
                    "\(targetDescription) is not empty ("
                        + filled.map { "\($0.rows) \($0.table) rows" }.joined(separator: ", ")
                        + ") and holds no migration of this relay; nothing was copied",
                    hint: "migrate into a new, empty database (createdb -O USER curbside)"
                )
            }
            try await target.begin(fingerprint: fingerprint, source: source.path, step: step.rawValue)
        }

        var batches = 0
        var copied = (rows: 0, bytes: 0)
        while step < .verify {
            let batch: (rows: Int, bytes: Int)
            if let table = step.table {
                batch = try await copyRows(step, of: table, from: source, into: target, after: &position)
            } else if step == .attachmentBytes {
                batch = try await copyAttachmentBytes(
                    from: source,
                    into: target,
                    position: &position,
                    byteOffset: &byteOffset
                )
            } else {
                try await target.transaction {
                    for table in [CopiedTable.attachment, .envelope, .notice] {
                        try await target.continueIdentity(
                            of: table,
                            after: try await source.lastAutoincrement(table.name)
                        )
                    }
                    try await target.setProgress(step: step.next.rawValue, position: 0)
                }
                step = step.next
                continue
            }
            if batch.rows == 0 {
                onEvent(.stepFinished(step: step, rows: copied.rows, bytes: copied.bytes))
                try await target.transaction { try await target.setProgress(step: step.next.rawValue, position: 0) }
                step = step.next
                position = 0
                byteOffset = 0
                copied = (0, 0)
                continue
            }
            batches += 1
            copied = (copied.rows + batch.rows, copied.bytes + batch.bytes)
            onEvent(.batchCommitted(step: step, rows: batch.rows, bytes: batch.bytes, batches: batches))
        }

        onEvent(.verifying)
        let checks = try await verify(target, against: sourceDigests)
        guard checks.allSatisfy(\.matches) else {
            let differing = checks.filter { !$0.matches }.map(\.name)
            throw RelayMigrationError(
                .verificationFailed,
                "the target does not hold what the source holds (\(differing.joined(separator: ", "))); "
                    + "the migration is not finished",
                hint:
                    "drop and create the target database again and migrate again; if it fails the same way, report it",
                checks: checks
            )
        }
        try await target.transaction { try await target.finish() }
        return .migrated(
            Report(
                checks: checks,
                resumedAt: resumedAt,
                attachments: source.attachments.count,
                partialAttachments: source.attachments.filter { !$0.complete }.count,
                attachmentBytes: source.attachments.reduce(0) { $0 + $1.held },
                orphanFiles: orphans
            )
        )
    }

    /// Copies the next batch of `table` after rowid `position` (envelopes with their attachment links) in one
    /// transaction that also records the new position; returns what it copied (nothing: the table is done).
    private func copyRows(
        _ step: Step,
        of table: CopiedTable,
        from source: MigrationSource,
        into target: MigrationTarget,
        after position: inout Int64
    ) async throws -> (rows: Int, bytes: Int) {
        let rows = try await source.rows(
            of: table,
            after: position,
            limit: options.batchRows,
            maximumBytes: options.batchBytes
        )
        guard let first = rows.first, let last = rows.last else { return (0, 0) }
        let links =
            table.name == CopiedTable.envelope.name ? try await source.links(ofEnvelopes: first.rowid...last.rowid) : []
        try await target.transaction {
            try await target.insert(rows, into: table)
            try await target.insert(links, into: .envelopeAttachment)
            try await target.setProgress(step: step.rawValue, position: last.rowid)
        }
        position = last.rowid
        return (rows.count, rows.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.byteCount } })
    }

    /// Copies up to `batchBytes` of attachment bytes (`batchRows` chunks) in one transaction, as `chunkBytes` rows, continuing at byte
    /// `byteOffset` of attachment `position` (or the next one); records where it stopped. Returns the chunks and bytes
    /// copied (none: all attachments' bytes are copied).
    private func copyAttachmentBytes(
        from source: MigrationSource,
        into target: MigrationTarget,
        position: inout Int64,
        byteOffset: inout Int64
    ) async throws -> (rows: Int, bytes: Int) {
        let held = source.attachments.filter { $0.held > 0 }
        let (start, startOffset) = (position, byteOffset)
        guard var index = held.firstIndex(where: { $0.key > start || ($0.key == start && startOffset < $0.held) })
        else {
            return (0, 0)
        }
        var (key, offset) = held[index].key == start ? (start, startOffset) : (held[index].key, Int64(0))
        var copied = (rows: 0, bytes: 0)
        try await target.transaction {
            while copied.bytes < options.batchBytes, copied.rows < options.batchRows {
                let attachment = held[index]
                let length = Int(min(Int64(options.chunkBytes), attachment.held - offset))
                let piece = try await source.blobs.readHeld(attachment.key, from: UInt64(offset), length: length)
                guard piece.count == length else {
                    throw RelayMigrationError(
                        .sourceDamaged,
                        "attachment \(attachment.key)'s file ended at byte \(offset + Int64(piece.count))"
                    )
                }
                try await target.insertChunk(attachment: attachment.key, offset: offset, bytes: piece)
                offset += Int64(length)
                copied = (copied.rows + 1, copied.bytes + length)
                guard offset == attachment.held else { continue }
                guard index + 1 < held.count else { break }
                index += 1
                (key, offset) = (held[index].key, 0)
            }
            // An attachment just finished is recorded as (its key, its size): the next run starts after it.
            try await target.setProgress(step: Step.attachmentBytes.rawValue, position: key, byteOffset: offset)
        }
        (position, byteOffset) = (key, offset)
        return copied
    }

    /// Every check: each table's digest, and the attachments' bytes, target against source.
    private func verify(_ target: MigrationTarget, against source: [String: ContentDigest]) async throws -> [Check] {
        let digests = try await target.rowDigests()
        let attachments = try await target.attachmentHashes()
        for attachment in attachments where attachment.complete && attachment.hash != attachment.sha256 {
            throw RelayMigrationError(
                .verificationFailed,
                "attachment \(attachment.sha256.hexString.prefix(16))… of \(attachment.owner) in the target does not match its SHA-256"
            )
        }
        let data = Self.attachmentDataDigest(attachments.map { ($0.owner, $0.sha256, $0.held, $0.hash) })
        return (Self.digestQueries.map(\.name) + [Self.attachmentData]).map { name in
            Check(
                name: name,
                source: source[name] ?? ContentDigest(rows: 0, sha256: []),
                target: name == Self.attachmentData ? data : digests[name] ?? ContentDigest(rows: 0, sha256: [])
            )
        }
    }

    /// The digest of attachments' bytes: per attachment, ordered by owner and id, its owner, id, bytes held and the
    /// SHA-256 of those bytes.
    static func attachmentDataDigest(_ attachments: [(owner: String, sha256: [UInt8], held: Int64, hash: [UInt8])])
        -> ContentDigest
    {
        let digester = RowDigester()
        let ordered = attachments.sorted {
            $0.owner == $1.owner
                ? $0.sha256.lexicographicallyPrecedes($1.sha256)
                : Array($0.owner.utf8).lexicographicallyPrecedes(Array($1.owner.utf8))
        }
        for attachment in ordered {
            digester.add(attachment.owner)
            digester.add(attachment.sha256)
            digester.add(attachment.held)
            digester.add(attachment.hash)
            digester.endRow()
        }
        return digester.finalize()
    }

    /// What identifies a source's content: a digest of all its digests, attachments' bytes included.
    static func fingerprint(_ digests: [String: ContentDigest]) -> [UInt8] {
        let digester = RowDigester()
        for name in digests.keys.sorted() {
            digester.add(name)
            digester.add(Int64(digests[name]!.rows))
            digester.add(digests[name]!.sha256)
            digester.endRow()
        }
        return digester.finalize().sha256
    }
}
