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
        let binary = URL(fileURLWithPath: CommandLine.arguments[0])
        var directory = binary.deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("curbside").path),
            directory.pathComponents.count > 1
        {
            directory.deleteLastPathComponent()
        }
        let executable = directory.appendingPathComponent("curbside")
        try #require(FileManager.default.isExecutableFile(atPath: executable.path), "curbside executable not built")
        for (arguments, expected) in [(["--version"], "curbside \(Curbside.version)"), (["demo"], "done ")] {
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            #expect(output.contains(expected), "\(arguments): \(output)")
        }
    }
}
