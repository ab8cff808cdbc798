/// Which store a relay keeps its accounts and queues in: relay.conf's `database` setting, read.
///
/// `relay serve` opens a `SQLiteRelayStore` for `.sqlite` and a PostgreSQL store for `.postgres`; the URL's
/// `password` is already filled in from `database_password` or `CURBSIDE_RELAY_DATABASE_PASSWORD` when one is set.
public enum RelayDatabaseSetting: Sendable, Hashable, CustomStringConvertible {
    /// An SQLite file (WAL) on this machine: the default, `relay.sqlite` in the data directory.
    case sqlite(path: String)
    /// A PostgreSQL database, on one host or on a primary and its standbys.
    case postgres(PostgresURL)

    /// As relay.conf spells it, with a password redacted: `sqlite` or the URL.
    public var description: String {
        switch self {
        case .sqlite: "sqlite"
        case .postgres(let url): url.description
        }
    }
}
