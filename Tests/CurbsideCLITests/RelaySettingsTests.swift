import CurbsideClient
import CurbsideRelay
import Foundation
import Logging
import NIOCore
import Testing

@testable import CurbsideCLI

/// relay.conf's parser, without a process: values and units, lines, problems, the environment, the file init writes.
@Suite("relay settings")
struct RelaySettingsTests {
    let path = "/srv/curbside/relay.conf"

    func read(_ text: String, environment: [String: String] = [:]) -> (settings: RelaySettings, problems: [String]) {
        let (settings, problems) = RelaySettings.read(
            text: text,
            path: path,
            environment: environment,
            dataDirectory: "/srv/curbside"
        )
        return (settings, problems.map(\.description))
    }

    @Test(arguments: [
        ("4 GiB", UInt64(4) << 30), ("512MiB", 512 << 20), ("1_000_000", 1_000_000), ("10 MB", 10_000_000),
        ("64 kib", 64 << 10), ("7 B", 7), ("2 TiB", 2 << 40), ("0", 0),
    ])
    func sizes(text: String, bytes: UInt64) throws {
        #expect(try SettingValue.bytes(text) == bytes)
        #expect(try SettingValue.bytes(SettingValue.render(bytes: bytes)) == bytes, "rendering parses back")
    }

    @Test(arguments: [
        ("4 G", "\"4 G\" has unknown unit \"G\"; use B, KiB, MiB, GiB, TiB (or kB, MB, GB, TB)"),
        ("1.5 GiB", "\"1.5 GiB\" is not a size such as 4 GiB"),
        ("-1", "\"-1\" is not a size such as 4 GiB"),
        ("", "is empty; expected a size such as 4 GiB"),
        ("_1", "\"_1\" is not a size such as 4 GiB"),
        ("99999999999 TiB", "\"99999999999 TiB\" is too large"),
    ])
    func badSizes(text: String, message: String) {
        #expect(throws: SettingValueError(message)) { try SettingValue.bytes(text) }
    }

    @Test(arguments: [
        ("300s", Duration.seconds(300)), ("14d", .seconds(14 * 86_400)), ("5min", .seconds(300)),
        ("5 m", .seconds(300)),
        ("250ms", .milliseconds(250)), ("1h", .seconds(3600)), ("0s", .zero),
    ])
    func durations(text: String, duration: Duration) throws {
        #expect(try SettingValue.duration(text) == duration)
        #expect(try SettingValue.duration(SettingValue.render(duration: duration)) == duration, "rendering parses back")
    }

    @Test(arguments: [
        ("300", "\"300\" needs a unit: ms, s, min, h or d (such as 300s)"),
        ("2 weeks", "\"2 weeks\" has unknown unit \"weeks\"; use ms, s, min, h or d"),
        ("soon", "\"soon\" is not a duration such as 300s"),
    ])
    func badDurations(text: String, message: String) {
        #expect(throws: SettingValueError(message)) { try SettingValue.duration(text) }
    }

