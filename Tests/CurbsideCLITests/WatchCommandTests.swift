import CurbsideTestSupport
import Foundation
import Testing

@testable import CurbsideCLI

/// Issue 17, item 6: `watch` prints each arrival as its inbox line, an emergency in red on a terminal (never with
/// NO_COLOR), and its JSON events carry the message's fields; receipts sent on the user's behalf are not reported.
@Suite("curbside watch", .serialized)
struct WatchCommandTests {
    func curbside(_ arguments: String..., home: String) throws -> (status: Int32, stdout: String, stderr: String) {
        try Executable.run(arguments + ["--home", home], environment: ProviderCommandTests.environment)
    }

    func send(_ subject: String, urgency: String, from gp: String) throws -> String {
        let sent = try curbside("send", "osei.derm", "--subject", subject, "--question", "Advice?", "--urgency", urgency, home: gp)
        #expect(sent.status == 0, "\(sent.stderr)")
        return String(try #require(sent.stdout.firstMatch(of: /[0-9a-f]{32}/)).output)
    }

    func object(_ line: String?, _ watch: WatchProcess, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let line = try #require(line, "the watcher printed nothing that matched: \(watch.seen)", sourceLocation: sourceLocation)
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
    }

    @Test func jsonEventsCarryFieldsAndAutomaticReceiptsAreNotReported() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-watch-\(UUID())").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { _ in
            let dermWatch = try WatchProcess(["--json", "--home", derm], environment: ProviderCommandTests.environment)
            let gpWatch = try WatchProcess(["--json", "--home", gp], environment: ProviderCommandTests.environment)
            _ = try object(await dermWatch.next { $0.contains(#""event":"connected""#) }, dermWatch)
            _ = try object(await gpWatch.next { $0.contains(#""event":"connected""#) }, gpWatch)

            let first = try send("Anaphylaxis after penicillin?", urgency: "emergency", from: gp)
            let received = try object(await dermWatch.next { $0.contains(#""event":"received""#) }, dermWatch)
            #expect(received["id"] as? String == first)
            #expect(received["peer"] as? String == "amara.gp")
            #expect(received["kind"] as? String == "consult")
            #expect(received["urgency"] as? String == "emergency")
            #expect(received["title"] as? String == "Anaphylaxis after penicillin?")
            #expect(received["unread"] as? Bool == true)
            #expect(received["detail"] == nil, "fields, not prose")

            // The GP's watch: its consult left the outbox, then the derm's device saved it (a receipt).
            let sent = try object(await gpWatch.next { $0.contains(#""event":"sent""#) }, gpWatch)
            #expect(sent["id"] as? String == first && sent["peer"] as? String == "osei.derm")
            let delivered = try object(await gpWatch.next { $0.contains(#""step":"delivered""#) }, gpWatch)
            #expect(delivered["event"] as? String == "receipt" && delivered["id"] as? String == first)

            // A second consult: whatever the derm's watch printed between the two arrivals, its automatic
            // delivered receipt for the first was not reported as something sent.
            let second = try send("Routine mole check", urgency: "routine", from: gp)
            let secondArrival = try object(await dermWatch.next { $0.contains(#""event":"received""#) }, dermWatch)
            #expect(secondArrival["id"] as? String == second && secondArrival["urgency"] as? String == "routine")
            #expect(!dermWatch.seen.contains { $0.contains(#""event":"sent""#) }, "\(dermWatch.seen)")

            // Read on the derm's side: the GP's watch reports the read step of that consult.
            #expect(try curbside("show", first, home: derm).status == 0)
            let read = try object(await gpWatch.next { $0.contains(#""step":"read""#) }, gpWatch)
            #expect(read["event"] as? String == "receipt" && read["id"] as? String == first)
            #expect(read["title"] as? String == "Anaphylaxis after penicillin?")
            #expect(dermWatch.interrupt() == 0)
            #expect(gpWatch.interrupt() == 0)
        }
    }

    @Test func anArrivalIsItsInboxLineAndAnEmergencyStandsOut() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-watch-\(UUID())").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { _ in
            let red = "\u{1B}[1;31m"
            // CLICOLOR_FORCE stands in for a terminal (standard output is a pipe here). `swift test` runs the tests with
            // NO_COLOR set, which would win; an empty NO_COLOR counts as unset (no-color.org).
            let coloured = try WatchProcess(
                ["--home", derm],
                environment: ProviderCommandTests.environment.merging(["CLICOLOR_FORCE": "1", "NO_COLOR": ""]) { $1 }
            )
            let connected = await coloured.next { $0.contains("connected") }
            #expect(connected != nil)
            let emergency = try send("Anaphylaxis after penicillin?", urgency: "emergency", from: gp)
            let line = try #require(await coloured.next { $0.contains(emergency) })
            #expect(line.hasPrefix(red + "* \(emergency)  20"), "\(line.debugDescription)")
            #expect(line.contains("consult from amara.gp  [EMERGENCY]  Anaphylaxis after penicillin?"))
            let routine = try send("Routine mole check", urgency: "routine", from: gp)
            let plain = try #require(await coloured.next { $0.contains(routine) })
            #expect(!plain.contains("\u{1B}") && plain.contains("[routine]  Routine mole check"), "\(plain.debugDescription)")
            // The inbox prints the same line; to a pipe, without CLICOLOR_FORCE, an emergency is not coloured.
            let inbox = try curbside("inbox", home: derm).stdout
            #expect(inbox.contains(plain))
            #expect(inbox.contains("* \(emergency)  ") && inbox.contains("[EMERGENCY]") && !inbox.contains("\u{1B}"), "\(inbox.debugDescription)")
            #expect(coloured.interrupt() == 0)

            let noColour = try WatchProcess(
                ["--home", derm],
                environment: ProviderCommandTests.environment.merging(["CLICOLOR_FORCE": "1", "NO_COLOR": "1"]) { $1 }
            )
            let reconnected = await noColour.next { $0.contains("connected") }
            #expect(reconnected != nil)
            let another = try send("Angioedema", urgency: "emergency", from: gp)
            let uncoloured = try #require(await noColour.next { $0.contains(another) })
            #expect(!uncoloured.contains("\u{1B}") && uncoloured.contains("[EMERGENCY]  Angioedema"), "\(uncoloured.debugDescription)")
            #expect(noColour.interrupt() == 0)
        }
    }
}
