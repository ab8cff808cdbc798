import CurbsideClient
import CurbsideTLS
import CurbsideTestSupport
import CurbsideWire
import Foundation

/// Failover: a PostgreSQL primary and a synchronous standby on loopback (streaming replication), relay processes
/// whose `database` names both, senders spread over the relays. Mid-run the primary's postmaster is killed with
/// SIGKILL, as when its machine dies, and the standby promoted; the relays find it, and senders retry what was
/// refused (`store_unavailable`) or lost, with back-off, the same bytes each time. At the end the recipients fetch
/// everything from the promoted standby through the relays: every consult acknowledged `stored` must be there, once.
struct FailoverRun {
    var executable: String
    var senders = 4
    var consults = 10_000
    var relays = 2
    /// From the primary's death to the promotion: 0 promotes at once, as a failover manager that had already
    /// decided would; more stands for the time one takes to decide.
    var promotionDelay: Duration = .zero
    var seed: UInt64 = 1
    var timeLimit: Duration = .seconds(900)
    var keepDirectory = false
    var backOff = CrashRun.BackOff()

    struct Report: Codable {
        var senders = 0
        var relays = 0
        var consults = 0
        var acknowledged = 0
        var delivered = 0
        var lost = 0
        var duplicated = 0
        var unfinished = 0
        var resends = 0
        var resendsThroughAnotherRelay = 0
        /// Resends answered with an earlier `stored_at`: committed (on the standby too) before the answer was lost.
        var resendsAlreadyStored = 0
        /// The standby's `sync_state` in the primary's `pg_stat_replication` just before the kill: unless it is
        /// `sync`, an acknowledged commit need not be on the standby, and the run proves nothing.
        var standbyState = ""
        var acknowledgedBeforeKill = 0
        /// From the SIGKILL to `pg_ctl promote` returning, and of that the promotion alone.
        var killToPromotedSeconds = 0.0
        var promotionSeconds = 0.0
        /// From the first failure after the kill to the first consult stored after it; -1 if no send failed.
        var refusedSeconds = -1.0
        /// Failed attempts in that time, each made again: error frames by code, connections that could not be opened
        /// or logged in, connections that broke.
        var outageRetries = 0
        var outageRefusals: [String: Int] = [:]
        var outageConnectFailures = 0
        var outageConnectionsLost = 0
        /// Envelope rows in the promoted standby's store at the end.
        var envelopesOnNewPrimary = 0
        /// `SharedDatabase.consistencyCheck` of the promoted standby.
        var consistency = ""
        var seconds = 0.0

        var passed: Bool {
            standbyState == "sync" && refusedSeconds >= 0 && lost == 0 && duplicated == 0 && unfinished == 0
                && acknowledged == consults && envelopesOnNewPrimary == delivered && consistency == "ok"
        }
    }

    private enum Finished: Sendable {
        case sender(Set<Int>)
        case failover(standbyState: String, acknowledgedBeforeKill: Int, killToPromoted: Duration, promotion: Duration)
    }

