import CurbsideTestSupport
import Testing

@testable import CurbsideRelay

@Suite("PostgreSQL schema")
struct PostgresSchemaTests {
    /// Relay processes started together on an empty database (a service manager starting them all at once) each open
    /// the store; the migrations are applied once.
    @Test func storesOpenedAtOnceOnAnEmptyDatabaseEachOpen() async throws {
        for _ in 0..<5 {
            let settings = try await TestPostgres.shared.newDatabase()
            let stores = try await withThrowingTaskGroup(of: PostgresRelayStore.self) { group in
                for _ in 0..<4 {
                    group.addTask { try await PostgresRelayStore.open(settings: settings, logger: TestPostgres.logger) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(stores.count == 4)
            #expect(try await stores[0].appliedMigrations() == PostgresSchema.migrations.map(\.name))
            for store in stores { await store.close() }
        }
    }
}
