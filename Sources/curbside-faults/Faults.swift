// `make reliability` and the fault tests of `make test`: runs that attack a live relay and count what was lost.
// Each prints its counts (human-readable on stderr, one JSON object on stdout) and exits 1 on any loss.

import ArgumentParser
import Foundation

@main
struct Faults: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curbside-faults",
        abstract: "Fault runs against a live relay, with counts of what was tried and what was lost.",
        subcommands: [Crash.self, Failover.self, PowerCut.self, Abuse.self]
    )
}

/// The `curbside` executable each run starts its relays with.
struct RelayExecutable: ParsableArguments {
    @Option(help: "The curbside executable that runs the relay.") var curbside: String

    func validate() throws {
        guard FileManager.default.isExecutableFile(atPath: curbside) else { throw ValidationError("--curbside \(curbside) is not an executable") }
    }
}

/// A line of the run's human-readable account, on standard error.
@Sendable func logLine(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// The run's counts as one JSON object on standard output (what the tests read).
func printReport(_ report: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    print(String(decoding: try encoder.encode(report), as: UTF8.self))
}

struct Crash: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send consults while the relay is killed with SIGKILL and restarted; count what was lost.",
        discussion: """
            With --postgres, several relay processes (--relays) share one PostgreSQL database in a throw-away \
            cluster; the senders are spread over them, each kill takes one of them, and its senders resend through \
            another until it is back.
            """
    )

    @Option(help: "Concurrent senders.") var senders = 4
    @Option(help: "Consults in all.") var consults = 10_000
    @Option(help: "SIGKILLs of relay processes, at random moments while consults are in flight.") var kills = 20
    @Option(help: "Seed of the kill schedule.") var seed: UInt64 = UInt64.random(in: 1...UInt64(UInt32.max))
    @Option(help: "Give up (and fail) after this many seconds.") var timeLimit = 900
    @Flag(help: "Relay processes on one PostgreSQL database instead of one relay on SQLite.") var postgres = false
    @Option(help: "With --postgres: relay processes sharing the database.") var relays = 2
    @OptionGroup var relay: RelayExecutable
    @Flag(help: "Keep the relay's data directory (its path is printed).") var keep = false

    func validate() throws {
        guard senders > 0, consults > 0, kills >= 0 else { throw ValidationError("--senders and --consults must be positive, --kills not negative") }
        guard relays > 0 else { throw ValidationError("--relays must be positive") }
    }

    func run() async throws {
        var crash = CrashRun(executable: relay.curbside)
        crash.senders = senders
        crash.consults = consults
        crash.kills = kills
        crash.seed = seed
        crash.store = postgres ? .postgres(relays: relays) : .sqlite
        crash.timeLimit = .seconds(timeLimit)
        crash.keepDirectory = keep
        let report = try await crash.run(log: logLine)
        let summary = """
            crash: \(report.consults) consults tried by \(report.senders) senders, \(report.kills) kills (SIGKILL) of \
            \(report.relays) relay process(es) on \(report.store), \(String(format: "%.1f", report.seconds)) s
              acknowledged \(report.acknowledged), delivered \(report.delivered), lost \(report.lost), \
            duplicated \(report.duplicated), resends already stored \(report.resendsAlreadyStored)
              resends \(report.resends) (through another relay process \(report.resendsThroughAnotherRelay)), \
            refusals \(report.refusals), unfinished \(report.unfinished), \
            integrity checks \(report.integrityChecks) (\(report.integrityFailures.count) failed)
            crash: \(report.passed ? "PASS" : "FAIL")

            """
        FileHandle.standardError.write(Data(summary.utf8))
        for failure in report.integrityFailures { FileHandle.standardError.write(Data("integrity: \(failure)\n".utf8)) }
        try printReport(report)
        if !report.passed { throw ExitCode(1) }
    }
}

struct Failover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Kill the PostgreSQL primary under load and promote its synchronous standby; count what was lost.",
        discussion: """
            A primary and a synchronous standby on loopback (streaming replication), relay processes whose \
            database names both, senders that retry with back-off. Every consult acknowledged `stored` must be \
            delivered exactly once from the promoted standby; the report says how long sends were refused and \
            how many retries that cost.
            """
    )

    @Option(help: "Concurrent senders.") var senders = 4
    @Option(help: "Consults in all.") var consults = 10_000
    @Option(help: "Relay processes sharing the database.") var relays = 2
    @Option(help: "Milliseconds from the primary's death to the standby's promotion.") var promotionDelay = 0
    @Option(help: "Seed of the moment the primary is killed.") var seed: UInt64 = UInt64.random(in: 1...UInt64(UInt32.max))
    @Option(help: "Give up (and fail) after this many seconds.") var timeLimit = 900
    @OptionGroup var relay: RelayExecutable
    @Flag(help: "Keep the relays' data directories (their path is printed).") var keep = false

    func validate() throws {
        guard senders > 0, consults >= 4 * senders, relays > 0 else {
            throw ValidationError("--senders and --relays must be positive, and --consults at least four per sender")
        }
        guard promotionDelay >= 0 else { throw ValidationError("--promotion-delay must not be negative") }
    }

    func run() async throws {
        var failover = FailoverRun(executable: relay.curbside)
        failover.senders = senders
        failover.consults = consults
        failover.relays = relays
        failover.promotionDelay = .milliseconds(promotionDelay)
        failover.seed = seed
        failover.timeLimit = .seconds(timeLimit)
        failover.keepDirectory = keep
        let report = try await failover.run(log: logLine)
        let refusals = report.outageRefusals.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        let summary = """
            failover: \(report.consults) consults by \(report.senders) senders through \(report.relays) relay processes, \
            primary killed after \(report.acknowledgedBeforeKill) acknowledged (standby: \(report.standbyState)), \
            \(String(format: "%.1f", report.seconds)) s
              acknowledged \(report.acknowledged), delivered from the promoted standby \(report.delivered) \
            (\(report.envelopesOnNewPrimary) rows), lost \(report.lost), duplicated \(report.duplicated), \
            resends already stored \(report.resendsAlreadyStored), unfinished \(report.unfinished)
              kill to promoted \(String(format: "%.3f", report.killToPromotedSeconds)) s (pg_ctl promote \
            \(String(format: "%.3f", report.promotionSeconds)) s); sends refused for \
            \(String(format: "%.3f", report.refusedSeconds)) s (first failure to first `stored` after promotion)
              retries in that time \(report.outageRetries): error frames \(refusals.isEmpty ? "none" : refusals), \
            connections refused or not logged in \(report.outageConnectFailures), connections lost \(report.outageConnectionsLost)
              consistency of the promoted standby: \(report.consistency)
            failover: \(report.passed ? "PASS" : "FAIL")

            """
        FileHandle.standardError.write(Data(summary.utf8))
        try printReport(report)
        if !report.passed { throw ExitCode(1) }
    }
}