    @Test func lines() throws {
        func parsed(_ line: String) throws -> [String]? {
            try RelaySettings.parseLine(line).map { [$0.key, $0.value] }
        }
        #expect(try parsed("") == nil)
        #expect(try parsed("   # idle_timeout = 1s") == nil)
        #expect(try parsed("idle_timeout=1s") == ["idle_timeout", "1s"])
        #expect(try parsed("  idle_timeout  =  1s   # one second") == ["idle_timeout", "1s"])
        // A # inside a word is no comment, so a URL keeps it; a quoted value keeps anything.
        #expect(try parsed("database_password = s3cr#t") == ["database_password", "s3cr#t"])
        #expect(try parsed(#"database_password = "a # \"b\" \\ c"  # note"#) == ["database_password", #"a # "b" \ c"#])
        #expect(throws: SettingValueError("expected `key = value`")) { try RelaySettings.parseLine("idle_timeout 1s") }
        #expect(throws: SettingValueError("expected `key = value`; the key is missing")) {
            try RelaySettings.parseLine(" = 1s")
        }
        #expect(throws: SettingValueError("database_password: the opening quote has no closing quote")) {
            try RelaySettings.parseLine(#"database_password = "abc"#)
        }
        #expect(throws: SettingValueError("names: text after the closing quote")) {
            try RelaySettings.parseLine(#"names = "a" b"#)
        }
    }

    /// Every problem in one pass, each with the file, line, key and what is wrong; the good lines still apply.
    @Test func everyProblemIsReportedAtOnce() {
        let (settings, problems) = read(
            """
            listen = 0.0.0.0:4433
            IDLE_TIMEOUT = 30s
            idle_timeout = 300
            maximum_connections = 0
            this is not a setting line
            maximum_queued_bytes_per_account = 512 MiB
            maximum_queued_bytes_per_account = 3 GiB
            log_level = loud
            database = mysql://relay@db/curbside
            envelope_lifetime = 30d
            """
        )
        #expect(
            problems == [
                "\(path):2: IDLE_TIMEOUT: is not a setting; did you mean idle_timeout?",
                "\(path):3: idle_timeout: \"300\" needs a unit: ms, s, min, h or d (such as 300s)",
                "\(path):4: maximum_connections: 0 is out of range: expected 1 to 1000000",
                "\(path):5: expected `key = value`",
                "\(path):7: maximum_queued_bytes_per_account: is set twice (first on line 6)",
                "\(path):8: log_level: \"loud\" is not a log level; use trace, debug, info, notice, warning, error or critical",
                "\(path):9: database: must be sqlite or a postgres:// URL",
                // Reported at the line that set one of the two: the sender's share is at its default.
                "\(path):6: maximum_queued_bytes_per_account: maximum_queued_bytes_per_sender (1 GiB) exceeds "
                    + "maximum_queued_bytes_per_account (512 MiB)",
            ]
        )
        #expect(settings.listen == RelayEndpoint.Address(host: "0.0.0.0", port: 4433))
        #expect(settings.configuration.envelopeLifetimeSeconds == 30 * 86_400)
    }

    /// Environment variables win over the file, name themselves in problems, and an unknown one is a problem too.
    @Test func environmentOverridesTheFile() {
        let (settings, problems) = read(
            "idle_timeout = 300s\nmaximum_connections = 100\n",
            environment: [
                "CURBSIDE_RELAY_IDLE_TIMEOUT": "45s",
                "CURBSIDE_RELAY_MAXIMUM_QUEUED_BYTES_PER_ACCOUNT": "8 GiB",
                "CURBSIDE_RELAY_LOGIN_TIMEOUT": "5",
                "CURBSIDE_RELAY_IDLE_TIMEOT": "1s",
                "CURBSIDE_RELAY_idle_timeout": "2s",
                "CURBSIDE_RELAY_NAMES": "",
                "CURBSIDE_HOME": "/elsewhere",
            ]
        )
        #expect(
            problems == [
                "CURBSIDE_RELAY_IDLE_TIMEOT: idle_timeot: is not a setting; did you mean CURBSIDE_RELAY_IDLE_TIMEOUT?",
                "CURBSIDE_RELAY_LOGIN_TIMEOUT: login_timeout: \"5\" needs a unit: ms, s, min, h or d (such as 5s)",
                "CURBSIDE_RELAY_idle_timeout: idle_timeout: is not a setting; did you mean CURBSIDE_RELAY_IDLE_TIMEOUT?",
            ]
        )
        #expect(settings.configuration.idleTimeout == .seconds(45))
        #expect(settings.configuration.maximumQueuedBytesPerAccount == 8 << 30)
        #expect(settings.configuration.maximumConnections == 100)
        #expect(settings.sources["idle_timeout"] == .environment(variable: "CURBSIDE_RELAY_IDLE_TIMEOUT"))
        #expect(settings.sources["maximum_connections"] == .file(path: path, line: 2))
        #expect(settings.sources["names"] == nil, "an empty variable counts as unset")
    }

    /// A contradiction is reported where the operator wrote the value that made it, the environment counting last.
    @Test func contradictionsNameTheKeySetLast() {
        let problems = read(
            "maximum_connections = 16\n",
            environment: ["CURBSIDE_RELAY_MAXIMUM_FRAME_LENGTH": "32 MiB"]
        ).problems
        #expect(
            problems == [
                "\(path):1: maximum_connections: maximum_connections_per_address (32) exceeds maximum_connections (16)",
                "CURBSIDE_RELAY_MAXIMUM_FRAME_LENGTH: maximum_frame_length: maximum_buffered_frame_bytes_per_account "
                    + "(16 MiB) is below maximum_frame_length (32 MiB): the largest frames would always be `relay_busy`",
            ]
        )
    }

    /// The password reaches the URL the store connects with, from the file or (winning) the environment, and no
    /// problem, listing or file text shows it.
    @Test func databaseAndPassword() throws {
        let text =
            "database = postgres://relay@db1:5432,db2:5433/curbside?sslmode=require\ndatabase_password = from-file\n"
        let fromFile = read(text)
        #expect(fromFile.problems.isEmpty)
        guard case .postgres(let url) = fromFile.settings.database else {
            Issue.record("not postgres: \(fromFile.settings.database)")
            return
        }
        #expect(url.hosts.map(\.port) == [5432, 5433])
        #expect(url.password == "from-file")
        let fromEnvironment = read(text, environment: ["CURBSIDE_RELAY_DATABASE_PASSWORD": "from-environment"])
        guard case .postgres(let overridden) = fromEnvironment.settings.database else { return }
        #expect(overridden.password == "from-environment")
        let shown = fromEnvironment.settings.effective.map { "\($0.key) \($0.value) \($0.source)" }.joined(
            separator: "\n"
        )
        #expect(shown.contains("database_password <redacted> CURBSIDE_RELAY_DATABASE_PASSWORD"))
        #expect(!shown.contains("from-"))
        #expect(!fromEnvironment.settings.fileText.contains("from-"))

        #expect(read("").settings.database == .sqlite(path: "/srv/curbside/relay.sqlite"))
        #expect(read("database = sqlite").settings.database == .sqlite(path: "/srv/curbside/relay.sqlite"))
        #expect(
            read("database = postgres://relay@db:0/curbside").problems
                == ["\(path):1: database: postgres URL host 1 (db) has port \"0\"; expected 1 to 65535"]
        )
    }

    /// The file `relay init` writes lists every key and reads back, without problems, as the settings it was made from.
    @Test func theWrittenFileListsEveryKeyAndReadsBack() throws {
        var settings = RelaySettings(dataDirectory: "/srv/curbside")
        settings.listen = RelayEndpoint.Address(host: "0.0.0.0", port: 4433)
        settings.names = ["relay.clinic.example", "10.0.0.7"]
        settings.database = .postgres(try PostgresURL(parsing: "postgres://relay@db1,db2:5433/curbside"))
        let text = settings.fileText
        for key in RelaySettingKey.all {
            #expect(text.contains("\n\(key.name) =") || text.contains("\n# \(key.name) ="), "\(key.name) is listed")
        }
        let (reread, problems) = read(text)
        #expect(problems.isEmpty)
        #expect(reread.listen == settings.listen)
        #expect(reread.names == settings.names)
        #expect(reread.database == settings.database)
        for key in RelaySettingKey.all {
            #expect(key.get(reread) == key.get(settings), "\(key.name)")
        }
        // Each commented-out default, uncommented, is accepted and changes nothing.
        let uncommented = text.split(separator: "\n").map { line in
            let setting = line.dropFirst(2).prefix { $0 != " " }
            let isSetting =
                line.hasPrefix("# ") && RelaySettingKey.named(String(setting)) != nil && setting != "database_password"
            return isSetting ? String(line.dropFirst(2)) : String(line)
        }.joined(separator: "\n")
        let (same, noProblems) = read(uncommented)
        #expect(noProblems.isEmpty)
        for key in RelaySettingKey.all { #expect(key.get(same) == key.get(settings), "\(key.name)") }
    }

    /// Every key can be set to each end of its range, and the relay's configuration gets exactly that.
    @Test func everyKeyReachesTheConfiguration() throws {
        let (settings, problems) = read(
            """
            listen = [::1]:5000
            log_level = debug
            handshake_timeout = 2s
            login_timeout = 3s
            idle_timeout = 4min
            maximum_connections = 2000
            maximum_connections_per_address = 20
            maximum_concurrent_logins_per_address = 9
            maximum_login_failures = 7
            login_failure_window = 2min
            shutdown_grace_period = 0s
            maximum_frame_length = 8 MiB
            maximum_frame_length_before_login = 2 KiB
            maximum_buffered_frame_bytes = 256 MiB
            maximum_buffered_frame_bytes_per_account = 32 MiB
            unbudgeted_frame_length = 32 KiB
            maximum_queued_envelopes_per_account = 20000
            maximum_queued_bytes_per_account = 8 GiB
            maximum_queued_envelopes_per_sender = 2000
            maximum_queued_bytes_per_sender = 2 GiB
            maximum_new_recipients_per_sender = 30
            new_recipient_window = 2h
            envelope_lifetime = 30d
            expiry_sweep_interval = 30s
            maximum_attachment_bytes_per_account = 1 GiB
            maximum_attachments_per_account = 100
            upload_lifetime = 2d
            minimum_free_disk_bytes = 1 GiB
            one_time_prekeys_per_requester = 5
            one_time_prekey_refill_interval = 2min
            database_pool_size = 4
            push_catch_up_interval = 500ms
            account_check_interval = 20s
            """
        )
        #expect(problems.isEmpty)
        let c = settings.relayConfiguration
        #expect(c.host == "::1" && c.port == 5000)
        #expect(settings.logLevel == .debug)
        #expect(c.handshakeTimeout == .seconds(2) && c.loginTimeout == .seconds(3) && c.idleTimeout == .minutes(4))
        #expect(c.maximumConnections == 2000 && c.maximumConnectionsPerAddress == 20)
        #expect(c.maximumConcurrentLoginsPerAddress == 9 && c.maximumLoginFailures == 7)
        #expect(c.loginFailureWindow == .minutes(2) && c.shutdownGracePeriod == .zero)
        #expect(c.maximumFrameLength == 8 << 20 && c.maximumFrameLengthBeforeLogin == 2 << 10)
        #expect(c.maximumBufferedFrameBytes == 256 << 20 && c.maximumBufferedFrameBytesPerAccount == 32 << 20)
        #expect(c.unbudgetedFrameLength == 32 << 10)
        #expect(c.maximumQueuedEnvelopesPerAccount == 20_000 && c.maximumQueuedBytesPerAccount == 8 << 30)
        #expect(c.maximumQueuedEnvelopesPerSender == 2000 && c.maximumQueuedBytesPerSender == 2 << 30)
        #expect(c.maximumNewRecipientsPerSender == 30 && c.newRecipientWindow == .hours(2))
        #expect(c.envelopeLifetimeSeconds == 30 * 86_400 && c.expirySweepInterval == .seconds(30))
        #expect(c.maximumAttachmentBytesPerAccount == 1 << 30 && c.maximumAttachmentsPerAccount == 100)
        #expect(c.uploadLifetimeSeconds == 2 * 86_400 && c.minimumFreeDiskBytes == 1 << 30)
        #expect(c.oneTimePrekeysPerRequester == 5 && c.oneTimePrekeyRefillInterval == .minutes(2))
        #expect(settings.databasePoolSize == 4 && settings.pushCatchUpInterval == .milliseconds(500))
        #expect(c.accountCheckInterval == .seconds(20))
        // Every key was set, so every key is covered here.
        #expect(
            Set(settings.sources.keys)
                == Set(RelaySettingKey.all.map(\.name)).subtracting(["names", "database", "database_password"])
        )
    }

    /// docs/relay-configuration.md describes every key with its default and its variable, so it cannot drift.
    @Test func theDocumentationListsEveryKey() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/relay-configuration.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        let defaults = RelaySettings(dataDirectory: "/srv/curbside")
        for key in RelaySettingKey.all {
            let row = text.split(separator: "\n").first { $0.hasPrefix("| `\(key.name)` ") }
            #expect(row != nil, "\(key.name) has a row")
            guard let row, !key.isSecret, key.name != "names" else { continue }
            #expect(row.contains("`\(key.get(defaults) ?? "")`"), "\(key.name)'s default in \(row)")
        }
        #expect(text.contains("CURBSIDE_RELAY_"))
    }
}
