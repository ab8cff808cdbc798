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
        Migration(
            name: "v2: a batch of sends decided, written and committed by one call (curbside_send)",
            statements: [sendProcedure]
        ),
        Migration(
            name: "v3: account last seen",
            statements: ["ALTER TABLE account ADD COLUMN last_seen_at BIGINT"]
        ),
    ]

    /// A group commit's batch of sends in one round trip: `CALL curbside_send(…)` takes the recipients' locks, reads
    /// what the decisions need, decides each send in order as `SQLiteRelayStore.write` does, writes the stored ones
    /// with one multi-row INSERT (and their attachment links with one more), queues the notifications for the other
    /// relay processes, and COMMITs — inside the call, so that its answer arrives only once the commit is durable
    /// (on the synchronous standby too, if there is one). A failure anywhere rolls the whole batch back.
    ///
    /// The arguments are parallel arrays, one element per send (1-based, in the batch's order), and the attachments
    /// the sends name as (send, attachment id) pairs. The answer is parallel arrays too, one element per send:
    /// `kinds` (0 stored, 1 duplicate, 2 unknown recipient, 3 unknown attachment, 4 sender's share full, 5 queue
    /// full) with `first`, `second` and `third` (0 stored: sequence; 1 duplicate: sequence, stored at, expires at;
    /// 4 share full: the sender's envelopes and bytes) and `missing` (3: the attachment id not found).
    ///
    /// Every statement inside is planned once per connection and cached by PL/pgSQL, so each reads the tables through
    /// a LATERAL lookup by key with LIMIT 1 (which keeps PostgreSQL from flattening it into a join): a cached join
    /// planned while a table was small (a hash of the whole table) would otherwise be kept as the table grows. The lock order (byte order of the handles) is the one every writer takes, so
    /// two batches never wait for each other in a cycle.
    static let sendProcedure = """
        CREATE PROCEDURE curbside_send(
            ids BYTEA[], senders TEXT[], recipients TEXT[], bodies BYTEA[], stored_ats BIGINT[], expires_ats BIGINT[],
            queue_envelope_limits BIGINT[], queue_byte_limits BIGINT[], share_envelope_limits BIGINT[], share_byte_limits BIGINT[],
            attachment_sends INTEGER[], attachment_ids BYTEA[], channel TEXT, payload_prefix TEXT,
            INOUT kinds INTEGER[], INOUT first BIGINT[], INOUT second BIGINT[], INOUT third BIGINT[], INOUT missing BYTEA[]
        ) LANGUAGE plpgsql AS $$
        DECLARE
            n INTEGER := cardinality(ids);
            locked TEXT;
            -- Per send: the first send of the batch with the same recipient and id, its queue's and its share's
            -- counters, the envelope stored before with its id, whether its recipient is registered, the first of
            -- its attachments not found and the bytes of those found.
            first_of_id INTEGER[];
            queue_of INTEGER[];
            share_of INTEGER[];
            old_sequences BIGINT[];
            old_stored_ats BIGINT[];
            old_expires_ats BIGINT[];
            known BOOLEAN[];
            not_found BYTEA[];
            extra_bytes BIGINT[];
            -- Counters as the sends decided so far leave them.
            queue_envelopes BIGINT[];
            queue_bytes BIGINT[];
            share_envelopes BIGINT[];
            share_bytes BIGINT[];
            -- For the first send of each id: the send stored under it in this batch.
            stored_as INTEGER[] := array_fill(NULL::INTEGER, ARRAY[n]);
            accepted INTEGER[] := '{}';
            sequences BIGINT[];
            needed BIGINT;
            q INTEGER;
            s INTEGER;
        BEGIN
            FOR locked IN SELECT r FROM (SELECT DISTINCT r FROM unnest(recipients) AS r) d ORDER BY r COLLATE "C" LOOP
                PERFORM pg_advisory_xact_lock(\(LockClass.recipient.rawValue), hashtext(locked));
            END LOOP;

            SELECT array_agg(t.first_send ORDER BY t.i), array_agg(t.queue ORDER BY t.i), array_agg(t.share ORDER BY t.i),
                array_agg(coalesce(e.sequence, 0) ORDER BY t.i), array_agg(coalesce(e.stored_at, 0) ORDER BY t.i),
                array_agg(coalesce(e.expires_at, 0) ORDER BY t.i), array_agg(a.handle IS NOT NULL ORDER BY t.i),
                array_agg((e.sequence IS NOT NULL)::INTEGER ORDER BY t.i)
            INTO first_of_id, queue_of, share_of, old_sequences, old_stored_ats, old_expires_ats, known, kinds
            FROM (
                SELECT i::INTEGER, r, id,
                    min(i::INTEGER) OVER (PARTITION BY r, id) AS first_send,
                    dense_rank() OVER (ORDER BY r COLLATE "C")::INTEGER AS queue,
                    dense_rank() OVER (ORDER BY r COLLATE "C", sender COLLATE "C")::INTEGER AS share
                FROM unnest(recipients, ids, senders) WITH ORDINALITY AS u(r, id, sender, i)
            ) t
            LEFT JOIN LATERAL (
                SELECT sequence, stored_at, expires_at FROM envelope WHERE recipient = t.r AND envelope_id = t.id LIMIT 1
            ) e ON TRUE
            LEFT JOIN LATERAL (SELECT handle FROM account WHERE handle = t.r LIMIT 1) a ON TRUE;

            SELECT array_agg(coalesce(u.envelopes, 0) ORDER BY d.queue), array_agg(coalesce(u.bytes, 0) ORDER BY d.queue)
            INTO queue_envelopes, queue_bytes
            FROM (SELECT DISTINCT r, dense_rank() OVER (ORDER BY r COLLATE "C")::INTEGER AS queue FROM unnest(recipients) AS r) d
            LEFT JOIN LATERAL (SELECT envelopes, bytes FROM queue_usage WHERE recipient = d.r LIMIT 1) u ON TRUE;

            SELECT array_agg(coalesce(u.envelopes, 0) ORDER BY d.share), array_agg(coalesce(u.bytes, 0) ORDER BY d.share)
            INTO share_envelopes, share_bytes
            FROM (
                SELECT DISTINCT r, sender, dense_rank() OVER (ORDER BY r COLLATE "C", sender COLLATE "C")::INTEGER AS share
                FROM unnest(recipients, senders) AS p(r, sender)
            ) d
            LEFT JOIN LATERAL (
                SELECT envelopes, bytes FROM sender_usage WHERE recipient = d.r AND sender = d.sender LIMIT 1
            ) u ON TRUE;

            IF cardinality(attachment_sends) > 0 THEN
                SELECT array_agg(coalesce(f.not_found, ''::BYTEA) ORDER BY g.i), array_agg(coalesce(f.bytes, 0) ORDER BY g.i)
                INTO not_found, extra_bytes
                FROM generate_series(1, n) AS g(i)
                LEFT JOIN (
                    SELECT w.send, (array_agg(w.id ORDER BY w.j) FILTER (WHERE c.key IS NULL))[1] AS not_found,
                        sum(c.size)::BIGINT AS bytes
                    FROM unnest(attachment_sends, attachment_ids) WITH ORDINALITY AS w(send, id, j)
                    LEFT JOIN LATERAL (
                        SELECT key, size FROM attachment WHERE owner = senders[w.send] AND sha256 = w.id AND complete LIMIT 1
                    ) c ON TRUE
                    GROUP BY w.send
                ) f ON f.send = g.i;
            ELSE
                not_found := array_fill(''::BYTEA, ARRAY[n]);
                extra_bytes := array_fill(0::BIGINT, ARRAY[n]);
            END IF;

            -- `kinds` holds, until here, whether each send's envelope was stored before.
            first := array_fill(0::BIGINT, ARRAY[n]);
            second := array_fill(0::BIGINT, ARRAY[n]);
            third := array_fill(0::BIGINT, ARRAY[n]);
            missing := array_fill(''::BYTEA, ARRAY[n]);
            FOR i IN 1..n LOOP
                IF kinds[i] = 1 THEN
                    -- A retry is acknowledged whatever the quota: it takes no new space.
                    first[i] := old_sequences[i];
                    second[i] := old_stored_ats[i];
                    third[i] := old_expires_ats[i];
                    CONTINUE;
                END IF;
                IF stored_as[first_of_id[i]] IS NOT NULL THEN
                    -- The same envelope earlier in this batch; its sequence is known after the INSERT.
                    kinds[i] := -1;
                    first[i] := stored_as[first_of_id[i]];
                    CONTINUE;
                END IF;
                IF NOT known[i] THEN
                    kinds[i] := 2;
                    CONTINUE;
                END IF;
                IF not_found[i] <> ''::BYTEA THEN
                    kinds[i] := 3;
                    missing[i] := not_found[i];
                    CONTINUE;
                END IF;
                needed := length(bodies[i]) + extra_bytes[i];
                s := share_of[i];
                IF share_envelopes[s] >= share_envelope_limits[i] OR share_bytes[s] + needed > share_byte_limits[i] THEN
                    kinds[i] := 4;
                    first[i] := share_envelopes[s];
                    second[i] := share_bytes[s];
                    CONTINUE;
                END IF;
                q := queue_of[i];
                IF queue_envelopes[q] >= queue_envelope_limits[i] OR queue_bytes[q] + needed > queue_byte_limits[i] THEN
                    kinds[i] := 5;
                    CONTINUE;
                END IF;
                share_envelopes[s] := share_envelopes[s] + 1;
                share_bytes[s] := share_bytes[s] + needed;
                queue_envelopes[q] := queue_envelopes[q] + 1;
                queue_bytes[q] := queue_bytes[q] + needed;
                stored_as[first_of_id[i]] := i;
                accepted := accepted || i;
                kinds[i] := 0;
            END LOOP;

            IF cardinality(accepted) > 0 THEN
                -- One statement for the batch; each stored row is matched back to its send by (recipient, id).
                WITH stored AS (
                    INSERT INTO envelope (envelope_id, sender, recipient, body, stored_at, expires_at, attachment_bytes)
                    SELECT ids[k], senders[k], recipients[k], bodies[k], stored_ats[k], expires_ats[k], extra_bytes[k]
                    FROM unnest(accepted) WITH ORDINALITY AS t(k, o) ORDER BY o
                    RETURNING sequence, recipient, envelope_id
                )
                SELECT array_agg(stored.sequence ORDER BY t.o) INTO sequences
                FROM stored JOIN unnest(accepted) WITH ORDINALITY AS t(k, o)
                    ON stored.recipient = recipients[t.k] AND stored.envelope_id = ids[t.k];
                FOR j IN 1..cardinality(accepted) LOOP
                    first[accepted[j]] := sequences[j];
                END LOOP;
                FOR i IN 1..n LOOP
                    IF kinds[i] = -1 THEN
                        kinds[i] := 1;
                        second[i] := stored_ats[first[i]];
                        third[i] := expires_ats[first[i]];
                        first[i] := first[first[i]];
                    END IF;
                END LOOP;
                -- Delivered with the commit, never before it.
                PERFORM pg_notify(channel, payload_prefix || sequences[j] || ' ' || recipients[accepted[j]])
                FROM generate_series(1, cardinality(accepted)) AS j;
                IF cardinality(attachment_sends) > 0 THEN
                    -- Referenced: an attachment lives as long as an envelope refers to it, not by its own expiry.
                    WITH linked AS (
                        INSERT INTO envelope_attachment (envelope, attachment)
                        SELECT first[w.send], c.key
                        FROM unnest(attachment_sends, attachment_ids) AS w(send, id)
                        JOIN LATERAL (
                            SELECT key FROM attachment WHERE owner = senders[w.send] AND sha256 = w.id AND complete LIMIT 1
                        ) c ON TRUE
                        WHERE kinds[w.send] = 0
                        ON CONFLICT DO NOTHING
                        RETURNING attachment
                    )
                    UPDATE attachment SET expires_at = NULL WHERE key IN (SELECT attachment FROM linked);
                END IF;
            END IF;
            COMMIT;
        END $$
        """

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