struct PowerCut: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "power-cut",
        abstract: "Cut the power (pause the relay, copy its ext4 loop disk) under load; check the copy lost nothing acknowledged.",
        discussion: "Needs root and loop devices; prints SKIPPED and exits 0 where they are unavailable."
    )

    @Option(help: "Concurrent senders.") var senders = 4
    @Option(help: "Seconds of load before the cut.") var seconds = 2
    @Flag(help: "Control run: the relay does not fsync, and the run passes only if it loses consults.") var control = false
    @OptionGroup var relay: RelayExecutable
    @Flag(help: "Keep the disk images (their path is printed).") var keep = false

    func validate() throws {
        guard senders > 0, seconds > 0 else { throw ValidationError("--senders and --seconds must be positive") }
    }

    func run() async throws {
        var cut = PowerCutRun(executable: relay.curbside)
        cut.senders = senders
        cut.loadDuration = .seconds(seconds)
        cut.control = control
        cut.keepDirectory = keep
        let report: PowerCutRun.Report
        do {
            report = try await cut.run(log: logLine)
        } catch let unavailable as PowerCutRun.Unavailable {
            FileHandle.standardError.write(Data("power cut: SKIPPED: \(unavailable)\n".utf8))
            print(#"{"skipped": true}"#)
            return
        }
        let verdict = report.passed ? "PASS" : "FAIL"
        let summary = """
            power cut\(report.control ? " (control: relay without fsync)" : ""): acknowledged before the cut \(report.acknowledgedBeforeCut), \
            found on the copy \(report.found), lost \(report.lost)
              e2fsck -f -y exit status \(report.fsckStatus), integrity \(report.integrity)\(report.note.isEmpty ? "" : ", \(report.note)")
            power cut: \(verdict)\(report.control ? (report.passed ? " (the control lost consults, so the test can see loss)" : " (the control lost nothing: the test cannot see loss)") : "")

            """
        FileHandle.standardError.write(Data(summary.utf8))
        try printReport(report)
        if !report.passed { throw ExitCode(1) }
    }
}

struct Abuse: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Random and mutated frames, slow-loris connections and a login brute force against a live relay."
    )

    @Option(help: "Abusive frames, each on its own connection (half before login, half after).") var frames = 10_000
    @Option(help: "Slow-loris connections (each waits out the relay's 30 s login timeout; 0 skips them).") var slowLoris = 24
    @Option(help: "Seed of the frames.") var seed: UInt64 = UInt64.random(in: 1...UInt64(UInt32.max))
    @OptionGroup var relay: RelayExecutable

    func validate() throws {
        guard frames >= 0, slowLoris >= 0, slowLoris <= 30 else {
            throw ValidationError("--frames must not be negative; --slow-loris at most 30 (the relay allows 32 connections per address)")
        }
    }

    func run() async throws {
        var abuse = AbuseRun(executable: relay.curbside)
        abuse.frames = frames
        abuse.slowLoris = slowLoris
        abuse.seed = seed
        let report = try await abuse.run(log: logLine)
        let codes = report.errorFrames.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
        let summary = """
            abuse: \(report.frames) frames tried: answered with an error \(report.answeredWithError) (codes \(codes)), \
            closed without an answer \(report.closedWithoutAnswer), answered normally \(report.answeredNormally), hung \(report.hung), \
            connections refused \(report.connectFailures)
              providers during the attack: \(report.providerRoundTrips) round trips, \(report.providerFailures) failed
              slow-loris: \(report.slowLorisOpened) opened, \(report.slowLorisClosedByRelay) closed by the relay
              login brute force: \(report.bruteForceAttempts) guesses, \(report.bruteForceRateLimited) rate-limited, \(report.bruteForceAccepted) accepted
              relay: \(report.relayAlive ? "up" : "DOWN"), RSS \(report.relayRSSBeforeKiB / 1024) -> \(report.relayRSSAfterKiB / 1024) MiB, \
            \(String(format: "%.0f", report.seconds)) s
            abuse: \(report.passed ? "PASS" : "FAIL")

            """
        FileHandle.standardError.write(Data(summary.utf8))
        try printReport(report)
        if !report.passed { throw ExitCode(1) }
    }
}

/// Runs `work` on a thread of its own and waits for it: the runs' blocking calls (waiting for a process, `pg_ctl`,
/// `psql`) would otherwise hold one of the few threads the senders' tasks run on.
func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}

extension Duration {
    /// In seconds, with the fraction.
    var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
