import CurbsideTestSupport
import Foundation
import GRDB
import Testing

@testable import CurbsideCLI

/// The CLI tests' relays: CurbsideTestSupport's RelayProcess running the `curbside` built with them.
extension RelayProcess {
    /// A relay initialised with its data in `base/relay`.
    convenience init(base: String) throws {
        self.init(executable: Executable.url.path, dataDirectory: "\(base)/relay")
        try initialise()
    }

    var data: String { dataDirectory }

    /// A serving relay under `base`, with amara.gp and osei.derm set up in `base/gp` and `base/derm`.
    static func startWithGPAndDerm(base: String) async throws -> (relay: RelayProcess, gp: String, derm: String) {
        let relay = try RelayProcess(base: base)
        try await relay.start()
        let gp = "\(base)/gp", derm = "\(base)/derm"
        do {
            for (home, handle) in [(gp, "amara.gp"), (derm, "osei.derm")] { try relay.createProvider(handle, home: home) }
        } catch {
            await relay.stop()
            throw error
        }
        return (relay, gp, derm)
    }

    /// Enrolls `handle` and runs `curbside init` for it in `home`, as a provider would with the operator's code.
    func createProvider(_ handle: String, home: String) throws {
        let created = try Executable.run(
            [
                "init", "--handle", handle, "--relay", "127.0.0.1:\(port)", "--relay-fingerprint", fingerprint,
                "--code", try enroll(handle), "--home", home,
            ],
            environment: ProviderCommandTests.environment
        )
        #expect(created.status == 0, "\(created.stderr)")
    }
}

/// The provider commands as a person uses them: separate processes, separate homes.
@Suite("curbside provider commands", .serialized)
struct ProviderCommandTests {
    static let environment = ["CURBSIDE_PASSPHRASE": "correct horse battery staple"]

    func curbside(_ arguments: String..., home: String, environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        try Executable.provider(arguments, home: home, environment: environment)
    }

    func base() throws -> String { try Executable.scratchDirectory("e2e") }

    /// `make demo`'s script: relay, two providers, consult, show, reply, and the sender's status with every step.
    @Test func theDemoScriptRunsEveryStep() throws {
        let demo = Process()
        demo.executableURL = URL(fileURLWithPath: "/bin/sh")
        demo.arguments = [Repository.root.appendingPathComponent("scripts/demo.sh").path]
        demo.environment = ProcessInfo.processInfo.environment.merging(["CURBSIDE": Executable.url.path]) { $1 }
        let out = Pipe()
        demo.standardOutput = out
        demo.standardError = out
        try demo.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        demo.waitUntilExit()
        #expect(demo.terminationStatus == 0, "\(text)")
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        for step in ["stored", "delivered to device", "delivered", "read", "answered"] {
            let line = lines.first { $0.hasPrefix(step + "  ") }
            #expect(line?.contains(#/  20\d\d-\d\d-\d\dT/#) == true, "\(step) has a time: \(line ?? "missing")")
        }
        #expect(text.contains(/time to answer +\d/))
        // The answer is listed under its consult's subject.
        #expect(text.contains(/reply   from osei.derm  re: .+ — Features suggest a dysplastic naevus/), "\(text)")
    }

