import CurbsideClient
import CurbsideRelay
import CurbsideWire
import Logging
import NIOCore

/// One key of relay.conf: its name, a one-line explanation, how its text is read into `RelaySettings` (range checked)
/// and how the value in effect is printed. `all` is the whole file, in the order `relay init` writes it.
struct RelaySettingKey {
    let name: String
    /// The heading it is listed under in relay.conf and the documentation.
    let section: String
    /// One line for relay.conf and the documentation.
    let help: String
    /// A password: its value is never printed, quoted in a problem, or written by `relay init`.
    var isSecret = false
    /// Reads `text` into the settings, or says what is wrong with it.
    let set: (_ text: String, _ settings: inout RelaySettings) throws(SettingValueError) -> Void
    /// The value in effect as relay.conf would spell it; nil when unset (a password).
    let get: (RelaySettings) -> String?

    /// `CURBSIDE_RELAY_` and the name in capitals.
    var environmentVariable: String { RelaySettingKey.environmentPrefix + name.uppercased() }

    static let environmentPrefix = "CURBSIDE_RELAY_"

    static func named(_ name: String) -> RelaySettingKey? { all.first { $0.name == name } }

    /// Every key, grouped by section. Computed, not stored: the closures capture key paths.
    static var all: [RelaySettingKey] {
        [
            RelaySettingKey(
                name: "listen",
                section: "Server",
                help: "Address and port to listen on; an IPv6 address goes in brackets ([::]:4433).",
                set: { text, settings throws(SettingValueError) in
                    guard let address = RelayEndpoint.Address(text.trimmingSpaces) else {
                        throw SettingValueError(
                            "\"\(text)\" is not HOST:PORT with a port from 0 to 65535, such as 0.0.0.0:4433"
                        )
                    }
                    settings.listen = address
                },
                get: { $0.listen.description }
            ),
            RelaySettingKey(
                name: "names",
                section: "Server",
                help:
                    "Host names and addresses in the TLS certificate, comma-separated (relay init made it with them).",
                set: { text, settings throws(SettingValueError) in
                    let names = text.split(separator: ",").map(\.trimmingSpaces)
                    if let bad = names.first(where: { $0.isEmpty || $0.contains(where: { $0 == " " || $0 == "\t" }) }) {
                        throw SettingValueError("\"\(bad)\" is not a host name or address")
                    }
                    settings.names = names
                },
                get: { $0.names.joined(separator: ",") }
            ),
            RelaySettingKey(
                name: "log_level",
                section: "Server",
                help:
                    "Least severe log lines written to stderr: trace, debug, info, notice, warning, error or critical.",
                set: { text, settings throws(SettingValueError) in
                    guard let level = Logger.Level(rawValue: text.trimmingSpaces.lowercased()) else {
                        throw SettingValueError(
                            "\"\(text)\" is not a log level; use trace, debug, info, notice, warning, error or critical"
                        )
                    }
                    settings.logLevel = level
                },
                get: { $0.logLevel.rawValue }
            ),
            RelaySettingKey(
                name: "database",
                section: "Database",
                help:
                    "sqlite (relay.sqlite in this directory) or postgres://USER@HOST[:PORT][,HOST[:PORT]...]/DATABASE.",
                set: { text, settings throws(SettingValueError) in
                    let value = text.trimmingSpaces
                    if value == "sqlite" {
                        settings.database = .sqlite(path: RelayDataDirectory(path: settings.dataDirectory).storePath)
                        return
                    }
                    guard value.lowercased().hasPrefix("postgres") else {
                        throw SettingValueError("must be sqlite or a postgres:// URL")
                    }
                    do throws(PostgresURLError) {
                        settings.database = .postgres(try PostgresURL(parsing: value))
                    } catch {
                        throw SettingValueError("postgres URL \(error.message)")
                    }
                },
                get: { $0.database.description }
            ),
            RelaySettingKey(
                name: "database_password",
                section: "Database",
                help: "The PostgreSQL password; better set CURBSIDE_RELAY_DATABASE_PASSWORD than write it here.",
                isSecret: true,
                set: { text, settings throws(SettingValueError) in
                    guard !text.isEmpty else { throw SettingValueError("is empty") }
                    settings.databasePassword = text
                },
                get: { $0.databasePassword == nil ? nil : "<redacted>" }
            ),
            .setting(
                "database_pool_size",
                \.databasePoolSize,
                1...1000,
                as: .count,
                section: "Database",
                "Connections this relay process keeps open to PostgreSQL (not used with SQLite)."
            ),
            .setting(
                "push_catch_up_interval",
                \.pushCatchUpInterval,
                .milliseconds(100) ... .seconds(600),
                as: .duration,
                section: "Database",
                "How often a relay on PostgreSQL looks for consults stored through other processes, should a notification be lost."
            ),

            .setting(
                "handshake_timeout",
                \.configuration.handshakeTimeout,
                .seconds(1) ... .seconds(600),
                as: .duration,
                section: "Connections",
                "Time allowed from accepting a connection to completing TLS."
            ),
            .setting(
                "login_timeout",
                \.configuration.loginTimeout,
                .seconds(1) ... .seconds(3600),
                as: .duration,
                section: "Connections",
                "Time allowed from the challenge to a successful login; then `timeout` and the connection closes."
            ),
            .setting(
                "idle_timeout",
                \.configuration.idleTimeout,
                .seconds(1) ... .seconds(7 * 86_400),
                as: .duration,
                section: "Connections",
                "A connection that sends nothing for this long is told `timeout` and closed."
            ),
            .setting(
                "maximum_connections",
                \.configuration.maximumConnections,
                1...1_000_000,
                as: .count,
                section: "Connections",
                "Connections open at once; more are closed as soon as they are accepted."
            ),
            .setting(
                "maximum_connections_per_address",
                \.configuration.maximumConnectionsPerAddress,
                1...1_000_000,
                as: .count,
                section: "Connections",
                "Connections open at once from one client address."
            ),
            .setting(
                "maximum_concurrent_logins_per_address",
                \.configuration.maximumConcurrentLoginsPerAddress,
                1...10_000,
                as: .count,
                section: "Connections",
                "Login attempts from one address under way at once."
            ),
            .setting(
                "maximum_login_failures",
                \.configuration.maximumLoginFailures,
                1...1000,
                as: .count,
                section: "Connections",
                "Failed logins per client address and handle within login_failure_window before `rate_limited`."
            ),
            .setting(
                "login_failure_window",
                \.configuration.loginFailureWindow,
                .seconds(1) ... .seconds(86_400),
                as: .duration,
                section: "Connections",
                "The window in which maximum_login_failures are counted."
            ),
            .setting(
                "shutdown_grace_period",
                \.configuration.shutdownGracePeriod,
                .zero ... .seconds(600),
                as: .duration,
                section: "Connections",
                "On SIGTERM or SIGINT, how long busy connections get to answer before they are closed regardless."
            ),
            .setting(
                "account_check_interval",
                \.configuration.accountCheckInterval,
                .seconds(1) ... .seconds(600),
                as: .duration,
                section: "Connections",
                "How often logged-in connections are checked against the store: an account revoked or given a new key since it logged in (by this process or another) is told login_failed and closed within this time."
            ),

            .setting(
                "maximum_frame_length",
                \.configuration.maximumFrameLength,
                Frame.protocolMaximumLength...(1 << 30),
                as: .bytes,
                section: "Frames",
                "The largest frame accepted after login (spec/relay.md §Framing: at least 4 MiB)."
            ),
            .setting(
                "maximum_frame_length_before_login",
                \.configuration.maximumFrameLengthBeforeLogin,
                256...(64 << 10),
                as: .bytes,
                section: "Frames",
                "The largest frame accepted before login (a login or register frame is under 200 bytes)."
            ),
            .setting(
                "maximum_buffered_frame_bytes",
                \.configuration.maximumBufferedFrameBytes,
                Frame.protocolMaximumLength...(64 << 30),
                as: .bytes,
                section: "Frames",
                "Bytes of partly received large frames held for all connections together; beyond it, `relay_busy`."
            ),
            .setting(
                "maximum_buffered_frame_bytes_per_account",
                \.configuration.maximumBufferedFrameBytesPerAccount,
                Frame.protocolMaximumLength...(64 << 30),
                as: .bytes,
                section: "Frames",
                "The share of that budget one account may hold at once."
            ),
            .setting(
                "unbudgeted_frame_length",
                \.configuration.unbudgetedFrameLength,
                (1 << 10)...(64 << 20),
                as: .bytes,
                section: "Frames",
                "Frames up to this length are never refused for the budget."
            ),

            .setting(
                "maximum_queued_envelopes_per_account",
                \.configuration.maximumQueuedEnvelopesPerAccount,
                1...100_000_000,
                as: .count,
                section: "Queues",
                "Envelopes waiting for one recipient; a send beyond it is `quota_exceeded`."
            ),
            .setting(
                "maximum_queued_bytes_per_account",
                \.configuration.maximumQueuedBytesPerAccount,
                Frame.protocolMaximumLength...(1 << 44),
                as: .bytes,
                section: "Queues",
                "Bytes waiting for one recipient, attachments counted for each envelope that names them."
            ),
            .setting(
                "maximum_queued_envelopes_per_sender",
                \.configuration.maximumQueuedEnvelopesPerSender,
                1...100_000_000,
                as: .count,
                section: "Queues",
                "Envelopes from one sender waiting for one recipient."
            ),
            .setting(
                "maximum_queued_bytes_per_sender",
                \.configuration.maximumQueuedBytesPerSender,
                Frame.protocolMaximumLength...(1 << 44),
                as: .bytes,
                section: "Queues",
                "Bytes from one sender waiting for one recipient, counted the same way."
            ),
            .setting(
                "maximum_new_recipients_per_sender",
                \.configuration.maximumNewRecipientsPerSender,
                1...100_000,
                as: .count,
                section: "Queues",
                "Recipients a sender may start writing to within new_recipient_window; one more is `rate_limited`."
            ),
            .setting(
                "new_recipient_window",
                \.configuration.newRecipientWindow,
                .seconds(60) ... .seconds(30 * 86_400),
                as: .duration,
                section: "Queues",
                "The window in which maximum_new_recipients_per_sender are counted."
            ),
            .setting(
                "envelope_lifetime",
                \.configuration.envelopeLifetimeSeconds,
                .seconds(3600) ... .seconds(365 * 86_400),
                as: .wholeSeconds,
                section: "Queues",
                "How long an envelope waits for its recipient before it is deleted with an expiry notice."
            ),
            .setting(
                "expiry_sweep_interval",
                \.configuration.expirySweepInterval,
                .seconds(1) ... .seconds(86_400),
                as: .duration,
                section: "Queues",
                "How often the relay looks for expired envelopes."
            ),

            .setting(
                "maximum_attachment_bytes_per_account",
                \.configuration.maximumAttachmentBytesPerAccount,
                UInt64(1 << 20)...(1 << 44),
                as: .bytes,
                section: "Attachments",
                "Bytes of attachments one account may hold (uploads counted at their declared size)."
            ),
            .setting(
                "maximum_attachments_per_account",
                \.configuration.maximumAttachmentsPerAccount,
                1...100_000,
                as: .count,
                section: "Attachments",
                "Uploads and attachments one account may hold at once, whatever their size."
            ),
            .setting(
                "upload_lifetime",
                \.configuration.uploadLifetimeSeconds,
                .seconds(3600) ... .seconds(365 * 86_400),
                as: .wholeSeconds,
                section: "Attachments",
                "How long an upload is kept, from its opening or commit, unless an envelope names it."
            ),
            .setting(
                "minimum_free_disk_bytes",
                \.configuration.minimumFreeDiskBytes,
                UInt64(0)...(1 << 40),
                as: .bytes,
                section: "Attachments",
                "Free disk kept for acknowledgements: below it new consults and uploads get `storage_full`."
            ),

            .setting(
                "one_time_prekeys_per_requester",
                \.configuration.oneTimePrekeysPerRequester,
                1...1000,
                as: .count,
                section: "Key directory",
                "One-time prekeys one account may take from another's bundles at once."
            ),
            .setting(
                "one_time_prekey_refill_interval",
                \.configuration.oneTimePrekeyRefillInterval,
                .seconds(1) ... .seconds(86_400),
                as: .duration,
                section: "Key directory",
                "After those, one more per this interval."
            ),
        ]
    }
}

