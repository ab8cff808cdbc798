import CurbsideClient
import CurbsideTestSupport
import CurbsideWire
import Foundation
import GRDB
import Testing

@testable import CurbsideCLI

/// The PostgreSQL cluster of these tests: started on first use, a new database for each, stopped by its watchdog
/// when the test process ends.
actor MigrationPostgres {
    static let shared = MigrationPostgres()
    private var started: PostgresCluster?
    private var databases = 0

    var cluster: PostgresCluster {
        get throws {
            if let started { return started }
            // Migration and its checks are the subject here, not the disk's durability.
            let cluster = try PostgresCluster.start(settings: ["fsync": "off"], name: "cli-tests")
            started = cluster
            return cluster
        }
    }

    /// A new, empty database and the relay.conf URL naming it (through the cluster's Unix socket).
    func newDatabase() throws -> (url: String, name: String) {
        let cluster = try cluster
        databases += 1
        let name = "relay_\(databases)"
        try cluster.createDatabase(name)
        let socketDirectory = cluster.socketDirectory.replacingOccurrences(of: "/", with: "%2F")
        return ("postgres://\(cluster.user)@\(socketDirectory):\(cluster.port)/\(name)", name)
    }

    func psql(_ sql: String, database: String) throws -> String {
        try cluster.psql(sql, database: database)
    }
}

/// A SQLite relay with consults queued for osei.derm, as a relay looks when its operator moves it: written through
/// the real relay and the providers' own profiles.
struct QueuedRelay {
    let base: String
    let relay: RelayProcess
    let gp: String
    let derm: String
    /// Consults amara.gp sent that wait for osei.derm, with the file each attaches, if any.
    let consults: [(id: String, attachment: String?)]
    /// Consults osei.derm sent that amara.gp fetched: their notices wait for osei.derm.
    let dermConsults: [String]
    /// A consult amara.gp sent whose attachment upload the relay's death cut short: its id, the file, and the bytes
    /// the relay held of the upload.
    let halfSent: (id: String, file: String, held: Int64)?

    /// Builds one in a new directory; the relay is left stopped (killed mid-upload when `halfUpload`).
    ///
    /// - Parameters:
    ///   - consults: consults from amara.gp to osei.derm, sent through amara.gp's profile (the library the CLI
    ///     runs, in this process: one profile unlock instead of one per consult).
    ///   - attachments: how many of them attach a file of their own (random bytes, 520 to 700 KiB).
    ///   - halfUpload: then `curbside send` a consult with a large attachment and kill the relay mid-upload.
    static func make(consults: Int, attachments: Int, halfUpload: Bool) async throws -> QueuedRelay {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-migrate-\(UUID())").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        if consults >= 900 {
            // Every consult in the acceptance run comes from one sender, past the default share of 1,000.
            await relay.stop()
            let conf = "\(relay.data)/relay.conf"
            try (String(contentsOfFile: conf, encoding: .utf8) + "maximum_queued_envelopes_per_sender = 5000\n")
                .write(toFile: conf, atomically: true, encoding: .utf8)
            try await relay.start()
        }
        func curbside(_ arguments: [String], home: String) throws -> (status: Int32, stdout: String, stderr: String) {
            try Executable.run(arguments + ["--home", home], environment: ProviderCommandTests.environment)
        }

