import CurbsideTestSupport
import Foundation
import Synchronization
import Testing

/// Issue 17, items 8 and 9: what a person setting up or mistyping sees. Every error is one sentence of what
/// happened and a `hint:` line of what to do, with no library type names; `init` checks what it can before it asks
/// for a passphrase twice, and asks again after a typo.
@Suite("setting up, and errors in people's words", .serialized)
struct SetupAndErrorWordsTests {
    static let libraryWords = ["NIO", "SingleConnectionFailure", "NSCocoaErrorDomain", "Code=", "Error(", "IOError"]

    func base() throws -> String { try Executable.scratchDirectory("words") }

    func expectPeopleWords(_ stderr: String, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        let lines = stderr.split(separator: "\n")
        #expect(lines.count == 2 && lines[0].hasPrefix("curbside: error: ") && lines[1].hasPrefix("curbside: hint: "), "\(stderr)", sourceLocation: sourceLocation)
        for word in Self.libraryWords {
            #expect(!stderr.contains(word), "\(word) in: \(stderr)", sourceLocation: sourceLocation)
        }
    }

    @Test func initChecksTheCodeAndTheRelayBeforeMakingAProfile() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        try await withStopping(try RelayProcess(base: base)) { relay in
            try await relay.start()
            let home = "\(base)/gp"
            func initialise(relay address: String, fingerprint: String, code: String) throws -> (status: Int32, stdout: String, stderr: String) {
                try Executable.run(
                    ["init", "--handle", "amara.gp", "--relay", address, "--relay-fingerprint", fingerprint, "--code", code, "--home", home],
                    environment: ProviderCommandTests.environment
                )
            }
            let code = try relay.enroll("amara.gp")
            let here = "127.0.0.1:\(relay.port)"

            let malformed = try initialise(relay: here, fingerprint: relay.fingerprint, code: "ABCD-EFGH")
            #expect(malformed.status == 64)
            expectPeopleWords(malformed.stderr)
            #expect(malformed.stderr.contains("enrollment code must be 20 characters") && malformed.stderr.contains("expire after 7 days"))

            let nobody = try initialise(relay: "127.0.0.1:\(try LoopbackPort.free())", fingerprint: relay.fingerprint, code: code)
            #expect(nobody.status == 69)
            expectPeopleWords(nobody.stderr)
            #expect(nobody.stderr.contains("connection refused") && nobody.stderr.contains("no profile was created"))
            #expect(!nobody.stderr.contains("outbox"), "nothing is queued while setting up")

            let otherKey = String(repeating: "ab", count: 32)
            let impostor = try initialise(relay: here, fingerprint: otherKey, code: code)
            #expect(impostor.status == 69)
            expectPeopleWords(impostor.stderr)
            #expect(impostor.stderr.contains("did not present the pinned certificate key") && impostor.stderr.contains("--relay-fingerprint"))

            // None of them made a profile or spent the code.
            #expect(!FileManager.default.fileExists(atPath: "\(home)/identity.json"))
            let created = try initialise(relay: here, fingerprint: relay.fingerprint, code: code)
            #expect(created.status == 0, "\(created.stderr)")

            // A code used once is refused by the relay, with what to check, before any passphrase is asked for: with
            // no CURBSIDE_PASSPHRASE and no terminal, asking would have failed with "no passphrase".
            let reused = try Executable.run(
                ["init", "--handle", "amara.gp", "--relay", here, "--relay-fingerprint", relay.fingerprint, "--code", code, "--home", "\(base)/again"]
            )
            #expect(reused.status == 76)
            expectPeopleWords(reused.stderr)
            #expect(reused.stderr.contains("does not accept this enrollment code") && reused.stderr.contains("single-use"), "\(reused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: "\(base)/again/identity.json"))
        }
    }

    /// A typo in the second passphrase, or one that is too short, is asked for again on the terminal; the profile
    /// is made with the passphrase typed twice alike. (`script` gives the command a terminal.)
    @Test func aMistypedPassphraseIsAskedForAgain() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        try await withStopping(try RelayProcess(base: base)) { relay in
            try await relay.start()
            let home = "\(base)/gp"
            let command = [
                Executable.url.path, "init", "--handle", "amara.gp", "--relay", "127.0.0.1:\(relay.port)",
                "--relay-fingerprint", relay.fingerprint, "--code", try relay.enroll("amara.gp"), "--home", home,
            ].map { "'\($0)'" }.joined(separator: " ")
            let script = Process()
            script.executableURL = URL(fileURLWithPath: "/usr/bin/script")
            script.arguments = ["-qec", "env -u CURBSIDE_PASSPHRASE \(command)", "/dev/null"]
            let input = Pipe(), output = Pipe()
            script.standardInput = input
            script.standardOutput = output
            script.standardError = output
            let printedSoFar = Mutex("")
            output.fileHandleForReading.readabilityHandler = { handle in
                let data = handle.availableData
                printedSoFar.withLock { $0 += String(decoding: data, as: UTF8.self) }
            }
            try script.run()
            // Each line is typed once its prompt is on the screen: the terminal discards what is typed ahead of a
            // passphrase prompt.
            let typing: [(prompt: String, count: Int, line: String)] = [
                ("New passphrase for amara.gp: ", 1, "short"),
                ("New passphrase for amara.gp: ", 2, "long enough one"), ("Again: ", 1, "long enough 0ne"),
                ("New passphrase for amara.gp: ", 3, "long enough two"), ("Again: ", 2, "long enough two"),
            ]
            for step in typing {
                let deadline = ContinuousClock.now + .seconds(60)
                while printedSoFar.withLock({ $0.components(separatedBy: step.prompt).count - 1 }) < step.count, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                input.fileHandleForWriting.write(Data((step.line + "\n").utf8))
            }
            while script.isRunning { try await Task.sleep(for: .milliseconds(20)) }
            output.fileHandleForReading.readabilityHandler = nil
            try? input.fileHandleForWriting.close()
            let printed = printedSoFar.withLock { $0 }
            #expect(script.terminationStatus == 0, "\(printed)")
            #expect(printed.contains("shorter than 8 characters; try again"))
            #expect(printed.contains("The two passphrases differ; try again"))
            #expect(!printed.contains("long enough"), "a passphrase was echoed")
            // The profile opens with the passphrase typed twice alike, and not with the mistyped one.
            let opened = try Executable.run(["whoami", "--home", home], environment: ["CURBSIDE_PASSPHRASE": "long enough two"])
            #expect(opened.status == 0, "\(opened.stderr)")
            let wrong = try Executable.run(["whoami", "--home", home], environment: ["CURBSIDE_PASSPHRASE": "long enough one"])
            #expect(wrong.status == 77)
        }
    }

    @Test func aDirectoryOrAMissingFileAsAnImageIsSaidPlainly() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, _) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { _ in
            func send(image: String) throws -> (status: Int32, stdout: String, stderr: String) {
                try Executable.run(
                    ["send", "osei.derm", "--subject", "Rash", "--question", "What is it?", "--image", image, "--home", gp],
                    environment: ProviderCommandTests.environment
                )
            }
            let directory = try send(image: base)
            #expect(directory.status == 64)
            expectPeopleWords(directory.stderr)
            #expect(directory.stderr.contains("is a directory, not a file"))
            let missing = try send(image: "\(base)/no-such.jpg")
            #expect(missing.status == 64)
            expectPeopleWords(missing.stderr)
            #expect(missing.stderr.contains("cannot read \(base)/no-such.jpg: No such file or directory"))
        }
    }
}