// A key read in a unit (`SettingKind`) and range-checked: the builder most keys use.
extension RelaySettingKey {
    static func setting<Value: Comparable, Stored>(
        _ name: String,
        _ path: WritableKeyPath<RelaySettings, Stored>,
        _ range: ClosedRange<Value>,
        as kind: SettingKind<Value, Stored>,
        section: String,
        _ help: String
    ) -> Self {
        RelaySettingKey(
            name: name,
            section: section,
            help: help,
            set: { text, settings throws(SettingValueError) in
                let value = try kind.read(text)
                guard range.contains(value) else {
                    throw SettingValueError(
                        "\(kind.print(value)) is out of range: expected \(kind.print(range.lowerBound)) to "
                            + kind.print(range.upperBound)
                    )
                }
                settings[keyPath: path] = try kind.store(value)
            },
            get: { kind.print(kind.load($0[keyPath: path])) }
        )
    }
}

/// How a kind of value reads and prints (`SettingValue`), and how it is kept in `RelaySettings` (an `Int` of bytes, a
/// `TimeAmount`, whole seconds).
struct SettingKind<Value: Comparable, Stored> {
    let read: (String) throws(SettingValueError) -> Value
    let print: (Value) -> String
    let store: (Value) throws(SettingValueError) -> Stored
    let load: (Stored) -> Value
}

