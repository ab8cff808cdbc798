// `make reliability` and the fault tests of `make test`: runs that attack a live relay and count what was lost.
// Each prints its counts (human-readable on stderr, one JSON object on stdout) and exits 1 on any loss.

import ArgumentParser
import Foundation

@main
struct Faults: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curbside-faults",
        abstract: "Fault runs against a live relay, with counts of what was tried and what was lost.",
        subcommands: [Crash.self]
    )
}

struct Crash: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send consults while the relay is killed with SIGKILL and restarted; count what was lost."
    )

    @Option(help: "Concurrent senders.") var senders = 4
    @Option(help: "Consults in all.") var consults = 10_000
    @Option(help: "SIGKILLs of the relay, at random moments while consults are in flight.") var kills = 20
    @Option(help: "Seed of the kill schedule.") var seed: UInt64 = UInt64.random(in: 1...UInt64(UInt32.max))
    @Option(help: "Give up (and fail) after this many seconds.") var timeLimit = 900
    @Option(help: "The curbside executable that runs the relay.") var curbside: String
    @Flag(help: "Keep the relay's data directory (its path is printed).") var keep = false

    func validate() throws {
        guard senders > 0, consults > 0, kills >= 0 else { throw ValidationError("--senders and --consults must be positive, --kills not negative") }
        guard FileManager.default.isExecutableFile(atPath: curbside) else { throw ValidationError("--curbside \(curbside) is not an executable") }
    }

    func run() async throws {
        var crash = CrashRun(executable: curbside)
        crash.senders = senders
        crash.consults = consults
        crash.kills = kills
        crash.seed = seed
        crash.timeLimit = .seconds(timeLimit)
        crash.keepDirectory = keep
        let report = try await crash.run { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        let summary = """
            crash: \(report.consults) consults tried by \(report.senders) senders, \(report.kills) kills (SIGKILL), \
            \(String(format: "%.1f", report.seconds)) s
              acknowledged \(report.acknowledged), delivered \(report.delivered), lost \(report.lost), \
            duplicated \(report.duplicated), resends already stored \(report.resendsAlreadyStored)
              resends \(report.resends), refusals \(report.refusals), unfinished \(report.unfinished), \
            integrity checks \(report.integrityChecks) (\(report.integrityFailures.count) failed)
            crash: \(report.passed ? "PASS" : "FAIL")

            """
        FileHandle.standardError.write(Data(summary.utf8))
        for failure in report.integrityFailures { FileHandle.standardError.write(Data("integrity: \(failure)\n".utf8)) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
        if !report.passed { throw ExitCode(1) }
    }
}
