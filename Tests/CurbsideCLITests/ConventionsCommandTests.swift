import ArgumentParser
import CurbsideTestSupport
import Foundation
import Testing

@testable import CurbsideCLI

/// Issue 17, item 11: examples in the help of the commands people type most, shell completion, and errors as JSON
/// when the output is JSON.
@Suite("command-line conventions")
struct ConventionsCommandTests {
    @Test(arguments: [["send"], ["reply"], ["show"], ["contacts", "verify"], ["relay", "init"]])
    func helpShowsExamples(_ command: [String]) throws {
        let help = try Executable.run(command + ["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("Example"), "\(command): \(help.stdout)")
        // Each example is the command itself, as typed.
        #expect(help.stdout.contains("curbside \(command.joined(separator: " ")) "), "\(command)")
    }

    @Test func completionScriptsLoadAndNameTheCommands() throws {
        for shell in ["bash", "zsh", "fish"] {
            let script = try Executable.run(["completion", shell])
            #expect(script.status == 0, "\(shell): \(script.stderr)")
            for word in ["send", "inbox", "contacts", "urgency", "save-dir"] {
                #expect(script.stdout.contains(word), "\(shell) completion lacks \(word)")
            }
        }
        // bash loads it and registers the completion for `curbside`.
        let bash = Process()
        bash.executableURL = URL(fileURLWithPath: "/bin/bash")
        bash.arguments = ["-c", "source <('\(Executable.url.path)' completion bash) && complete -p curbside"]
        let out = Pipe()
        bash.standardOutput = out
        try bash.run()
        let registered = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        bash.waitUntilExit()
        #expect(bash.terminationStatus == 0 && registered.contains("_curbside curbside"), "\(registered)")
        let unknown = try Executable.run(["completion", "tcsh"])
        #expect(unknown.status == 64)
    }

    @Test func errorsAreOneJSONObjectOnStandardErrorWithJSON() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-none-\(UUID())").path
        let failed = try Executable.run(["inbox", "--home", home, "--json"], environment: ["CURBSIDE_PASSPHRASE": "whatever it is"])
        #expect(failed.status == 64 && failed.stdout.isEmpty)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(failed.stderr.utf8)) as? [String: Any])
        let error = try #require(object["error"] as? [String: Any])
        #expect(error["code"] as? String == "no_profile" && error["category"] as? String == "usage")
        #expect((error["message"] as? String)?.contains(home) == true && error["hint"] is String)

        let text = try Executable.run(["inbox", "--home", home], environment: ["CURBSIDE_PASSPHRASE": "whatever it is"])
        #expect(text.status == 64 && text.stderr.hasPrefix("curbside: error: there is no Curbside profile"))

        // A command line that does not parse is a usage error, as JSON too.
        let unparsed = try Executable.run(["inbox", "--no-such-option", "--json"])
        #expect(unparsed.status == 64)
        let usage = try #require(try JSONSerialization.jsonObject(with: Data(unparsed.stderr.utf8)) as? [String: Any])
        #expect((usage["error"] as? [String: Any])?["code"] as? String == "usage")
        #expect(((usage["error"] as? [String: Any])?["message"] as? String)?.contains("--no-such-option") == true)
    }

    /// Every command that has `--json` also reports its errors as JSON: a command added later cannot forget it.
    @Test func everyCommandWithJSONReportsErrorsAsJSON() {
        func leaves(_ command: any ParsableCommand.Type) -> [any ParsableCommand.Type] {
            let children = command.configuration.subcommands
            return children.isEmpty ? [command] : children.flatMap(leaves)
        }
        let withJSON = leaves(Curbside.self).filter { Curbside.helpMessage(for: $0).contains("--json") }
        #expect(withJSON.count >= 12)
        for command in withJSON {
            #expect(command is any JSONReportingCommand.Type, "\(command) has --json but reports errors as text")
        }
    }
}

extension ConventionsCommandTests {
    /// Every time in --json is there twice: milliseconds, and RFC 3339 text beside it (the expected texts are GNU
    /// date's: `date -u -d @1796440195.123 +%FT%T.%3NZ`).
    @Test func timesCarryRFC3339TextBesideMilliseconds() throws {
        struct Sample: Encodable {
            let createdAt: UInt64
            let at: UInt64
            let delivered: UInt64?
            let read: Bool
            let size: UInt64
            let nested: [Step]
        }
        struct Step: Encodable {
            let at: UInt64
            let expiresAt: UInt64
        }
        let sample = Sample(
            createdAt: 1_796_440_195_123, at: 1_767_225_600_007, delivered: nil, read: true, size: 2_000_000_000_000,
            nested: [Step(at: 0, expiresAt: 4_102_444_799_999)]
        )
        let object = try #require(try JSONSerialization.jsonObject(with: try CLIJSON.data(sample)) as? [String: Any])
        #expect(object["created_at"] as? Int == 1_796_440_195_123)
        #expect(object["created_at_rfc3339"] as? String == "2026-12-05T03:09:55.123Z")
        #expect(object["at_rfc3339"] as? String == "2026-01-01T00:00:00.007Z")
        // Not times: an absent one, a flag named like a step, a large number that is a size.
        #expect(object["delivered_rfc3339"] == nil && object["read_rfc3339"] == nil && object["size_rfc3339"] == nil)
        let step = try #require((object["nested"] as? [[String: Any]])?.first)
        #expect(step["expires_at_rfc3339"] as? String == "2099-12-31T23:59:59.999Z")
        #expect(step["at_rfc3339"] == nil, "0 is no time")
    }
}

extension ConventionsCommandTests {
    /// Through the binary: a sent consult's status carries each time as milliseconds and as RFC 3339 text.
    @Test func statusJSONCarriesBothFormsOfEachTime() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-times-\(UUID())").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, _) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { _ in
            let environment = ProviderCommandTests.environment
            let sent = try Executable.run(["send", "osei.derm", "--subject", "Rash", "--question", "What is it?", "--home", gp], environment: environment)
            #expect(sent.status == 0, "\(sent.stderr)")
            let status = try Executable.run(["status", "--json", "--home", gp], environment: environment)
            let entries = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [[String: Any]], "\(status.stdout)")
            let entry = try #require(entries.first)
            let summary = try #require(entry["summary"] as? [String: Any])
            let created = try #require((summary["created_at"] as? NSNumber)?.int64Value)
            #expect(summary["created_at_rfc3339"] as? String == CLIJSON.rfc3339(created))
            let stored = try #require((entry["stored"] as? NSNumber)?.int64Value)
            #expect(entry["stored_rfc3339"] as? String == CLIJSON.rfc3339(stored))
            for step in try #require(entry["timeline"] as? [[String: Any]]) {
                #expect((step["at_rfc3339"] as? String)?.hasPrefix("20") == true, "\(step)")
            }
        }
    }
}