    func run(log: @Sendable (String) -> Void) async throws -> Report {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-failover-\(UUID())").path
        var relayProcesses: [RelayProcess] = []
        var clusters: [PostgresCluster] = []
        defer {
            for relay in relayProcesses { relay.kill() }
            for cluster in clusters { cluster.stop() }
            if keepDirectory { log("failover: relay data directories kept in \(directory)") }
            else { try? FileManager.default.removeItem(atPath: directory) }
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let start = ContinuousClock.now
        var report = Report(senders: senders, relays: relays, consults: consults)

        let primary = try SharedDatabase.startCluster(name: "primary")
        clusters.append(primary)
        let standby = try PostgresCluster.standby(of: primary, name: "standby")
        clusters.append(standby)
        try primary.requireSynchronousStandby("standby")
        log("failover: primary on 127.0.0.1:\(primary.port), synchronous standby on 127.0.0.1:\(standby.port)")

        relayProcesses = SharedDatabase.relays(
            relays,
            database: SharedDatabase.url([primary, standby]),
            executable: executable,
            directory: directory
        )
        let sinks = CrashRun.sinks(forEachSender: (consults + senders - 1) / senders)
        let (tls, accounts) = try await SharedDatabase.start(
            relayProcesses,
            accounts: (0..<senders).map { "failover.sender\($0)" } + sinks
        )
        let recipients = Array(accounts[senders...])

        var generator = SplitMix64(seed: seed)
        let threshold = Int.random(in: consults / 4...consults / 2, using: &generator)
        let delay = Int.random(in: 0...5_000, using: &generator)
        let tally = CrashRun.Tally(ports: relayProcesses.map(\.port))
        let deadline = ContinuousClock.now + timeLimit
        log(
            "failover: \(senders) senders, \(consults) consults through \(relays) relay processes; the primary dies "
                + "after \(threshold) are acknowledged, seed \(seed)"
        )

        var sent = Set<Int>()
        try await withThrowingTaskGroup(of: Finished.self) { [senders, consults, relays, backOff, promotionDelay] group in
            CrashRun.addSenders(
                senders,
                sending: consults,
                to: &group,
                accounts: accounts,
                recipients: recipients.map(\.0),
                relays: relays,
                tls: tls,
                tally: tally,
                backOff: backOff,
                deadline: deadline
            ) { .sender($0) }
            group.addTask {
                while await tally.acknowledged < threshold, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(1))
                }
                try await Task.sleep(for: .microseconds(delay))
                let state = try await blocking {
                    try primary.psql("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'")
                }
                let acknowledged = await tally.acknowledged
                await tally.watchForOutage()
                let killed = ContinuousClock.now
                try await blocking { try primary.killPostmaster() }
                try await Task.sleep(for: promotionDelay)
                let promoting = ContinuousClock.now
                try await blocking { try standby.promote() }
                return .failover(
                    standbyState: state,
                    acknowledgedBeforeKill: acknowledged,
                    killToPromoted: ContinuousClock.now - killed,
                    promotion: ContinuousClock.now - promoting
                )
            }
            for try await finished in group {
                switch finished {
                case .sender(let acknowledged):
                    sent.formUnion(acknowledged)
                case .failover(let state, let acknowledged, let killToPromoted, let promotion):
                    report.standbyState = state
                    report.acknowledgedBeforeKill = acknowledged
                    report.killToPromotedSeconds = killToPromoted.inSeconds
                    report.promotionSeconds = promotion.inSeconds
                    log(
                        "failover: primary killed after \(acknowledged) acknowledged (standby \(state)); standby promoted "
                            + "\(String(format: "%.3f", killToPromoted.inSeconds)) s later"
                    )
                }
            }
        }
        report.acknowledged = sent.count
        report.unfinished = consults - sent.count
        report.resends = await tally.resends
        report.resendsThroughAnotherRelay = await tally.resendsThroughAnotherRelay
        report.resendsAlreadyStored = await tally.resendsAlreadyStored
        let outage = await tally.outage
        report.refusedSeconds = outage.seconds ?? -1
        report.outageRetries = outage.retries
        report.outageRefusals = outage.refusals
        report.outageConnectFailures = outage.connectFailures
        report.outageConnectionsLost = outage.connectionsLost

        let seen = try await CrashRun.readBack(ports: relayProcesses.map(\.port), tls: tls, as: recipients)
        for relay in relayProcesses { try await relay.stopGracefully() }
        report.delivered = seen.count
        report.lost = sent.subtracting(seen.keys).count
        report.duplicated = seen.values.reduce(0) { $0 + max(0, $1 - 1) }
        report.unfinished = max(report.unfinished, Set(seen.keys).subtracting(sent).count)
        report.envelopesOnNewPrimary = try SharedDatabase.envelopeCount(standby)
        report.consistency = try SharedDatabase.consistencyCheck(standby)
        report.seconds = (ContinuousClock.now - start).inSeconds
        return report
    }
}
