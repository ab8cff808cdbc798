import CurbsideTestSupport
import CurbsideWire
import Foundation
import GRDB
import Testing

@testable import CurbsideCLI

/// The outbox as a clinician meets it (issue 17, items 1 and 2): a send the relay cannot take yet exits 75 with only
/// its id on standard output, `curbside outbox` lists what waits, `outbox cancel` withdraws it for good, Ctrl-C
/// during an upload cancels the consult so that no later command delivers it, and commands that flush the outbox say
/// what they sent.
@Suite("curbside outbox, cancel and Ctrl-C", .serialized)
struct OutboxCommandTests {
    func curbside(_ arguments: String..., home: String) throws -> (status: Int32, stdout: String, stderr: String) {
        try Executable.provider(arguments, home: home)
    }

    func base() throws -> String { try Executable.scratchDirectory("outbox") }

    func json(_ text: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(text.utf8)) }

    /// Two consults queued while the relay is down; the wrong one is cancelled from the outbox; when the relay is back
    /// the next ordinary `inbox` sends the other one only, and says so.
    @Test func aQueuedConsultIsListedAndCancelledAndNeverDelivered() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { relay in
            await relay.stop()
            let photo = "\(base)/forearm.jpg"
            try Data(SamplePhoto.jpeg()).write(to: URL(fileURLWithPath: photo))

            // Item 2: only the id on stdout; "queued, not yet stored" on stderr with its own exit status.
            let wrong = try curbside(
                "send",
                "osei.derm",
                "--subject",
                "WRONG PATIENT",
                "--question",
                "Excise?",
                "--image",
                photo,
                home: gp
            )
            #expect(wrong.status == ExitStatus.queued, "\(wrong.stderr)")
            let wrongID = wrong.stdout.trimmingCharacters(in: .newlines)
            #expect(
                wrongID.wholeMatch(of: /[0-9a-f]{32}/) != nil && wrong.stdout == wrongID + "\n",
                "stdout: \(wrong.stdout)"
            )
            #expect(
                wrong.stderr.contains("curbside: queued, not yet stored: cannot reach the relay"),
                "\(wrong.stderr)"
            )
            #expect(
                wrong.stderr.contains("curbside: hint: it waits in the outbox; ")
                    && wrong.stderr.contains("`curbside outbox cancel \(wrongID)`")
            )
            let right = try curbside(
                "send",
                "osei.derm",
                "--subject",
                "Right patient",
                "--question",
                "Excise?",
                "--json",
                home: gp
            )
            #expect(right.status == ExitStatus.queued)
            let rightID = try #require((try json(right.stdout) as? [String: Any])?["id"] as? String)
            #expect((try json(right.stdout) as? [String: Any])?["stored"] as? Bool == false)
            #expect(try Executable.run(["--help"]).stdout.contains("75 queued"))

            let listed = try curbside("outbox", home: gp)
            #expect(listed.status == 0, "\(listed.stderr)")
            let lines = listed.stdout.split(separator: "\n").map(String.init)
            #expect(
                lines.first?.hasPrefix(wrongID) == true && lines.first?.contains("consult to osei.derm") == true,
                "\(listed.stdout)"
            )
            #expect(lines.first?.contains("(1 file)  WRONG PATIENT") == true, "\(listed.stdout)")
            #expect(
                lines.dropFirst().first?.hasPrefix("    last error (1 attempt): cannot reach the relay") == true,
                "\(listed.stdout)"
            )
            #expect(listed.stdout.contains(rightID) && listed.stdout.contains("Right patient"))
            let items = try #require(try json(try curbside("outbox", "--json", home: gp).stdout) as? [[String: Any]])
            #expect(items.map { $0["id"] as? String } == [wrongID, rightID])
            #expect(items.first?["recipient"] as? String == "osei.derm" && items.first?["attachments"] as? Int == 1)
            #expect((items.first?["bytes"] as? Int ?? 0) > SamplePhoto.jpeg().count)
            #expect(items.first?["last_error_code"] as? Int != nil && items.first?["sending"] as? Bool == false)

            let cancelled = try curbside("outbox", "cancel", wrongID, home: gp)
            #expect(cancelled.status == 0, "\(cancelled.stderr)")
            #expect(
                cancelled.stdout.hasPrefix("cancelled \(wrongID): it was not sent, nobody will receive it"),
                "\(cancelled.stdout)"
            )
            let again = try curbside("outbox", "cancel", wrongID, home: gp)
            #expect(
                again.status == ExitStatus.usage
                    && again.stderr.contains("there is no message \(wrongID) in the outbox"),
                "\(again.stderr)"
            )
            let files = (try? FileManager.default.contentsOfDirectory(atPath: "\(gp)/attachments")) ?? []
            #expect(
                files.filter { $0.hasPrefix(wrongID) }.isEmpty,
                "the cancelled consult's encrypted photo is deleted: \(files)"
            )

            // A message whose send request went out unanswered (the process stopped meanwhile) may be stored: the
            // listing says so, and cancelling it says that it cannot be recalled if it was.
            let maybe = try curbside("send", "osei.derm", "--subject", "Maybe stored", "--question", "?", home: gp)
            let maybeID = maybe.stdout.trimmingCharacters(in: .newlines)
            let profile = try DatabaseQueue(path: "\(gp)/profile.sqlite")
            try await profile.write { db in
                try db.execute(
                    sql: "UPDATE outbox SET sending_at = 1 WHERE message_id = ?",
                    arguments: [Data([UInt8](hexString: maybeID) ?? [])]
                )
            }
            try profile.close()
            #expect(
                try curbside("outbox", home: gp).stdout.contains(
                    "\n    being sent, or its sending was interrupted: the relay may have stored it\n"
                )
            )
            let uncertain = try curbside("outbox", "cancel", maybeID, home: gp)
            #expect(uncertain.status == 0, "\(uncertain.stderr)")
            #expect(
                uncertain.stdout.hasPrefix(
                    "cancelled \(maybeID) on this device, but its sending had begun: the relay may have stored it"
                ),
                "\(uncertain.stdout)"
            )

            // The next ordinary command that reaches the relay sends what waits, and says what it sent.
            try await relay.start()
            let inbox = try curbside("inbox", home: gp)
            #expect(inbox.status == 0, "\(inbox.stderr)")
            #expect(
                inbox.stderr.contains("curbside: sent consult \(rightID) to osei.derm from the outbox: Right patient"),
                "\(inbox.stderr)"
            )
            #expect(!inbox.stderr.contains(wrongID))
            let received = try curbside("inbox", "--json", home: derm)
            #expect(received.stdout.contains(rightID) && !received.stdout.contains(wrongID), "\(received.stdout)")
            #expect(try curbside("outbox", home: gp).stdout == "the outbox is empty\n")
            let stored = try curbside("outbox", "cancel", rightID, home: gp)
            #expect(stored.status == ExitStatus.failure)
            #expect(
                stored.stderr.hasPrefix(
                    "curbside: error: \(rightID) is no longer in the outbox: the relay stored it, and a stored message cannot be recalled"
                ),
                "\(stored.stderr)"
            )
        }
    }

    /// A `curbside` process started in the background, to be interrupted.
    struct Running {
        let process: Process
        let out: Pipe
        let err: Pipe

        init(_ arguments: [String]) throws {
            process = Process()
            process.executableURL = Executable.url
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(ProviderCommandTests.environment) { $1 }
            out = Pipe()
            err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
        }

        /// Polls (at most a minute) until `ready` holds or the process has ended.
        func wait(until ready: () -> Bool) {
            var polls = 0
            while !ready(), process.isRunning, polls < 120_000 {
                usleep(500)
                polls += 1
            }
        }

        /// SIGINT, as Ctrl-C sends it; returns what the process printed and its status.
        func interrupt() -> (status: Int32, stdout: String, stderr: String) {
            kill(process.processIdentifier, SIGINT)
            let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, stdout, stderr)
        }
    }

    /// Bytes in the files of `directory` whose names pass `include`.
    static func bytes(in directory: String, _ include: (String) -> Bool = { _ in true }) -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter(include).reduce(0) {
            sum,
            name in
            var info = stat()
            return sum + (stat("\(directory)/\(name)", &info) == 0 ? Int(info.st_size) : 0)
        }
    }

    /// Ctrl-C while the photo uploads (the relay stalled part-way with SIGSTOP), in a consult from the GP and in a
    /// reply from the dermatologist: the message is cancelled, the command says so and exits 130, and neither a later
    /// sync nor the other side's inbox ever sees it.
    @Test(arguments: ["send", "reply"])
    func ctrlCDuringAnUploadCancelsTheMessage(_ command: String) async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { relay in
            let photo = "\(base)/large.jpg"
            try Data(SamplePhoto.jpeg(scan: 48 << 20)).write(to: URL(fileURLWithPath: photo))
            let (sender, recipient, noun): (String, String, String)
            let arguments: [String]
            if command == "send" {
                (sender, recipient, noun) = (gp, derm, "consult")
                arguments = [
                    "send", "osei.derm", "--subject", "WRONG PATIENT", "--question", "Excise?", "--image", photo,
                    "--home", gp,
                ]
            } else {
                (sender, recipient, noun) = (derm, gp, "reply")
                let consult = try curbside(
                    "send",
                    "osei.derm",
                    "--subject",
                    "Lesion",
                    "--question",
                    "Excise?",
                    home: gp
                )
                #expect(consult.status == 0, "\(consult.stderr)")
                #expect(try curbside("inbox", home: derm).status == 0)
                arguments = [
                    "reply", consult.stdout.trimmingCharacters(in: .newlines), "--text", "WRONG PATIENT", "--image",
                    photo, "--home", derm,
                ]
            }
            let running = try Running(arguments)
            // Part of the upload is on the relay's disk: stall the relay there, as a slow link would.
            let partial = "\(relay.data)/attachments/partial"
            running.wait { Self.bytes(in: partial) > 0 }
            relay.pause()
            #expect(Self.bytes(in: partial) > 0, "the relay holds part of the upload")
            let interrupted = running.interrupt()
            await relay.send(SIGCONT)

            #expect(interrupted.status == ExitStatus.interrupted, "\(interrupted.stderr)")
            #expect(interrupted.stdout.isEmpty, "\(interrupted.stdout)")
            // A photo this large is uploaded while it is encrypted, so Ctrl-C may come before it was queued.
            let cancelled =
                #/curbside: cancelled: (consult|reply) ([0-9a-f]{32}) was not sent; (the relay had not stored it, nobody will receive it, and it is no longer in the outbox|nothing was queued)/#
            let match = try #require(interrupted.stderr.firstMatch(of: cancelled), "\(interrupted.stderr)")
            #expect(match.output.1 == noun)
            let id = String(match.output.2)

            #expect(try curbside("outbox", home: sender).stdout == "the outbox is empty\n")
            #expect(Self.bytes(in: "\(sender)/attachments") { $0.hasPrefix(id) } == 0, "the encrypted photo is deleted")
            let sync = try curbside("sync", "--json", home: sender)
            let syncReport = try json(sync.stdout) as? [String: Any]
            #expect(sync.status == 0 && syncReport?["sent"] as? Int == 0, "\(sync.stdout) \(sync.stderr)")
            // The relay, stalled when Ctrl-C came, was told at the next connection to forget the partial upload
            // (abandon_upload): its bytes are gone at once, not after the upload lifetime.
            #expect(Self.bytes(in: partial) == 0, "the relay still holds the cancelled upload")
            let received = try curbside("inbox", "--json", home: recipient)
            #expect(received.status == 0)
            #expect(!received.stdout.contains(id) && !received.stdout.contains("WRONG PATIENT"), "\(received.stdout)")
            #expect(try curbside("status", id, home: sender).status == ExitStatus.usage)
        }
    }

    /// Ctrl-C while the photo is still being encrypted: nothing is queued, the partly written encrypted file is
    /// deleted, and nothing reaches the relay.
    @Test func ctrlCWhileEncryptingQueuesNothing() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { relay in
            let photo = "\(base)/large.jpg"
            try Data(SamplePhoto.jpeg(scan: 96 << 20)).write(to: URL(fileURLWithPath: photo))
            let running = try Running([
                "send", "osei.derm", "--subject", "WRONG PATIENT", "--question", "Excise?", "--image", photo, "--home",
                gp,
            ])
            running.wait { Self.bytes(in: "\(gp)/attachments") { $0.hasSuffix(".age") } > 0 }
            let interrupted = running.interrupt()

            #expect(interrupted.status == ExitStatus.interrupted, "\(interrupted.stderr)")
            #expect(
                interrupted.stderr.contains(
                    /curbside: cancelled: consult [0-9a-f]{32} was not sent; nothing was queued/
                ),
                "\(interrupted.stderr)"
            )
            #expect(
                Self.bytes(in: "\(gp)/attachments") { $0.hasSuffix(".age") } == 0,
                "the partly encrypted file is deleted"
            )
            #expect(
                Self.bytes(in: "\(relay.data)/attachments/partial")
                    + Self.bytes(in: "\(relay.data)/attachments/complete") == 0
            )
            #expect(try curbside("outbox", home: gp).stdout == "the outbox is empty\n")
            #expect(try curbside("sync", home: gp).status == 0)
            #expect(!(try curbside("inbox", "--json", home: derm).stdout.contains("WRONG PATIENT")))
        }
    }
}
