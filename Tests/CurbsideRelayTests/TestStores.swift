import CurbsideTestSupport
import CurbsideWire
import Foundation
import Logging
import Testing

@testable import CurbsideRelay

/// The two stores every store test runs against: the same suite, parameterised, not a copy.
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }

    /// A new, empty store: SQLite in memory, or a new database in the test process's PostgreSQL cluster.
    func makeStore() async throws -> any RelayStore {
        switch self {
        case .sqlite: try SQLiteRelayStore.inMemory()
        case .postgres: try await PostgresRelayStore.open(settings: try await TestPostgres.shared.newDatabase(), logger: TestPostgres.logger)
        }
    }

    /// Two stores on the same data, as two relay processes have: two SQLite connections to one file, or two
    /// PostgreSQL stores (each with its own pool) on one database.
    func makeStorePair() async throws -> (any RelayStore, any RelayStore, cleanUp: @Sendable () -> Void) {
        switch self {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-store-\(UUID())")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let path = directory.appendingPathComponent("relay.sqlite").path
            let first = try SQLiteRelayStore(path: path)
            let second = try SQLiteRelayStore(path: path)
            return (first, second, { try? FileManager.default.removeItem(at: directory) })
        case .postgres:
            let settings = try await TestPostgres.shared.newDatabase()
            let first = try await PostgresRelayStore.open(settings: settings, logger: TestPostgres.logger)
            let second = try await PostgresRelayStore.open(settings: settings, logger: TestPostgres.logger)
            return (first, second, {})
        }
    }
}

/// The PostgreSQL cluster of this test process: started on first use, a new database for each store, stopped by its
/// watchdog when the process ends.
actor TestPostgres {
    static let shared = TestPostgres()
    static let logger: Logger = {
        var logger = Logger(label: "curbside.tests.postgres")
        logger.logLevel = .warning
        return logger
    }()

    private var cluster: PostgresCluster?
    private var databases = 0

    func newDatabase() throws -> PostgresSettings {
        let cluster = try self.cluster ?? PostgresCluster.start(
            // These tests are about the store's semantics, not the disk's: fsync is the fault runs' subject.
            settings: ["max_connections": "400", "fsync": "off"],
            name: "tests"
        )
        self.cluster = cluster
        databases += 1
        let name = "store_\(databases)"
        try cluster.createDatabase(name)
        var settings = PostgresSettings(servers: [.unixSocket(path: cluster.unixSocketPath)], username: cluster.user, database: name)
        settings.maximumConnections = 8
        return settings
    }

    func currentCluster() throws -> PostgresCluster {
        _ = try newDatabase()
        return cluster!
    }
}

extension RelayStore {
    /// Registers the test providers (amara.gp, osei.derm, kofi.cardio) through enrollment codes, as the relay does:
    /// a store only queues for registered handles.
    func withProviders() async throws -> Self {
        let now = Timestamp.now()
        for handle in ["amara.gp", "osei.derm", "kofi.cardio"] {
            let code = Array("code for \(handle)".utf8)
            try await addEnrollment(handle: try Handle(handle), codeHash: SHA256.hash(code), expiresAt: now.adding(seconds: 60))
            try await register(handle: try Handle(handle), identityKey: SigningKey().verifyingKey, codeHash: SHA256.hash(code), now: now)
        }
        return self
    }

    /// Writes `batch` in one transaction, as group commit writes what waited for it.
    func write(_ batch: [Submission]) async throws -> [EnqueueOutcome] {
        if let store = self as? SQLiteRelayStore { return try await store.write(batch) }
        if let store = self as? PostgresRelayStore { return try await store.write(batch) }
        Issue.record("no batch writes for \(type(of: self))")
        return []
    }

    /// Transactions written for sends and the envelopes in them, for the group-commit tests.
    var groupCommitCounts: (transactions: Int, envelopes: Int) {
        get async {
            if let store = self as? SQLiteRelayStore { return await store.groupCommitStatistics }
            if let store = self as? PostgresRelayStore { return await store.groupCommitStatistics }
            return (0, 0)
        }
    }
}
