import ArgumentParser
import CurbsideRelay
import CurbsideWire
import Foundation
import Logging

extension Curbside.Relay {
    /// Moves a relay from SQLite to PostgreSQL: copies, verifies, and points relay.conf at the database.
    struct RelayMigrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "migrate",
            abstract:
                "Copy a SQLite relay into an empty PostgreSQL database, verify the copy, and point relay.conf at it.",
            discussion: """
                Stop the relay first. relay.sqlite is locked for the whole run: the command refuses to start while \
                `relay serve` (or `relay status`, `relay enroll`) has it open, and no relay can open it until the \
                command ends.

                Copies accounts, enrollments, prekeys, queued envelopes, sender notices and attachments (committed \
                ones, and half-done uploads as far as they got) into a database that holds nothing yet, in batches, \
                each its own transaction. Interrupted, run it again with the same --data and --to: it continues after \
                the last batch it committed. Then it compares every table's row count and SHA-256, and every \
                attachment's bytes, between the two, prints them, and fails on any difference.

                Once verified, relay.conf's `database` line is set to the --to URL (the previous file is kept as \
                relay.conf.before-migrate; --keep-config leaves relay.conf alone and prints the line to set). The data \
                directory keeps the relay's TLS certificate and key, so clients go on without any change. relay.sqlite \
                and attachments/ are left as they were.

                The password comes from CURBSIDE_RELAY_DATABASE_PASSWORD or database_password in relay.conf, never \
                from the command line.
                """
        )

        @OptionGroup var options: RelayDataOption

        @Option(
            help: ArgumentHelp(
                "The PostgreSQL database to copy into, empty: postgres://USER@HOST[:PORT][,HOST[:PORT]...]/DATABASE, "
                    + "without the password.",
                valueName: "postgres-url"
            )
        )
        var to: String

        @Option(help: ArgumentHelp("Rows copied per transaction.", valueName: "rows"))
        var batchSize = 500

        @Flag(help: "Leave relay.conf as it is; print the line to set instead.")
        var keepConfig = false

        func validate() throws {
            _ = try PostgresURL.commandLineValue(to, option: "--to")
            guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1 to 100000") }
        }

        func run() async throws {
            let directory = options.directory
            let settings = try directory.readSettings()
            var url = try PostgresURL.commandLineValue(to, option: "--to")
            if case .postgres(let configured) = settings.database, !configured.namesSameDatabase(as: url) {
                throw CLIError(
                    "relay.conf names another database (\(configured)); this relay does not run on SQLite",
                    hint: "give --data the directory of the relay that runs on relay.sqlite"
                )
            }
            url.password = settings.databasePassword
            try directory.makePrivate()
            var migrationOptions = RelayMigration.Options()
            migrationOptions.batchRows = batchSize
            let migration = RelayMigration(
                storePath: directory.storePath,
                attachmentsPath: directory.attachmentsPath,
                target: RelaySettings.postgresSettings(url, poolSize: 1),
                options: migrationOptions,
                // At info the pool says why a server could not be used (no such database, a refused password).
                logger: Logger(label: "curbside.relay.migrate") { _ in RelayLogHandler(logLevel: .info) }
            )
            print("migrating \(directory.storePath) to \(url)")
            let started = ContinuousClock.now
            let outcome: RelayMigration.Outcome
            do {
                outcome = try await migration.run(onEvent: Self.report)
            } catch let error as RelayMigrationError {
                if !error.checks.isEmpty { print(Self.table(error.checks)) }
                throw CLIError(error.message + "; relay.conf was not changed", hint: error.hint)
            } catch let error as RelayError {
                throw CLIError(
                    "cannot use the database \(url): \(error.detail)",
                    hint:
                        "check the URL and that the server accepts writes; a password goes in CURBSIDE_RELAY_DATABASE_PASSWORD"
                )
            }
            switch outcome {
            case .alreadyMigrated(let startedAt, let finishedAt):
                print(
                    "already migrated: this relay was copied into the database from \(startedAt) to \(finishedAt); nothing to do"
                )
            case .migrated(let report):
                print("verified: every table and every attachment's bytes agree")
                print(Self.table(report.checks))
                let elapsed = (ContinuousClock.now - started).components
                let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
                print(
                    "migrated in \(String(format: "%.1f", seconds)) s: "
                        + "\(report.checks.first { $0.name == "envelope" }?.target.rows ?? 0) queued envelopes, "
                        + "\(report.attachments) attachments (\(report.partialAttachments) half-uploaded, "
                        + "\(ProgressBar.bytes(UInt64(report.attachmentBytes))))"
                        + (report.resumedAt.map { ", resumed at \($0.rawValue)" } ?? "")
                )
                if report.orphanFiles > 0 {
                    print("left alone: \(report.orphanFiles) attachment files that relay.sqlite does not name")
                }
            }
            try pointConfiguration(at: to, directory: directory, settings: settings)
        }

        /// Prints what a run does as it goes; `CURBSIDE_TESTONLY_MIGRATE_STOP_AFTER_BATCHES=N` kills the process
        /// (SIGKILL, nothing cleaned up) once N batches have committed, for the tests that interrupt a migration.
        @Sendable static func report(_ event: RelayMigration.Event) {
            switch event {
            case .resuming(let step, let startedAt):
                print("resuming the migration begun at \(startedAt), at \(step.rawValue)")
            case .batchCommitted(_, _, _, let batches):
                if let stop = ProcessInfo.processInfo.environment["CURBSIDE_TESTONLY_MIGRATE_STOP_AFTER_BATCHES"]
                    .flatMap(Int.init),
                    batches >= stop
                {
                    kill(getpid(), SIGKILL)
                }
            case .stepFinished(let step, let rows, let bytes):
                let what =
                    step == .attachmentBytes ? "\(rows) chunks, \(ProgressBar.bytes(UInt64(bytes)))" : "\(rows) rows"
                print("copied   \(step.rawValue.padding(toLength: 18, withPad: " ", startingAt: 0)) \(what)")
            case .verifying:
                print("verifying")
            }
            fflush(nil)
        }

        /// The checks as a table: rows on each side and the SHA-256, both when they differ.
        static func table(_ checks: [RelayMigration.Check]) -> String {
            var lines = ["table                   source    target  sha-256"]
            for check in checks {
                let name = check.name.padding(toLength: 20, withPad: " ", startingAt: 0)
                let counts =
                    String(repeating: " ", count: max(0, 9 - "\(check.source.rows)".count)) + "\(check.source.rows)"
                    + String(repeating: " ", count: max(0, 10 - "\(check.target.rows)".count)) + "\(check.target.rows)"
                if check.matches {
                    lines.append("\(name)\(counts)  \(check.source.sha256.hexString)")
                } else {
                    lines.append("\(name)\(counts)  DIFFERS source \(check.source.sha256.hexString)")
                    lines.append(String(repeating: " ", count: 49) + "target \(check.target.sha256.hexString)")
                }
            }
            return lines.joined(separator: "\n")
        }

        /// Sets relay.conf's `database` to `url` (keeping the old file as relay.conf.before-migrate), or with
        /// --keep-config says what to set; says when the environment overrides the file.
        private func pointConfiguration(at url: String, directory: RelayDataDirectory, settings: RelaySettings) throws {
            let environment = ProcessInfo.processInfo.environment
            if let overriding = environment["CURBSIDE_RELAY_DATABASE"], !overriding.isEmpty {
                print(
                    "note: CURBSIDE_RELAY_DATABASE is set here and wins over relay.conf; where the relay runs, set it to \(url)"
                )
            }
            if case .postgres = settings.database {
                print("relay.conf already names the database")
                return
            }
            if keepConfig {
                print("relay.conf left as it is; to serve from PostgreSQL, set in it: database = \(url)")
                return
            }
            let path = directory.configurationPath
            let backup = path + ".before-migrate"
            let text = try String(contentsOfFile: path, encoding: .utf8)
            if !FileManager.default.fileExists(atPath: backup) {
                try Data(text.utf8).write(to: URL(fileURLWithPath: backup))
            }
            try Data(RelaySettings.settingDatabase(url, in: text).utf8).write(
                to: URL(fileURLWithPath: path),
                options: .atomic
            )
            try directory.makePrivate()
            // What was written must read back; otherwise the relay is left as it was.
            guard try directory.readSettingsCollectingProblems().problems.isEmpty else {
                try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
                throw CLIError(
                    "relay.conf could not be set to the database; it was left as it was",
                    hint:
                        "set `database = \(url)` in \(path) yourself, then run `curbside relay check-config --data \(directory.path)`"
                )
            }
            print("relay.conf: database = \(url) (the previous file is \(backup))")
            print(
                "next: curbside relay serve --data \(directory.path), with the database password where the relay runs if it needs one"
            )
        }
    }
}

extension PostgresURL {
    /// Whether `other` names the same database on the same servers as the same user (password and options aside).
    func namesSameDatabase(as other: PostgresURL) -> Bool {
        hosts == other.hosts && user == other.user && database == other.database
    }
}