    /// Issue 14.2: a consult sealed to a key the dermatologist's profile no longer holds. On main `inbox` said
    /// "nothing received yet" and the GP's status showed it delivered to the device.
    @Test func aConsultThatCannotBeOpenedIsReportedOnBothSides() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { relay in
            let sent = try curbside("send", "osei.derm", "--subject", "Retinal photo", "--question", "Refer?", home: gp)
            #expect(sent.status == 0, "\(sent.stderr)")
            let id = try #require(sent.stdout.firstMatch(of: /[0-9a-f]{32}/)).output
            // The dermatologist's private prekeys are gone (an old copy of the profile restored, say).
            let profile = try DatabaseQueue(path: "\(derm)/profile.sqlite")
            try await profile.write { db in try db.execute(sql: "DELETE FROM prekey") }
            try profile.close()

            let inbox = try curbside("inbox", home: derm)
            #expect(inbox.status == 0, "\(inbox.stderr)")
            #expect(inbox.stdout.contains("1 message from amara.gp could not be opened — ask them to send it again"), "\(inbox.stdout)")
            #expect(!inbox.stdout.contains("nothing received yet"))
            // Reported once; the JSON form keeps listing it.
            #expect(!(try curbside("inbox", home: derm).stdout.contains("could not be opened")))
            #expect(try curbside("inbox", "--json", home: derm).stdout.contains("unknown_prekey"))

            let status = try curbside("status", String(id), home: gp)
            #expect(status.status == 0, "\(status.stderr)")
            #expect(status.stdout.contains("delivered to device  —"), "\(status.stdout)")
            #expect(status.stdout.contains(/failed +20\d\d-.*rejected: osei.derm's device could not open it \(undecryptable\)/), "\(status.stdout)")
        }
    }

    /// The relay is down while the GP sends: the consult is queued (exit 75, said so), and goes out with the same id
    /// when the relay is back; the dermatologist reads it and the GP's status shows delivered and read.
    @Test func aConsultSentWhileTheRelayIsDownArrivesWhenItIsBack() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { relay in
            await relay.stop()

            let queued = try curbside("send", "osei.derm", "--subject", "Retinal photo", "--question", "Refer?", "--json", home: gp)
            #expect(queued.status == ExitStatus.queued, "\(queued.stderr)")
            let outcome = try JSONSerialization.jsonObject(with: Data(queued.stdout.utf8)) as? [String: Any]
            #expect(outcome?["stored"] as? Bool == false)
            let id = try #require(outcome?["id"] as? String)
            let offline = try curbside("sync", home: gp)
            #expect(offline.status == ExitStatus.network)
            #expect(offline.stderr.hasPrefix("curbside: error: cannot reach the relay"))
            #expect(offline.stderr.contains("curbside: hint: "))

            try await relay.start()
            #expect(try curbside("sync", home: gp).status == 0)
            let inbox = try curbside("inbox", "--json", home: derm)
            #expect(inbox.stdout.contains(id))
            #expect(try curbside("show", id, home: derm).stdout.contains("Retinal photo"))
            let status = try curbside("status", id, "--json", home: gp)
            let statuses = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [[String: Any]]
            #expect(statuses?.first?["delivered"] as? Int != nil)
            #expect(statuses?.first?["read"] as? Int != nil)
        }
    }

    /// Bad input from the command line: each a clear message and its exit status.
    @Test func badInputGetsItsMessageAndExitStatus() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let relay = try RelayProcess(base: base)
        try await relay.start()
        try await withStopping(relay) { relay in
            let gp = "\(base)/gp"
            let wrongPin = try curbside(
                "init", "--handle", "amara.gp", "--relay", "127.0.0.1:\(relay.port)", "--relay-fingerprint", String(repeating: "0", count: 64),
                "--code", try relay.enroll("amara.gp"), home: gp
            )
            #expect(wrongPin.status == ExitStatus.network)
            #expect(wrongPin.stderr.contains("did not present the pinned certificate key"))
            let created = try curbside(
                "init", "--handle", "amara.gp", "--relay", "127.0.0.1:\(relay.port)", "--relay-fingerprint", relay.fingerprint,
                "--code", try relay.enroll("amara.gp"), home: gp
            )
            #expect(created.status == 0, "\(created.stderr)")

            let wrongPassphrase = try curbside("whoami", home: gp, environment: ["CURBSIDE_PASSPHRASE": "not it at all"])
            #expect(wrongPassphrase.status == ExitStatus.profile)
            #expect(wrongPassphrase.stderr.hasPrefix("curbside: error: the passphrase does not open this profile"))

            let unknown = try curbside("send", "nobody.here", "--subject", "s", "--question", "q", home: gp)
            #expect(unknown.status == ExitStatus.usage)
            #expect(unknown.stderr.contains("nobody.here is not registered"))

            let badID = try curbside("show", "abc", home: gp)
            #expect(badID.status == ExitStatus.usage && badID.stderr.contains("is not a message id"))
            let noProfile = try curbside("whoami", home: "\(base)/nobody")
            #expect(noProfile.status == ExitStatus.usage && noProfile.stderr.contains("there is no Curbside profile"))
            let whoami = try curbside("whoami", "--json", home: gp)
            #expect((try JSONSerialization.jsonObject(with: Data(whoami.stdout.utf8)) as? [String: Any])?["handle"] as? String == "amara.gp")
            #expect(try Executable.run(["--help"]).stdout.contains("65 trust"))
        }
    }
}

extension ProviderCommandTests {
    /// `show` needs no relay: with the relay stopped it prints a consult already received and exits 0; its read
    /// receipt waits in the outbox and `sync` sends it once the relay is back.
    @Test func showWorksWithTheRelayStopped() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { relay in
            let sent = try curbside("send", "osei.derm", "--subject", "Retinal photo", "--question", "Refer?", home: gp)
            #expect(sent.status == 0, "\(sent.stderr)")
            let id = sent.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try curbside("inbox", home: derm).stdout.contains(id))
            await relay.stop()

            let shown = try curbside("show", id, home: derm)
            #expect(shown.status == 0, "\(shown.stderr)")
            #expect(shown.stdout.contains("subject      Retinal photo") && shown.stderr.isEmpty)
            try await relay.start()
            #expect(try curbside("sync", home: derm).status == 0)
            let status = try curbside("status", id, "--json", home: gp)
            let statuses = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [[String: Any]]
            #expect(statuses?.first?["read"] as? Int != nil)
        }
    }
}
