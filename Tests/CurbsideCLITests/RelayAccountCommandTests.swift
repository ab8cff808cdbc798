import CurbsideTestSupport
import Foundation
import Testing

@testable import CurbsideCLI

/// The operator's day (issue 17 item 4): accounts, a lost laptop replaced, an account revoked while the relay runs,
/// what the serve log says, `status --json`, and a second `serve` on a port in use. Real binary, separate processes.
@Suite("curbside relay accounts, revoke and enroll --replace", .serialized)
struct RelayAccountCommandTests {
    let passphrase = ProviderCommandTests.environment

    func base() throws -> String { try Executable.scratchDirectory("operator") }

    func curbside(_ arguments: String..., home: String) throws -> (status: Int32, stdout: String, stderr: String) {
        try Executable.run(arguments + ["--home", home], environment: passphrase)
    }

    func relayCommand(_ arguments: String..., relay: RelayProcess) throws -> (status: Int32, stdout: String, stderr: String) {
        try Executable.run(["relay"] + [arguments[0], "--data", relay.data] + arguments.dropFirst())
    }

    func json(_ text: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(text.utf8))
    }

    /// The dermatologist's laptop is lost: `enroll --replace` locks its key out at once and makes a code for a new
    /// one; the consult queued for the old key reaches the new laptop, which reports it unreadable; the GP's next
    /// send is held by the key-change gate until the GP verifies the new safety number, and then goes.
    @Test func replacingALostLaptopBindsANewKeyThatContactsMustVerify() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { relay in
            let first = try curbside("send", "osei.derm", "--subject", "Nail fold photo", "--question", "Psoriasis?", home: gp)
            #expect(first.status == 0, "\(first.stderr)")
            let oldKey = try #require(try json(try curbside("whoami", "--json", home: derm).stdout) as? [String: Any])["identity_key"] as? String

            // A registered handle gets no plain code, and is told the way forward.
            let again = try relayCommand("enroll", "osei.derm", relay: relay)
            #expect(again.status == ExitStatus.usage)
            #expect(again.stderr.hasPrefix("curbside: error: osei.derm is registered already; no code was made\n"))
            #expect(again.stderr.contains("curbside: hint: for a lost or replaced device: `curbside relay enroll --data \(relay.data) --replace osei.derm`"))
            let nobody = try relayCommand("enroll", "nobody.here", "--replace", relay: relay)
            #expect(nobody.status == ExitStatus.usage && nobody.stderr.contains("nobody.here is not registered; there is no key to replace"))

            let replaced = try relayCommand("enroll", "osei.derm", "--replace", relay: relay)
            #expect(replaced.status == 0, "\(replaced.stderr)")
            #expect(replaced.stdout.contains("revoked key \(oldKey?.prefix(16) ?? "?")… of osei.derm: it can no longer log in"), "\(replaced.stdout)")
            #expect(replaced.stdout.contains("1 queued message kept; the new device will report each as unreadable to its sender"))
            let code = String(try #require(replaced.stdout.firstMatch(of: /[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}/)).output)

            // Between the two, the handle is no account but a code waiting to be used.
            let waiting = try relayCommand("accounts", relay: relay)
            #expect(!waiting.stdout.contains("\nosei.derm "), "\(waiting.stdout)")
            #expect(waiting.stdout.contains(/waiting to register \(a code not used yet\):\n  osei\.derm  code valid until 20\d\d-/), "\(waiting.stdout)")

            // The lost laptop's key is refused from now on.
            let lost = try curbside("sync", home: derm)
            #expect(lost.status != 0)
            #expect(lost.stderr.contains("the relay does not accept this profile's identity for osei.derm"), "\(lost.stderr)")

            let laptop = "\(base)/derm-new"
            let created = try curbside(
                "init", "--handle", "osei.derm", "--relay", "127.0.0.1:\(relay.port)", "--relay-fingerprint", relay.fingerprint,
                "--code", code, home: laptop
            )
            #expect(created.status == 0, "\(created.stderr)")
            let newKey = try #require(try json(try curbside("whoami", "--json", home: laptop).stdout) as? [String: Any])["identity_key"] as? String
            #expect(newKey != oldKey)
            let accounts = try relayCommand("accounts", "--json", relay: relay)
            let listed = try #require((try json(accounts.stdout) as? [String: Any])?["accounts"] as? [[String: Any]])
            #expect(listed.first { $0["handle"] as? String == "osei.derm" }?["identity_key"] as? String == newKey)
            // The consult sealed to the lost laptop's key cannot be opened by the new one, and both sides hear so.
            #expect(try curbside("inbox", home: laptop).stdout.contains("1 message from amara.gp could not be opened"))

            // The GP's next consult is held: the key changed.
            let held = try curbside("send", "osei.derm", "--subject", "Second photo", "--question", "Same lesion?", home: gp)
            #expect(held.status == ExitStatus.trust, "\(held.stdout) \(held.stderr)")
            #expect(held.stderr.contains("osei.derm's identity key has changed since you pinned it"))
            #expect(!(try curbside("inbox", home: laptop).stdout.contains("Second photo")))
            let contact = try #require(try json(try curbside("contacts", "show", "osei.derm", "--json", home: gp).stdout) as? [String: Any])
            let number = try #require(contact["safety_number"] as? String)
            let verified = try Executable.run(["contacts", "verify", "osei.derm"] + number.split(separator: " ").map(String.init) + ["--home", gp], environment: passphrase)
            #expect(verified.status == 0, "\(verified.stderr)")
            _ = try curbside("sync", home: gp)
            #expect(try curbside("inbox", home: laptop).stdout.contains("Second photo"))
        }
    }

    /// `relay revoke --queue drop` while the relay runs: the open session is closed, the key's logins fail, the
    /// sender hears the consult expired, and a send to the handle is refused; the serve log tells the operator.
    @Test func revokingClosesTheOpenSessionAndTellsTheSenders() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { relay in
            // The dermatologist's device stays connected.
            let watch = Process()
            watch.executableURL = Executable.url
            watch.arguments = ["watch", "--home", derm]
            watch.environment = ProcessInfo.processInfo.environment.merging(passphrase) { $1 }
            let watchLog = "\(base)/watch.log"
            _ = FileManager.default.createFile(atPath: watchLog, contents: nil)
            watch.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: watchLog))
            watch.standardError = FileHandle.nullDevice
            try watch.run()
            defer { if watch.isRunning { watch.interrupt() } }
            func watched() -> String { (try? String(contentsOfFile: watchLog, encoding: .utf8)) ?? "" }
            for _ in 0..<600 where !watched().contains("connected") { try await Task.sleep(for: .milliseconds(50)) }
            #expect(watched().contains("connected"), "\(watched())")

            // kofi.cardio is registered but not connected: the GP's consult waits in its queue.
            try relay.createProvider("kofi.cardio", home: "\(base)/cardio")
            let sent = try curbside("send", "kofi.cardio", "--subject", "ECG", "--question", "AF?", home: gp)
            #expect(sent.status == 0, "\(sent.stderr)")
            let id = sent.stdout.trimmingCharacters(in: .whitespacesAndNewlines)

            let missing = try relayCommand("revoke", "osei.derm", relay: relay)
            #expect(missing.status == ExitStatus.usage && missing.stderr.contains("--queue"), "\(missing.stderr)")
            let dropped = try relayCommand("revoke", "kofi.cardio", "--queue", "drop", relay: relay)
            #expect(dropped.status == 0, "\(dropped.stderr)")
            #expect(dropped.stdout.contains("revoked kofi.cardio (key "))
            #expect(dropped.stdout.contains("1 queued message dropped; 1 sender told by an expiry notice"), "\(dropped.stdout)")
            let kept = try relayCommand("revoke", "osei.derm", "--queue", "keep", "--json", relay: relay)
            #expect(kept.status == 0, "\(kept.stderr)")
            let revoked = try #require(try json(kept.stdout) as? [String: Any])
            #expect(revoked["handle"] as? String == "osei.derm" && revoked["kept_envelopes"] as? Int == 0)
            #expect((revoked["identity_key"] as? String)?.count == 64)
            let twice = try relayCommand("revoke", "osei.derm", "--queue", "keep", relay: relay)
            #expect(twice.status == ExitStatus.usage && twice.stderr.hasPrefix("curbside: error: osei.derm is not registered; nothing was revoked"))

            // The running relay closes the watching connection, and watch's reconnection is refused.
            for _ in 0..<600 where !watched().contains("does not accept this profile's identity") {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(watched().contains("does not accept this profile's identity for osei.derm"), "\(watched())")
            watch.interrupt()

            // The GP's consult to the dropped queue: expired, as the relay told it.
            #expect(try curbside("sync", home: gp).status == 0)
            let status = try curbside("status", id, home: gp)
            #expect(status.stdout.contains("expired"), "\(status.stdout)")
            let refused = try curbside("send", "kofi.cardio", "--subject", "ECG", "--question", "AF?", home: gp)
            #expect(refused.status == ExitStatus.usage && refused.stderr.contains("kofi.cardio is not registered"), "\(refused.stderr)")
            let accounts = try relayCommand("accounts", relay: relay)
            #expect(accounts.stdout.contains("amara.gp") && !accounts.stdout.contains("osei.derm") && !accounts.stdout.contains("kofi.cardio"))

            // A wrong code, and a key that keeps trying: the serve log has the registration refused, the sessions
            // closed, the logins refused and the rate limit, never a code.
            let wrongCode = try curbside(
                "init", "--handle", "zara.onc", "--relay", "127.0.0.1:\(relay.port)", "--relay-fingerprint", relay.fingerprint,
                "--code", "AAAAA-BBBBB-CCCCC-DDDDD", home: "\(base)/onc"
            )
            #expect(wrongCode.status != 0)
            var log = ""
            for _ in 0..<8 {
                _ = try curbside("sync", home: derm)
                log = try String(contentsOfFile: relay.logPath, encoding: .utf8)
                if log.contains("rate limit hit") { break }
            }
            #expect(log.contains(/registration accepted connection=[0-9a-f]{8} handle=amara\.gp/))
            // init asks before registering (check_enrollment), so a wrong code is refused at the check.
            #expect(log.contains(/enrollment check refused connection=[0-9a-f]{8} handle=zara\.onc peer=127\.0\.0\.1 reason=enrollment_invalid/), "\(log)")
            #expect(log.contains(/notice: sessions closed: key revoked connections=1 handle=osei\.derm reason=account_revoked/), "\(log)")
            #expect(log.contains(/login refused connection=[0-9a-f]{8} handle=osei\.derm peer=127\.0\.0\.1 reason=login_failed/))
            #expect(log.contains(/notice: rate limit hit connection=[0-9a-f]{8} handle=osei\.derm limiter=login/), "\(log)")
            #expect(!log.contains("AAAAA"))
        }
    }

    /// `status` shows the fingerprint clients pin and takes --json; `accounts` with nobody registered says how to
    /// start; `relay --help` lists the exit statuses.
    @Test func statusShowsTheFingerprintAndEveryResultTakesJSON() throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let relay = try RelayProcess(base: base)
        let status = try relayCommand("status", relay: relay)
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains("fingerprint        \(relay.fingerprint)\n"), "\(status.stdout)")
        let parsed = try #require(try json(try relayCommand("status", "--json", relay: relay).stdout) as? [String: Any])
        #expect(parsed["fingerprint"] as? String == relay.fingerprint)
        #expect(parsed["accounts"] as? Int == 0 && parsed["listen"] as? String == "127.0.0.1:0")

        #expect(try relayCommand("accounts", relay: relay).stdout == "no accounts yet: `curbside relay enroll --data \(relay.data) HANDLE` makes a code to register one\n")
        let enrolled = try #require(try json(try relayCommand("enroll", "osei.derm", "--json", relay: relay).stdout) as? [String: Any])
        #expect((enrolled["code"] as? String)?.contains(/^[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}-[0-9A-Z]{5}$/) == true)
        #expect(enrolled["handle"] as? String == "osei.derm" && enrolled["replaced_key"] == nil)
        let listing = try #require(try json(try relayCommand("accounts", "--json", relay: relay).stdout) as? [String: Any])
        #expect((listing["accounts"] as? [Any])?.isEmpty == true)
        let pending = try #require(listing["pending_enrollments"] as? [[String: Any]])
        #expect(pending.count == 1 && pending.first?["handle"] as? String == "osei.derm")
        #expect(pending.first?["expires_at"] as? String == enrolled["expires_at"] as? String)

        let noRelay = try Executable.run(["relay", "status", "--data", "\(base)/nothing"])
        #expect(noRelay.status == ExitStatus.configuration && noRelay.stderr.contains("is not a relay data directory"))
        let help = try Executable.run(["relay", "--help"]).stdout
        for status in ["64 usage", "69 network", "78 configuration"] { #expect(help.contains(status), "\(help)") }
        for command in ["accounts", "revoke"] { #expect(help.contains(command)) }
    }

    /// On PostgreSQL the operator's command reaches the running relay through the database: the senders' expiry
    /// notices for a dropped queue are pushed to a connected sender at once, and a replaced key's open session is
    /// closed.
    @Test func onPostgreSQLTheRunningRelayPushesTheNoticesAndClosesTheSession() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let database = try await MigrationPostgres.shared.newDatabase()
        let relay = RelayProcess(executable: Executable.url.path, dataDirectory: "\(base)/relay", database: database.url)
        try relay.initialise()
        try await relay.start()
        try await withStopping(relay) { relay in
            let gp = "\(base)/gp"
            for (home, handle) in [(gp, "amara.gp"), ("\(base)/derm", "osei.derm")] { try relay.createProvider(handle, home: home) }
            let sent = try curbside("send", "osei.derm", "--subject", "Nail fold photo", "--question", "Psoriasis?", home: gp)
            #expect(sent.status == 0, "\(sent.stderr)")

            let watch = Process()
            watch.executableURL = Executable.url
            watch.arguments = ["watch", "--home", gp]
            watch.environment = ProcessInfo.processInfo.environment.merging(passphrase) { $1 }
            let watchLog = "\(base)/watch.log"
            _ = FileManager.default.createFile(atPath: watchLog, contents: nil)
            watch.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: watchLog))
            watch.standardError = FileHandle.nullDevice
            try watch.run()
            defer { if watch.isRunning { watch.interrupt() } }
            func watched() -> String { (try? String(contentsOfFile: watchLog, encoding: .utf8)) ?? "" }
            func waitFor(_ text: String) async throws {
                for _ in 0..<600 where !watched().contains(text) { try await Task.sleep(for: .milliseconds(50)) }
            }
            try await waitFor("connected")

            let dropped = try relayCommand("revoke", "osei.derm", "--queue", "drop", relay: relay)
            #expect(dropped.stdout.contains("1 queued message dropped; 1 sender told by an expiry notice"), "\(dropped.stdout) \(dropped.stderr)")
            try await waitFor("notice       expired")
            #expect(watched().contains(/notice +expired: consult [0-9a-f]{32} to osei\.derm/), "\(watched())")

            let replaced = try relayCommand("enroll", "amara.gp", "--replace", relay: relay)
            #expect(replaced.status == 0, "\(replaced.stderr)")
            try await waitFor("does not accept this profile's identity")
            #expect(watched().contains("does not accept this profile's identity for amara.gp"), "\(watched())")
            watch.interrupt()
            let log = try String(contentsOfFile: relay.logPath, encoding: .utf8)
            #expect(log.contains(/sessions closed: key revoked connections=1 handle=amara\.gp reason=account_revoked/), "\(log)")
        }
    }

    /// A second `serve` on the port the first one holds says so in one line and exits 69.
    @Test func aSecondServeOnAPortInUseSaysSoInOneLine() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let relay = try RelayProcess(base: base)
        try await relay.start()
        try await withStopping(relay) { relay in
            let second = try Executable.run(["relay", "serve", "--data", relay.data, "--listen", "127.0.0.1:\(relay.port)"])
            #expect(second.status == ExitStatus.network)
            #expect(second.stderr.split(separator: "\n").count == 1, "\(second.stderr)")
            #expect(second.stderr.hasPrefix("curbside: error: cannot listen on 127.0.0.1:\(relay.port): it is in use by another process"))
            #expect(relay.isRunning)
        }
    }
}
