import ArgumentParser
import Foundation
import Testing

@testable import CurbsideCLI

@Suite("curbside command")
struct CLITests {
    @Test func helpNamesTheCommandsAndVersionNamesTheLibraries() {
        let help = Curbside.helpMessage()
        #expect(help.contains("USAGE: curbside <subcommand>"))
        #expect(help.contains("demo"))
        #expect(help.contains("relay"))
        #expect(help.contains("--version"))
        let version = Curbside.configuration.version
        #expect(version.hasPrefix("curbside \(Curbside.version) (libsodium 1."))
        #expect(version.contains("OpenSSL 3."))
    }

    @Test func parsesDemoAndRefusesUnknownCommands() throws {
        #expect(try Curbside.parseAsRoot(["demo"]) is Curbside.Demo)
        #expect(throws: (any Error).self) { try Curbside.parseAsRoot(["no-such-command"]) }
    }

    @Test func demoRunsEveryStep() throws {
        let lines = try DemoScript.run()
        let text = lines.joined(separator: "\n")
        for step in ["identities", "safety number", "bundle", "sealed", "opened", "replay", "receipt", "answer", "done"] {
            #expect(lines.contains { $0.hasPrefix(step) }, "missing step \(step)")
        }
        #expect(text.contains("replay       refused: unknown prekey"))
        #expect(text.contains("receipt      delivered"))
        #expect(!text.contains("must not happen"))
    }

    /// The built executable answers --version and runs the demo, as `make demo` does.
    @Test func executableRunsTheDemo() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Executable.url.path), "curbside executable not built")
        for (arguments, expected) in [(["--version"], "curbside \(Curbside.version)"), (["demo"], "done ")] {
            let result = try Executable.run(arguments)
            #expect(result.status == 0)
            #expect(result.stdout.contains(expected), "\(arguments): \(result.stdout)")
        }
    }
}