        // osei.derm asks amara.gp twice; amara.gp fetches both, so two delivered-to-device notices wait for osei.derm.
        var dermConsults: [String] = []
        for index in 0..<2 {
            let sent = try curbside(
                ["send", "amara.gp", "--subject", "Rash follow-up \(index)", "--question", "Seen?"],
                home: derm
            )
            #expect(sent.status == 0, "\(sent.stderr)")
            dermConsults.append(String(try #require(sent.stdout.firstMatch(of: /[0-9a-f]{32}/)).output))
        }
        let fetched = try curbside(["sync"], home: gp)
        #expect(fetched.status == 0 && fetched.stdout.contains("received 2"), "\(fetched.stdout)\(fetched.stderr)")

        var queued: [(id: String, attachment: String?)] = []
        let client = try await Client.open(
            home: URL(fileURLWithPath: gp),
            passphrase: SecretBytes(Array(ProviderCommandTests.environment["CURBSIDE_PASSPHRASE"]!.utf8))
        )
        var generator = SplitMix64(seed: 15)
        for index in 0..<consults {
            var files: [AttachmentSource] = []
            var file: String?
            if index < attachments {
                let path = "\(base)/lesion-\(index).bin"
                // Three 256 KiB chunks each once encrypted, so a batch of two chunks ends inside one.
                let size = 520 * 1024 + Int(generator.next() % (180 * 1024))
                try Data((0..<size).map { _ in UInt8(truncatingIfNeeded: generator.next()) }).write(
                    to: URL(fileURLWithPath: path)
                )
                files = [AttachmentSource(path: path, keepMetadata: true)]
                file = path
            }
            let consult = try Consult(
                subject: "Lesion \(index)",
                urgency: .routine,
                specialty: "dermatology",
                question: "Benign or refer? (\(index))",
                clinicalSummary: "Case \(index): pigmented lesion, 6 mm, changed over three months."
            )
            let outcome = try await client.send(consult, to: try Handle("osei.derm"), attachments: files)
            #expect(outcome.stored, "consult \(index): \(outcome.waiting ?? "")")
            queued.append((outcome.id, file))
        }

        var halfSent: (id: String, file: String, held: Int64)?
        if halfUpload {
            halfSent = try await sendUntilTheRelayDies(relay: relay, base: base, gp: gp)
        } else {
            await relay.stop()
        }
        return QueuedRelay(
            base: base,
            relay: relay,
            gp: gp,
            derm: derm,
            consults: queued,
            dermConsults: dermConsults,
            halfSent: halfSent
        )
    }

    /// `curbside send` with a 24 MiB attachment; once the relay holds 8 MiB of the upload, the relay is frozen
    /// (SIGSTOP, so what it holds cannot move), checked to hold only part, and killed. The consult stays queued in
    /// amara.gp's outbox with its upload half done, as after a relay crash.
    private static func sendUntilTheRelayDies(relay: RelayProcess, base: String, gp: String) async throws -> (
        id: String, file: String, held: Int64
    ) {
        let file = "\(base)/dermatoscopy.bin"
        var generator = SplitMix64(seed: 16)
        try Data((0..<(24 << 20)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }).write(
            to: URL(fileURLWithPath: file)
        )
        let send = Process()
        send.executableURL = Executable.url
        send.arguments = [
            "send", "osei.derm", "--subject", "Dermatoscopy series", "--question", "Excise?", "--image", file,
            "--keep-metadata",
            "--retries", "0", "--json", "--home", gp,
        ]
        send.environment = ProcessInfo.processInfo.environment.merging(ProviderCommandTests.environment) { $1 }
        let out = Pipe()
        send.standardOutput = out
        send.standardError = FileHandle.nullDevice
        try send.run()
        let partial = "\(relay.data)/attachments/partial"
        var held: Int64 = 0
        for _ in 0..<60_000 where held == 0 {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: partial)) ?? [] {
                let size =
                    (try? FileManager.default.attributesOfItem(atPath: "\(partial)/\(name)")[.size] as? Int64) ?? 0
                // A third of the way, so the copy carries a real part of an upload (and several chunk rows).
                if size >= 8 << 20 {
                    await relay.send(SIGSTOP)
                    held =
                        (try? FileManager.default.attributesOfItem(atPath: "\(partial)/\(name)")[.size] as? Int64) ?? 0
                }
            }
            if held == 0 { try await Task.sleep(for: .milliseconds(1)) }
        }
        await relay.send(SIGKILL)
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        send.waitUntilExit()
        #expect(send.terminationStatus == ExitStatus.queued, "\(output)")
        let outcome = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(outcome["stored"] as? Bool == false, "\(output)")
        // The encrypted file is a little larger than the plain one; the relay held part of it, not all.
        try #require(held > 0 && held < 24 << 20, "the relay held \(held) bytes when it was stopped")
        return (try #require(outcome["id"] as? String), file, held)
    }
}

