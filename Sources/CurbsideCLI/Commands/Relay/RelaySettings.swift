import CurbsideClient
import CurbsideRelay
import CurbsideWire
import Logging

/// Everything relay.conf sets, with the environment's `CURBSIDE_RELAY_*` variables over it: where to listen, the
/// database, the log level and every limit of `RelayConfiguration` (docs/relay-configuration.md).
///
/// Made by `RelaySettings.read(…)`, which collects every problem instead of stopping at the first; `RelaySettingKey.all`
/// says how each key reads and prints.
struct RelaySettings {
    /// The relay's data directory, which holds relay.conf and, with SQLite, the store.
    let dataDirectory: String
    var listen = RelayEndpoint.Address(host: "127.0.0.1", port: 4433)
    /// The names `relay init` put in the TLS certificate; informational after that.
    var names: [String] = []
    /// `relay.sqlite` in the data directory unless `database` names PostgreSQL; a `database_password` is merged into
    /// the URL by `read`.
    var database: RelayDatabaseSetting
    /// `database_password` as set, kept apart so check-config can say where it came from; never printed.
    var databasePassword: String?
    /// Connections one relay process keeps open to PostgreSQL (not used with SQLite).
    var databasePoolSize = 10
    /// How often a relay on PostgreSQL looks for envelopes stored through other processes whose notification it may
    /// have missed (not used with SQLite).
    var pushCatchUpInterval: Duration = .seconds(1)
    var logLevel: Logger.Level = .info
    /// Every limit; `host` and `port` are kept equal to `listen` by `relayConfiguration`.
    var configuration = RelayConfiguration()
    /// Where each key that is not at its default was set.
    var sources: [String: RelaySettingSource] = [:]

    /// The defaults, for a relay whose data directory is `dataDirectory`.
    init(dataDirectory: String) {
        self.dataDirectory = dataDirectory
        database = .sqlite(path: RelayDataDirectory(path: dataDirectory).storePath)
    }

    /// The server's configuration: the limits, and the address from `listen`.
    var relayConfiguration: RelayConfiguration {
        var configuration = configuration
        configuration.host = listen.host
        configuration.port = listen.port
        configuration.pushCatchUpInterval = pushCatchUpInterval
        return configuration
    }

    /// The PostgreSQL store's settings from the `database` URL: its hosts in order (a host beginning with `/` is a
    /// socket directory, as libpq has it), the user, password and database, and the pool size.
    static func postgresSettings(_ url: PostgresURL, poolSize: Int) -> PostgresSettings {
        var settings = PostgresSettings(url: url)
        settings.maximumConnections = poolSize
        return settings
    }

    /// Opens the store `database` names, with its attachment storage: SQLite and files in the data directory, or
    /// PostgreSQL for both (its schema brought up to date).
    func openStore(logger: Logger, unsafeNoSync: Bool = false) async throws -> (store: any RelayStore, attachments: any AttachmentStorage) {
        switch database {
        case .sqlite(let path):
            let store = try SQLiteRelayStore(path: path, _testOnlyUnsafeNoSync: unsafeNoSync)
            return (store, try BlobStore(root: RelayDataDirectory(path: dataDirectory).attachmentsPath))
        case .postgres(let url):
            do {
                let store = try await PostgresRelayStore.open(settings: Self.postgresSettings(url, poolSize: databasePoolSize), logger: logger)
                return (store, PostgresAttachmentStorage(store: store))
            } catch let error as RelayError {
                throw CLIError(
                    "cannot use the database \(url): \(error.detail)",
                    hint: "check `database` in relay.conf and that a server on it accepts writes (`curbside relay check-config`)",
                    exitStatus: ExitStatus.network
                )
            }
        }
    }
}

/// Where a setting's value came from.
enum RelaySettingSource: Hashable, CustomStringConvertible {
    case file(path: String, line: Int)
    case environment(variable: String)

    var description: String {
        switch self {
        case .file(let path, let line): "\(path):\(line)"
        case .environment(let variable): variable
        }
    }
}
