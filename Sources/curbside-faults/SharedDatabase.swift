import CurbsideClient
import CurbsideTLS
import CurbsideTestSupport
import CurbsideWire
import Foundation

/// Relay processes over one PostgreSQL database, for the crash and failover runs: each has its own data directory
/// and relay.conf naming the database, and all present one TLS identity (the first relay's key and certificate,
/// copied), so a client's pin holds whichever process it reaches.
enum SharedDatabase {
    /// The relays' database in each cluster.
    static let name = "curbside"

    /// A throw-away cluster with fsync and synchronous commit on (PostgreSQL's defaults, said outright), holding an
    /// empty database for the relays.
    static func startCluster(name clusterName: String) throws -> PostgresCluster {
        let cluster = try PostgresCluster.start(settings: ["fsync": "on", "synchronous_commit": "on"], name: clusterName)
        do {
            try cluster.createDatabase(name)
        } catch {
            cluster.stop()
            throw error
        }
        return cluster
    }

    /// The `database` URL of relays that use `clusters` on loopback, in order: a relay writes to whichever accepts
    /// writes.
    static func url(_ clusters: [PostgresCluster]) -> String {
        "postgres://\(clusters[0].user)@" + clusters.map { "127.0.0.1:\($0.port)" }.joined(separator: ",") + "/\(name)"
    }

    /// `count` relays over the database at `url`, not yet initialised, with data directories in `directory`.
    static func relays(_ count: Int, database url: String, executable: String, directory: String) -> [RelayProcess] {
        (0..<count).map { RelayProcess(executable: executable, dataDirectory: "\(directory)/relay\($0)", database: url) }
    }

    /// Initialises and starts `relays`: the first makes the schema, enrolls `names` and registers each with a fresh
    /// key; the others take its TLS identity. Returns the client context that pins it and the accounts.
    static func start(_ relays: [RelayProcess], accounts names: [String]) async throws
        -> (tls: TLSContext, accounts: [(Handle, SigningKey)])
    {
        let (tls, accounts) = try await relays[0].startWithAccounts(names)
        for relay in relays.dropFirst() {
            try relay.initialise(sharingIdentityOf: relays[0])
            try await relay.start()
        }
        return (tls, accounts)
    }

    /// The store checked on `cluster`, in one snapshot, while relays may be writing: each recipient's and each
    /// sender's queue counters (kept by triggers) against the envelope rows, and amcheck over every index of the
    /// store's tables, heap included. "ok", or what disagrees.
    static func consistencyCheck(_ cluster: PostgresCluster) throws -> String {
        let output = try cluster.psql(
            """
            SET client_min_messages = warning;
            CREATE EXTENSION IF NOT EXISTS amcheck;
            SELECT
                (SELECT COUNT(*) FROM (
                    SELECT recipient, COUNT(*) AS envelopes, SUM(length(body) + attachment_bytes) AS bytes
                    FROM envelope GROUP BY recipient) e
                    FULL JOIN queue_usage q USING (recipient)
                    WHERE COALESCE(e.envelopes, 0) <> COALESCE(q.envelopes, 0) OR COALESCE(e.bytes, 0) <> COALESCE(q.bytes, 0)),
                (SELECT COUNT(*) FROM (
                    SELECT recipient, sender, COUNT(*) AS envelopes, SUM(length(body) + attachment_bytes) AS bytes
                    FROM envelope GROUP BY recipient, sender) e
                    FULL JOIN sender_usage s USING (recipient, sender)
                    WHERE COALESCE(e.envelopes, 0) <> COALESCE(s.envelopes, 0) OR COALESCE(e.bytes, 0) <> COALESCE(s.bytes, 0)),
                (SELECT COUNT(bt_index_check(i.indexrelid, true)) FROM pg_index i
                    JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
                    WHERE a.amname = 'btree' AND c.relnamespace = 'public'::regnamespace)
            """,
            database: name
        )
        let counts = output.split(separator: "\n").last?.split(separator: "|").map { Int($0) ?? -1 } ?? []
        guard counts.count == 3 else { return "the consistency check printed \(output)" }
        var problems: [String] = []
        if counts[0] != 0 { problems.append("\(counts[0]) recipients' queue_usage disagrees with their envelopes") }
        if counts[1] != 0 { problems.append("\(counts[1]) senders' sender_usage disagrees with their envelopes") }
        if counts[2] <= 0 { problems.append("amcheck checked no index") }
        return problems.isEmpty ? "ok" : problems.joined(separator: "; ")
    }

    /// How many envelopes the store on `cluster` holds.
    static func envelopeCount(_ cluster: PostgresCluster) throws -> Int {
        Int(try cluster.psql("SELECT COUNT(*) FROM envelope", database: name)) ?? -1
    }
}