@Suite("curbside relay migrate", .serialized)
struct RelayMigrateCommandTests {
    func curbside(_ arguments: String..., home: String) throws -> (status: Int32, stdout: String, stderr: String) {
        try Executable.run(arguments + ["--home", home], environment: ProviderCommandTests.environment)
    }

    /// The verification table `relay migrate` prints: rows in source and target, by check, for lines whose
    /// SHA-256 matched (a differing line has no single hash and is left out).
    static func checks(in output: String) -> [String: (source: Int, target: Int)] {
        var checks: [String: (source: Int, target: Int)] = [:]
        for match in output.matches(of: /\n([a-z_]+) +(\d+) +(\d+)  [0-9a-f]{64}(?=\n)/) {
            checks[String(match.output.1)] = (Int(match.output.2)!, Int(match.output.3)!)
        }
        return checks
    }

    /// The issue's acceptance run, smaller by default (CURBSIDE_MIGRATE_CONSULTS and CURBSIDE_MIGRATE_ATTACHMENTS set
    /// the full 1,000 and 19 + 1): a SQLite relay with queued consults, attachments, a half-done upload and pending
    /// notices moves to PostgreSQL; the relay serves from it; the providers' profiles, unchanged, fetch everything
    /// and finish the upload where the relay had left it.
    @Test func aQueuedRelayMovesToPostgreSQLAndClientsCarryOnUnchanged() async throws {
        let environment = ProcessInfo.processInfo.environment
        let consults = environment["CURBSIDE_MIGRATE_CONSULTS"].flatMap(Int.init) ?? 200
        let attachments = environment["CURBSIDE_MIGRATE_ATTACHMENTS"].flatMap(Int.init) ?? 4
        let queued = try await QueuedRelay.make(consults: consults, attachments: attachments, halfUpload: true)
        defer { try? FileManager.default.removeItem(atPath: queued.base) }
        let relay = queued.relay
        try await withStopping(relay) { relay in
            let halfSent = try #require(queued.halfSent)
            let database = try await MigrationPostgres.shared.newDatabase()

            let started = ContinuousClock.now
            let migrated = try Executable.run(["relay", "migrate", "--data", relay.data, "--to", database.url])
            let elapsed = ContinuousClock.now - started
            #expect(migrated.status == 0, "\(migrated.stdout)\(migrated.stderr)")
            print(
                "relay migrate: \(consults) consults, \(attachments) attachments + 1 half-uploaded (\(halfSent.held) bytes held): "
                    + "\(elapsed)\n\(migrated.stdout)"
            )
            #expect(
                migrated.stdout.contains("verified: every table and every attachment's bytes agree"),
                "\(migrated.stdout)"
            )
            let checks = Self.checks(in: migrated.stdout)
            #expect(checks.count == 11 && checks.values.allSatisfy { $0.source == $0.target }, "\(checks)")
            // osei.derm's queue: the consults and the receipts amara.gp sent for the two it fetched.
            #expect((checks["envelope"]?.source ?? 0) >= consults)
            #expect(checks["notice"]?.source == 2, "two notices wait for osei.derm")
            #expect(checks["attachment_data"]?.source == attachments + 1)
            #expect(checks["envelope_attachment"]?.source == attachments)
            #expect(migrated.stdout.contains("(1 half-uploaded"))
            let conf = try String(contentsOfFile: "\(relay.data)/relay.conf", encoding: .utf8)
            #expect(conf.contains("\ndatabase = \(database.url)\n"), "\(conf)")
            #expect(
                !(try String(contentsOfFile: "\(relay.data)/relay.conf.before-migrate", encoding: .utf8)).contains(
                    "\ndatabase = postgres"
                )
            )

            // In PostgreSQL as the relay left it: the upload half done, its bytes as rows.
            let upload = try await MigrationPostgres.shared.psql(
                "SELECT key, held, complete FROM attachment WHERE NOT complete",
                database: database.name
            ).split(separator: "|")
            #expect(upload.count == 3 && Int64(upload[1]) == halfSent.held && upload[2] == "f", "\(upload)")
            let key = String(upload[0])

