import CurbsideTestSupport
import CurbsideWire
import Foundation
import Testing

@testable import CurbsideRelay

/// The PostgreSQL store across a failover: a primary and its synchronous standby, the primary's postmaster killed and
/// the standby promoted. Requests meanwhile are refused `store_unavailable` within the connect timeout — never another
/// error, never a wait for the pool's own give-up — and the store then writes to the promoted standby, which holds
/// what was stored before.
/// (`curbside-faults failover` runs the same with relay processes, senders and a synchronous standby.)
@Suite("PostgreSQL store across a failover", .serialized)
struct PostgresFailoverTests {
    @Test func requestsAreRefusedStoreUnavailableThenStoredOnThePromotedStandby() async throws {
        let primary = try PostgresCluster.start(settings: ["fsync": "off"], name: "failover-primary")
        defer { primary.stop() }
        try primary.createDatabase("relay")
        let standby = try PostgresCluster.standby(of: primary, name: "standby", settings: ["fsync": "off"])
        defer { standby.stop() }
        try primary.requireSynchronousStandby("standby")
        var settings = PostgresSettings(
            servers: [.tcp(host: "127.0.0.1", port: primary.port), .tcp(host: "127.0.0.1", port: standby.port)],
            username: primary.user,
            database: "relay"
        )
        settings.connectTimeout = .seconds(2)
        let store = try await PostgresRelayStore.open(settings: settings, logger: TestPostgres.logger).withProviders()
        defer { Task { await store.close() } }
        let (gp, derm) = (try Handle("amara.gp"), try Handle("osei.derm"))
        func submission(_ text: String) -> Submission {
            Submission(body: Array(text.utf8), sender: gp, recipient: derm, storedAt: .now(), expiresAt: .now().adding(seconds: 600))
        }
        guard case .stored = try await store.enqueue(submission("before the kill")) else {
            Issue.record("the first send was not stored")
            return
        }
        try primary.killPostmaster()

        // No server accepts writes: refused as store_unavailable, within the connect timeout (and a margin).
        for attempt in 0..<3 {
            let asked = ContinuousClock.now
            let error = await #expect(throws: RelayError.self) { try await store.enqueue(submission("during \(attempt)")) }
            #expect(error?.code == .storeUnavailable)
            #expect(ContinuousClock.now - asked < .seconds(5), "attempt \(attempt) waited \(ContinuousClock.now - asked)")
        }

        try standby.promote()
        let promoted = ContinuousClock.now
        var outcome: EnqueueOutcome?
        while outcome == nil, ContinuousClock.now - promoted < .seconds(10) {
            do {
                outcome = try await store.enqueue(submission("after the promotion"))
            } catch let error as RelayError where error.code == .storeUnavailable {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        guard case .stored = try #require(outcome) else {
            Issue.record("the send after the promotion was answered \(String(describing: outcome))")
            return
        }
        #expect(ContinuousClock.now - promoted < .seconds(5))
        #expect(try await store.queueUsage(for: derm).envelopes == 2)
    }
}