extension SettingKind where Value == Int, Stored == Int {
    static var count: Self { Self(read: SettingValue.count, print: { "\($0)" }, store: { $0 }, load: { $0 }) }

    static var bytes: Self {
        Self(
            read: { text throws(SettingValueError) in
                guard let bytes = Int(exactly: try SettingValue.bytes(text)) else {
                    throw SettingValueError("\"\(text)\" is too large")
                }
                return bytes
            },
            print: { SettingValue.render(bytes: UInt64($0)) },
            store: { $0 },
            load: { $0 }
        )
    }
}

extension SettingKind where Value == UInt64, Stored == UInt64 {
    static var bytes: Self {
        Self(read: SettingValue.bytes, print: SettingValue.render(bytes:), store: { $0 }, load: { $0 })
    }
}

extension SettingKind where Value == Duration, Stored == Duration {
    static var duration: Self {
        Self(read: SettingValue.duration, print: SettingValue.render(duration:), store: { $0 }, load: { $0 })
    }
}

extension SettingKind where Value == Duration, Stored == TimeAmount {
    static var duration: Self {
        Self(
            read: SettingValue.duration,
            print: SettingValue.render(duration:),
            store: TimeAmount.init,
            load: Duration.init
        )
    }
}

extension SettingKind where Value == Duration, Stored == UInt64 {
    /// A duration kept as whole seconds (the store's lifetimes).
    static var wholeSeconds: Self {
        Self(
            read: SettingValue.duration,
            print: SettingValue.render(duration:),
            store: { value throws(SettingValueError) in
                guard value.components.attoseconds == 0 else {
                    throw SettingValueError("\(SettingValue.render(duration: value)) is not a whole number of seconds")
                }
                return UInt64(value.components.seconds)
            },
            load: { .seconds($0) }
        )
    }
}
