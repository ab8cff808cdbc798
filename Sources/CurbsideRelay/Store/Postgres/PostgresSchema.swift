import Logging
import PostgresNIO

/// The PostgreSQL store's schema: named migrations, applied in order, each in its own transaction, and never edited
/// once landed (new ones are appended), as the SQLite store's are.
///
/// Several relay processes may start at once against one database: each migration runs under a transaction-level
/// advisory lock, and the list of applied names is read under it, so each is applied exactly once.
enum PostgresSchema {
    struct Migration {
        let name: String
        /// One statement each: PostgresNIO prepares every query, and a prepared query holds one statement.
        let statements: [String]
    }

    /// Advisory lock keys (the two-integer form), one class per purpose.
    enum LockClass: Int32 {
        case migration = 0x4355_5201
        case recipient = 0x4355_5202
        case expirySweeper = 0x4355_5203
        /// Held by `relay migrate` for its whole run (a session lock), so two migrations never fill one database.
        case relayMigration = 0x4355_5204
    }

    static let migrations: [Migration] = [
        Migration(
            name: "v1: accounts, key directory, envelope queue, notices, attachments",
            statements: [
                """
                CREATE TABLE account (
                    handle TEXT PRIMARY KEY,
                    identity_key BYTEA NOT NULL UNIQUE,
                    registered_at BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE enrollment (
                    code_hash BYTEA PRIMARY KEY,
                    handle TEXT NOT NULL,
                    expires_at BIGINT NOT NULL,
                    used_at BIGINT
                )
                """,
                """
                CREATE TABLE signed_prekey (
                    handle TEXT PRIMARY KEY REFERENCES account ON DELETE CASCADE,
                    record BYTEA NOT NULL
                )
                """,
                """
                CREATE TABLE one_time_prekey (
                    handle TEXT NOT NULL REFERENCES account ON DELETE CASCADE,
                    id BIGINT NOT NULL,
                    record BYTEA NOT NULL,
                    PRIMARY KEY (handle, id)
                )
                """,
                """
                CREATE TABLE envelope (
                    sequence BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    envelope_id BYTEA NOT NULL,
                    sender TEXT NOT NULL,
                    recipient TEXT NOT NULL,
                    body BYTEA NOT NULL,
                    stored_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL,
                    attachment_bytes BIGINT NOT NULL DEFAULT 0,
                    UNIQUE (recipient, envelope_id)
                )
                """,
                """
                CREATE INDEX envelope_by_recipient ON envelope (recipient, sequence)
                """,
                """
                CREATE INDEX envelope_by_expiry ON envelope (expires_at)
                """,
                """
                CREATE INDEX envelope_by_stored_at ON envelope (stored_at)
                """,
                """
                CREATE TABLE notice (
                    sequence BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    sender TEXT NOT NULL,
                    kind INTEGER NOT NULL,
                    envelope_id BYTEA NOT NULL,
                    recipient TEXT NOT NULL,
                    at BIGINT NOT NULL
                )
                """,
                """
                CREATE INDEX notice_by_sender ON notice (sender, sequence)
                """,
                """
                CREATE INDEX notice_by_time ON notice (at)
                """,
                // Uploads and attachments; their bytes are rows of attachment_chunk, written in the transaction
                // that advances `held`, so any relay process continues an upload and serves a download.
                """
                CREATE TABLE attachment (
                    key BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    owner TEXT NOT NULL,
                    sha256 BYTEA NOT NULL,
                    size BIGINT NOT NULL,
                    held BIGINT NOT NULL DEFAULT 0,
                    complete BOOLEAN NOT NULL DEFAULT FALSE,
                    expires_at BIGINT,
                    UNIQUE (owner, sha256)
                )
                """,
                """
                CREATE INDEX attachment_by_sha256 ON attachment (sha256)
                """,
                """
                CREATE INDEX attachment_by_expiry ON attachment (expires_at)
                """,
                """
                CREATE TABLE attachment_chunk (
                    attachment BIGINT NOT NULL REFERENCES attachment ON DELETE CASCADE,
                    "offset" BIGINT NOT NULL,
                    data BYTEA NOT NULL,
                    PRIMARY KEY (attachment, "offset")
                )
                """,
                """
                CREATE TABLE envelope_attachment (
                    envelope BIGINT NOT NULL REFERENCES envelope ON DELETE CASCADE,
                    attachment BIGINT NOT NULL REFERENCES attachment,
                    PRIMARY KEY (envelope, attachment)
                )
                """,
                """
                CREATE INDEX envelope_attachment_by_attachment ON envelope_attachment (attachment)
                """,
                // Each recipient's queue and each sender's share of it, kept by statement-level triggers (one update
                // per statement, however many rows a group commit inserts), so a send's quota check reads two rows.
                """
                CREATE TABLE queue_usage (
                    recipient TEXT PRIMARY KEY,
                    envelopes BIGINT NOT NULL,
                    bytes BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE sender_usage (
                    recipient TEXT NOT NULL,
                    sender TEXT NOT NULL,
                    envelopes BIGINT NOT NULL,
                    bytes BIGINT NOT NULL,
                    PRIMARY KEY (recipient, sender)
                )
                """,
                """
                CREATE FUNCTION envelope_counted() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO queue_usage (recipient, envelopes, bytes)
                        SELECT recipient, COUNT(*), SUM(length(body) + attachment_bytes) FROM inserted GROUP BY recipient
                        ON CONFLICT (recipient) DO UPDATE
                        SET envelopes = queue_usage.envelopes + excluded.envelopes, bytes = queue_usage.bytes + excluded.bytes;
                    INSERT INTO sender_usage (recipient, sender, envelopes, bytes)
                        SELECT recipient, sender, COUNT(*), SUM(length(body) + attachment_bytes) FROM inserted
                        GROUP BY recipient, sender
                        ON CONFLICT (recipient, sender) DO UPDATE
                        SET envelopes = sender_usage.envelopes + excluded.envelopes, bytes = sender_usage.bytes + excluded.bytes;
                    RETURN NULL;
                END $$
                """,
                """
                CREATE FUNCTION envelope_uncounted() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    UPDATE queue_usage q SET envelopes = q.envelopes - d.envelopes, bytes = q.bytes - d.bytes
                        FROM (SELECT recipient, COUNT(*) AS envelopes, SUM(length(body) + attachment_bytes) AS bytes
                              FROM removed GROUP BY recipient) d
                        WHERE q.recipient = d.recipient;
                    UPDATE sender_usage s SET envelopes = s.envelopes - d.envelopes, bytes = s.bytes - d.bytes
                        FROM (SELECT recipient, sender, COUNT(*) AS envelopes, SUM(length(body) + attachment_bytes) AS bytes
                              FROM removed GROUP BY recipient, sender) d
                        WHERE s.recipient = d.recipient AND s.sender = d.sender;
                    DELETE FROM sender_usage s USING (SELECT DISTINCT recipient, sender FROM removed) d
                        WHERE s.recipient = d.recipient AND s.sender = d.sender AND s.envelopes = 0;
                    RETURN NULL;
                END $$
                """,
                """
                CREATE TRIGGER envelope_counted AFTER INSERT ON envelope
                    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION envelope_counted()
                """,
                """
                CREATE TRIGGER envelope_uncounted AFTER DELETE ON envelope
                    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION envelope_uncounted()
                """,
            ]
        ),
    ]