            // The same address, the same certificate: nothing changes for the clients.
            try await relay.start()
            let again = try Executable.run(["relay", "migrate", "--data", relay.data, "--to", database.url])
            #expect(again.status == 0, "\(again.stderr)")
            #expect(again.stdout.contains("already migrated"), "\(again.stdout)")

            let finished = try curbside("sync", home: queued.gp)
            #expect(finished.status == 0, "\(finished.stderr)")
            #expect(finished.stdout.contains("sent 1"), "\(finished.stdout)")
            // Resumed, not started over: the rows below `held` are the migrated ones, the client's begin at `held`.
            let offsets = try await MigrationPostgres.shared.psql(
                "SELECT \"offset\" FROM attachment_chunk WHERE attachment = \(key) ORDER BY \"offset\"",
                database: database.name
            ).split(separator: "\n").compactMap { Int64($0) }
            #expect(offsets.contains(halfSent.held), "chunks at \(offsets)")
            #expect(offsets.filter { $0 < halfSent.held }.allSatisfy { $0 % (256 << 10) == 0 }, "chunks at \(offsets)")
            #expect(
                try await MigrationPostgres.shared.psql(
                    "SELECT complete FROM attachment WHERE key = \(key)",
                    database: database.name
                ) == "t"
            )

            let inbox = try curbside("inbox", "--json", home: queued.derm)
            #expect(inbox.status == 0, "\(inbox.stderr)")
            let listed = try #require(try JSONSerialization.jsonObject(with: Data(inbox.stdout.utf8)) as? [String: Any])
            let messages = try #require(listed["messages"] as? [[String: Any]])
            let received = Set(
                messages.filter { $0["direction"] as? String == "in" && $0["kind"] as? String == "consult" }.compactMap {
                    $0["id"] as? String
                }
            )
            #expect(
                received == Set(queued.consults.map(\.id) + [halfSent.id]),
                "\(received.count) of \(queued.consults.count + 1) received"
            )

            for (id, file) in [(halfSent.id, halfSent.file)]
                + queued.consults.compactMap({ consult in consult.attachment.map { (consult.id, $0) } }).prefix(2)
            {
                let saveDirectory = "\(queued.base)/saved-\(id)"
                let shown = try curbside("show", id, "--save-dir", saveDirectory, "--json", home: queued.derm)
                #expect(shown.status == 0, "\(shown.stderr)")
                let output = try #require(try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any])
                let saved = try #require((output["saved"] as? [String])?.first, "\(shown.stdout)")
                #expect(
                    FileManager.default.contents(atPath: saved) == FileManager.default.contents(atPath: file),
                    "\(id)'s attachment"
                )
            }

            // The notices that waited in the SQLite store reach osei.derm from PostgreSQL.
            for id in queued.dermConsults {
                let status = try curbside("status", id, home: queued.derm)
                #expect(status.stdout.contains(/delivered to device  20\d\d-/), "\(status.stdout)")
            }
            await relay.stop()
        }
    }

    /// Killed part-way — inside an attachment's bytes, then inside the envelopes — a migration continues from the
    /// last batch it committed, finishes verified, and says so when run once more.
    @Test func anInterruptedMigrationContinuesWhereItStopped() async throws {
        let queued = try await QueuedRelay.make(consults: 24, attachments: 3, halfUpload: false)
        defer { try? FileManager.default.removeItem(atPath: queued.base) }
        let data = queued.relay.data
        let database = try await MigrationPostgres.shared.newDatabase()
        func migrate(stoppingAfter batches: Int?) throws -> (status: Int32, stdout: String, stderr: String) {
            try Executable.run(
                ["relay", "migrate", "--data", data, "--to", database.url, "--batch-size", "2"],
                environment: batches.map { ["CURBSIDE_TESTONLY_MIGRATE_STOP_AFTER_BATCHES": String($0)] } ?? [:]
            )
        }
        func progress() async throws -> [Substring] {
            try await MigrationPostgres.shared.psql(
                "SELECT step, position, byte_offset FROM migration_progress",
                database: database.name
            )
            .split(separator: "|")
        }

        // Batches of two rows (or two 256 KiB chunks) up to the attachments' bytes, from the source's own counts.
        let source = try DatabaseQueue(path: "\(data)/relay.sqlite")
        let rowsBefore = try await source.read { db in
            try ["account", "enrollment", "signed_prekey", "one_time_prekey", "attachment"].map {
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \($0)")!
            }
        }
        let chunks = try await source.read { db in
            try Int64.fetchAll(db, sql: "SELECT size FROM attachment").reduce(0) {
                $0 + Int(($1 + (256 << 10) - 1) / (256 << 10))
            }
        }
        try source.close()
        let batchesBefore = rowsBefore.reduce(0) { $0 + ($1 + 1) / 2 }

        let first = try migrate(stoppingAfter: batchesBefore + 1)
        #expect(first.status == SIGKILL, "\(first.stdout)\(first.stderr)")
        let midAttachment = try await progress()
        #expect(midAttachment.first == "attachment_bytes" && Int64(midAttachment[2]) == 512 << 10, "\(midAttachment)")
        #expect(!(try String(contentsOfFile: "\(data)/relay.conf", encoding: .utf8)).contains("\ndatabase = postgres"))

        let second = try migrate(stoppingAfter: (chunks - 2 + 1) / 2 + 3)
        #expect(second.status == SIGKILL, "\(second.stdout)\(second.stderr)")
        #expect(second.stdout.contains("resuming the migration begun at "), "\(second.stdout)")
        let midEnvelopes = try await progress()
        #expect(midEnvelopes.first == "envelope" && (Int64(midEnvelopes[1]) ?? 0) > 0, "\(midEnvelopes)")

        let third = try migrate(stoppingAfter: nil)
        #expect(third.status == 0, "\(third.stdout)\(third.stderr)")
        #expect(third.stdout.contains("resuming the migration begun at "))
        #expect(third.stdout.contains(", at envelope"))
        #expect(third.stdout.contains("verified: every table and every attachment's bytes agree"), "\(third.stdout)")
        let checks = Self.checks(in: third.stdout)
        #expect(checks.count == 11 && checks.values.allSatisfy { $0.source == $0.target }, "\(third.stdout)")
        #expect((checks["envelope"]?.source ?? 0) >= 24)
        #expect(checks["attachment_data"]?.source == 3)
        // Each chunk copied once, however often the copy was interrupted.
        #expect(
            try await MigrationPostgres.shared.psql("SELECT COUNT(*) FROM attachment_chunk", database: database.name)
                == String(chunks)
        )

        let fourth = try migrate(stoppingAfter: nil)
        #expect(fourth.status == 0, "\(fourth.stderr)")
        #expect(fourth.stdout.contains("already migrated"), "\(fourth.stdout)")
        #expect(fourth.stdout.contains("relay.conf already names the database"))
    }

    /// A target with anything in it, a source in use, a source that changed under an interrupted migration, and a
    /// password on the command line are each refused with a message that says so; nothing is changed.
    @Test func aTargetThatIsNotEmptyOrASourceInUseIsRefused() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-migrate-\(UUID())").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let relay = try RelayProcess(base: base)
        _ = try relay.enroll("amara.gp")
        let conf = try String(contentsOfFile: "\(relay.data)/relay.conf", encoding: .utf8)
        func migrate(_ url: String, environment: [String: String] = [:]) throws -> (
            status: Int32, stdout: String, stderr: String
        ) {
            try Executable.run(["relay", "migrate", "--data", relay.data, "--to", url], environment: environment)
        }

        let serving = try await MigrationPostgres.shared.newDatabase()
        try await relay.start()
        let inUse = try migrate(serving.url)
        await relay.stop()
        #expect(inUse.status == 1)
        #expect(
            inUse.stderr.contains("curbside: error: \(relay.data)/relay.sqlite is in use by another process"),
            "\(inUse.stderr)"
        )
        #expect(inUse.stderr.contains("curbside: hint: stop `curbside relay serve`"))

        // A database a PostgreSQL relay already uses: one enrollment in it.
        let used = try await MigrationPostgres.shared.newDatabase()
        let other = "\(base)/pg-relay"
        #expect(
            try Executable.run(["relay", "init", "--data", other, "--database", used.url, "--listen", "127.0.0.1:0"])
                .status == 0
        )
        #expect(try Executable.run(["relay", "enroll", "--data", other, "kofi.cardio"]).status == 0)
        let notEmpty = try migrate(used.url)
        #expect(notEmpty.status == 1)
        #expect(
            notEmpty.stderr.contains(
                "is not empty (1 enrollment rows) and holds no migration of this relay; nothing was copied"
            ),
            "\(notEmpty.stderr)"
        )
        #expect(
            try await MigrationPostgres.shared.psql("SELECT handle FROM enrollment", database: used.name)
                == "kofi.cardio"
        )

        let foreign = try await MigrationPostgres.shared.newDatabase()
        _ = try await MigrationPostgres.shared.psql("CREATE TABLE patient (id integer)", database: foreign.name)
        let foreignRefused = try migrate(foreign.url)
        #expect(foreignRefused.status == 1)
        #expect(
            foreignRefused.stderr.contains("holds tables that are not a Curbside relay's (patient)"),
            "\(foreignRefused.stderr)"
        )

        // Interrupted, then the SQLite relay was used again: the copy no longer matches its source.
        let interrupted = try await MigrationPostgres.shared.newDatabase()
        #expect(
            try migrate(interrupted.url, environment: ["CURBSIDE_TESTONLY_MIGRATE_STOP_AFTER_BATCHES": "1"]).status
                == SIGKILL
        )
        _ = try relay.enroll("osei.derm")
        let changed = try migrate(interrupted.url)
        #expect(changed.status == 1)
        #expect(
            changed.stderr.contains("relay.sqlite changed since the migration into database \(interrupted.name)"),
            "\(changed.stderr)"
        )
        #expect(changed.stderr.contains("curbside: hint: drop and create the target database again"))
        // Another relay's migration in it is refused too.
        let second = try RelayProcess(base: "\(base)/second")
        let otherSource = try Executable.run(["relay", "migrate", "--data", second.data, "--to", interrupted.url])
        #expect(otherSource.status == 1)
        #expect(
            otherSource.stderr.contains("holds a migration from another relay (\(relay.data)/relay.sqlite"),
            "\(otherSource.stderr)"
        )

        let nowhere =
            String(
                serving.url.prefix { $0 != "/" } + "//"
                    + serving.url.dropFirst("postgres://".count).prefix { $0 != "/" }
            ) + "/no_such_database"
        let unreachable = try migrate(nowhere)
        #expect(unreachable.status == 1)
        #expect(
            unreachable.stderr.contains("curbside: error: cannot use the database \(nowhere)"),
            "\(unreachable.stderr)"
        )
        #expect(unreachable.stderr.contains("3D000"), "the server's reason: \(unreachable.stderr)")

        let withPassword = try migrate("postgres://relay:hunter2@db/curbside")
        #expect(withPassword.status == 64)
        #expect(withPassword.stderr.contains("--to must not hold the password"))
        #expect(!withPassword.stderr.contains("hunter2"))

        #expect(try String(contentsOfFile: "\(relay.data)/relay.conf", encoding: .utf8) == conf)
        #expect(!FileManager.default.fileExists(atPath: "\(relay.data)/relay.conf.before-migrate"))
    }

    @Test func theDatabaseLineIsReplacedOrAdded() {
        let initialised =
            "listen = 127.0.0.1:4433\n\n## Database\n# sqlite or postgres\n# database = sqlite\n# database_password =\n"
        #expect(
            RelaySettings.settingDatabase("postgres://r@db/c", in: initialised)
                == "listen = 127.0.0.1:4433\n\n## Database\n# sqlite or postgres\n# database = sqlite\ndatabase = postgres://r@db/c\n# database_password =\n"
        )
        #expect(
            RelaySettings.settingDatabase("postgres://r@db/c", in: "a = 1\n  database=sqlite  # here\nb = 2\n")
                == "a = 1\ndatabase = postgres://r@db/c\nb = 2\n"
        )
        #expect(
            RelaySettings.settingDatabase("postgres://r@db/c", in: "a = 1\n") == "a = 1\ndatabase = postgres://r@db/c\n"
        )
    }
}
