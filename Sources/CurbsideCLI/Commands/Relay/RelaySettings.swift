import CurbsideRelay
import Logging

/// Everything relay.conf sets, with the environment's `CURBSIDE_RELAY_*` variables over it: where to listen, the
/// database, the log level and every limit of `RelayConfiguration` (docs/relay-configuration.md).
///
/// Made by `RelaySettings.read(…)`, which collects every problem instead of stopping at the first; `RelaySettingKey.all`
/// says how each key reads and prints.
struct RelaySettings {
    /// The relay's data directory, which holds relay.conf and, with SQLite, the store.
    let dataDirectory: String
    var listen = HostPort(host: "127.0.0.1", port: 4433)
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
        return configuration
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