    /// Applies the migrations not yet applied, in order; returns the names applied now.
    @discardableResult
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws -> [String] {
        // Under the lock too: two sessions creating the same table IF NOT EXISTS at once can both find it missing,
        // and the second then fails on a catalogue unique index (23505).
        try await connection.query(ifOpen: "BEGIN", logger: logger)
        do {
            try await connection.query(ifOpen: "SELECT pg_advisory_xact_lock(\(LockClass.migration.rawValue), 0)", logger: logger)
            try await connection.query(ifOpen:
                "CREATE TABLE IF NOT EXISTS schema_migration (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                logger: logger
            )
            try await connection.query(ifOpen: "COMMIT", logger: logger)
        } catch {
            try? await connection.query(ifOpen: "ROLLBACK", logger: logger)
            throw error
        }
        var applied: [String] = []
        for migration in migrations {
            try await connection.query(ifOpen: "BEGIN", logger: logger)
            do {
                try await connection.query(ifOpen: "SELECT pg_advisory_xact_lock(\(LockClass.migration.rawValue), 0)", logger: logger)
                let rows = try await connection.query(ifOpen: "SELECT 1 FROM schema_migration WHERE name = \(migration.name)", logger: logger)
                var done = false
                for try await _ in rows { done = true }
                if !done {
                    for statement in migration.statements {
                        try await connection.query(ifOpen: PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query(ifOpen: "INSERT INTO schema_migration (name) VALUES (\(migration.name))", logger: logger)
                    applied.append(migration.name)
                }
                try await connection.query(ifOpen: "COMMIT", logger: logger)
            } catch {
                try? await connection.query(ifOpen: "ROLLBACK", logger: logger)
                throw error
            }
        }
        return applied
    }

    /// The names of the migrations applied to the database.
    static func appliedMigrations(_ connection: PostgresConnection, logger: Logger) async throws -> [String] {
        var names: [String] = []
        let rows = try await connection.query(ifOpen: "SELECT name FROM schema_migration ORDER BY applied_at, name", logger: logger)
        for try await name in rows.decode(String.self) { names.append(name) }
        return names
    }
}
