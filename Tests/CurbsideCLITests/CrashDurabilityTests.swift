import Foundation
import Testing

/// The short crash run of `make test` (`make reliability` runs the full one): the relay is killed with SIGKILL while
/// consults are in flight and restarted; nothing it acknowledged may be lost or stored twice.
@Suite("crash durability (short run)", .serialized)
struct CrashDurabilityTests {
    struct Report: Decodable {
        let consults: Int
        let acknowledged: Int
        let delivered: Int
        let lost: Int
        let duplicated: Int
        let kills: Int
        let integrityChecks: Int
        let integrityFailures: [String]
        let unfinished: Int
        let resends: Int
    }

    static var faults: URL { Executable.url.deletingLastPathComponent().appendingPathComponent("curbside-faults") }

    @Test func killedRelayLosesAndDuplicatesNothingItAcknowledged() throws {
        let process = Process()
        process.executableURL = Self.faults
        process.arguments = [
            "crash", "--senders", "4", "--consults", "2000", "--kills", "8", "--seed", "20261129",
            "--time-limit", "240", "--curbside", Executable.url.path,
        ]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        print(stderr)
        #expect(process.terminationStatus == 0, "\(stderr)")
        let report = try JSONDecoder().decode(Report.self, from: stdout)
        #expect(report.kills == 8)
        #expect(report.integrityChecks == 9)
        #expect(report.integrityFailures.isEmpty)
        #expect(report.acknowledged == 2000)
        #expect(report.unfinished == 0)
        #expect(report.lost == 0)
        #expect(report.duplicated == 0)
        #expect(report.delivered >= report.acknowledged)
        // The kills landed while consults were in flight: some had to be sent again.
        #expect(report.resends > 0)
    }
}
