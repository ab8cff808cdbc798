import ArgumentParser
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
