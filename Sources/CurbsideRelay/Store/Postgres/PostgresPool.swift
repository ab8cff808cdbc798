import CurbsideWire
import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO

/// Where and as whom the relay reaches PostgreSQL: one or more servers, of which it uses the one that accepts writes.
public struct PostgresSettings: Sendable, Hashable {
    /// One server: a host and port, or a Unix socket's path (its directory and `.s.PGSQL.<port>`).
    public enum Server: Sendable, Hashable, CustomStringConvertible {
        case tcp(host: String, port: Int)
        case unixSocket(path: String)

        public var description: String {
            switch self {
            case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            case .unixSocket(let path): path
            }
        }
    }

    /// Tried in order; the first that accepts writes is used (libpq's `target_session_attrs=read-write`).
    public var servers: [Server]
    public var username: String
    /// Never logged; from the environment or the configuration file.
    public var password: String?
    public var database: String
    /// Connections one relay process keeps to the server it writes to.
    public var maximumConnections: Int = 16
    /// How long connecting to one server may take; also how often a request waiting for a connection checks that its
    /// server is still there (if not, the request is answered `store_unavailable`).
    public var connectTimeout: Duration = .seconds(3)

    public init(servers: [Server], username: String, password: String? = nil, database: String) {
        self.servers = servers
        self.username = username
        self.password = password
        self.database = database
    }

    /// The servers, user, password and database a `database` URL names, in its order (a host beginning with `/` is a
    /// socket directory, as libpq has it), and its `connect_timeout`.
    public init(url: PostgresURL) {
        self.init(
            servers: url.hosts.map { host in
                host.unixSocketPath.map { .unixSocket(path: $0) } ?? .tcp(host: host.host, port: host.port)
            },
            username: url.user,
            password: url.password,
            database: url.database
        )
        if let timeout = url.options["connect_timeout"].flatMap(Int.init) { connectTimeout = .seconds(timeout) }
    }

    func connectionConfiguration(_ server: Server) -> PostgresConnection.Configuration {
        var configuration =
            switch server {
            case .tcp(let host, let port):
                PostgresConnection.Configuration(host: host, port: port, username: username, password: password, database: database, tls: .disable)
            case .unixSocket(let path):
                PostgresConnection.Configuration(unixSocketPath: path, username: username, password: password, database: database)
            }
        configuration.options.connectTimeout = .nanoseconds(Int64(connectTimeout.components.seconds) * 1_000_000_000)
        configuration.options.additionalStartupParameters = Self.startupParameters
        return configuration
    }

    func clientConfiguration(_ server: Server) -> PostgresClient.Configuration {
        var configuration =
            switch server {
            case .tcp(let host, let port):
                PostgresClient.Configuration(host: host, port: port, username: username, password: password, database: database, tls: .disable)
            case .unixSocket(let path):
                PostgresClient.Configuration(unixSocketPath: path, username: username, password: password, database: database)
            }
        configuration.options.connectTimeout = connectTimeout
        configuration.options.maximumConnections = maximumConnections
        configuration.options.additionalStartupParameters = Self.startupParameters
        return configuration
    }

    /// Every connection commits durably (on a synchronous standby too, when the primary names one): a `stored`
    /// answer follows a COMMIT that returned under `synchronous_commit = on`, whatever the server's default.
    static let startupParameters = [("synchronous_commit", "on"), ("application_name", "curbside-relay")]
}

/// The relay's connections to PostgreSQL: a `PostgresClient` pool on whichever configured server accepts writes,
/// found again when that server goes away or stops accepting writes (a failover).
///
/// A request that finds no writable server, or whose connection breaks, fails with `store_unavailable`; the next
/// request looks for the writable server again. Nothing is retried here: a client resends, and the store's
/// idempotence (envelope ids, upload offsets) makes a resend of something that did commit harmless.
actor PostgresPool {
    private struct Current {
        let client: PostgresClient
        let server: PostgresSettings.Server
        let run: Task<Void, Never>
    }

    let settings: PostgresSettings
    private let logger: Logger
    private var current: Current?
    /// A search for the writable server under way; requests arriving meanwhile wait for it rather than start another.
    private var searching: Task<Current?, Never>?
    private var closed = false

    init(settings: PostgresSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// The server in use, if one is.
    var server: PostgresSettings.Server? { current?.server }

    /// Leases a connection to the writable server for `body`.
    ///
    /// A request waits for a connection as long as its server is alive, checked every `connectTimeout` on a connection
    /// of its own. While the server is gone, `PostgresClient`'s pool keeps trying to connect and fails waiting
    /// requests only once its circuit breaker trips (15 s, then at once, for good), so the check decides instead: a
    /// server that does not answer, or no longer accepts writes, is given up and the next request looks for the one
    /// that does.
    ///
    /// - Throws: what `body` throws, PostgreSQL's errors mapped by `relayError(_:)`; `store_unavailable` when the
    ///   server is gone before a connection is lent, or the connection closes.
    nonisolated func withConnection<T: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let client = try await writableClient()
        do {
            return try await Self.lease(
                from: client,
                checkingEvery: settings.connectTimeout,
                whileAlive: { await self.stillWritable(client) },
                body
            )
        } catch let error as PSQLError {
            let mapped = Self.relayError(error)
            if mapped.code == .storeUnavailable { await lost(client) }
            throw mapped
        } catch is PostgresConnectionClosed {
            await lost(client)
            throw RelayError(.storeUnavailable, "the relay lost its database connection; try again shortly")
        } catch let failure as LeaseFailure {
            if failure.serverGone {
                await lost(client)
            } else if await !stillWritable(client) {
                await lost(client)
            }
            throw RelayError(.storeUnavailable, "the relay's database cannot be reached; try again shortly")
        }
    }

    /// No connection was lent: the server was found gone, or the pool gave up (its circuit breaker).
    private struct LeaseFailure: Error {
        let serverGone: Bool
    }

    /// A lease waiting for a connection, one that has it, or one given up on.
    private enum LeaseState { case waiting, leased, abandoned }

    /// Runs `body` on a connection from `client`, waiting for one while `alive()`, asked every `interval`, says so.
    ///
    /// The lease and the checks race through a state only one of them moves on from `waiting`: either `body` runs
    /// (and takes as long as it takes), or the lease is abandoned and a connection lent after all is handed back unused.
    private static func lease<T: Sendable>(
        from client: PostgresClient,
        checkingEvery interval: Duration,
        whileAlive alive: @escaping @Sendable () async -> Bool,
        _ body: @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        // Read and written from the lease's task and the checker's, each a single compare-and-set: no await in between.
        let state = NIOLockedValueBox(LeaseState.waiting)
        @Sendable func move(to next: LeaseState) -> Bool {
            state.withLockedValue { current in
                guard current == .waiting else { return false }
                current = next
                return true
            }
        }
        return try await withoutActuallyEscaping(body) { body in
            try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask {
                    do {
                        return try await client.withConnection { connection in
                            guard move(to: .leased) else { throw LeaseFailure(serverGone: true) }
                            return try await body(connection)
                        }
                    } catch let error where !(error is PSQLError) && state.withLockedValue({ $0 != .leased }) {
                        // ConnectionPoolError (the circuit breaker), or the checker's cancellation: nothing ran.
                        throw LeaseFailure(serverGone: state.withLockedValue { $0 == .abandoned })
                    }
                }
                group.addTask {
                    while true {
                        try? await Task.sleep(for: interval)
                        if Task.isCancelled || state.withLockedValue({ $0 != .waiting }) { return nil }
                        if await alive() { continue }
                        if move(to: .abandoned) { throw LeaseFailure(serverGone: true) }
                        return nil
                    }
                }
                while let result = try await group.next() {
                    if let value = result {
                        group.cancelAll()
                        return value
                    }
                }
                throw LeaseFailure(serverGone: false)
            }
        }
    }

    /// Whether the server `client` writes to still accepts connections and writes: asked on a connection of its own,
    /// since the pool's are what is in doubt.
    private func stillWritable(_ client: PostgresClient) async -> Bool {
        guard let current, current.client === client,
            let connection = try? await Self.connectIfWritable(current.server, settings: settings, logger: logger)
        else { return false }
        try? await connection.close()
        return true
    }

    /// A new connection of its own to `server` if the server accepts writes; nil, the connection closed, if it is a
    /// standby (or read-only). Throws if it cannot be reached.
    static func connectIfWritable(
        _ server: PostgresSettings.Server,
        settings: PostgresSettings,
        id: PostgresConnection.ID = 0,
        logger: Logger
    ) async throws -> PostgresConnection? {
        let connection = try await PostgresConnection.connect(configuration: settings.connectionConfiguration(server), id: id, logger: logger)
        do {
            if try await !isReadOnly(connection, logger: logger) { return connection }
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
        return nil
    }

    /// The client of the writable server, found first if there is none.
    private func writableClient() async throws -> PostgresClient {
        if closed { throw RelayError(.storeUnavailable, "the relay is stopping") }
        if let current { return current.client }
        let search: Task<Current?, Never>
        if let searching {
            search = searching
        } else {
            let settings = self.settings
            let logger = self.logger
            search = Task { await Self.findWritable(settings, logger: logger) }
            searching = search
        }
        let found = await search.value
        searching = nil
        if let found {
            if current == nil {
                current = found
                logger.info("database: writing to \(found.server)")
            } else if current?.client !== found.client {
                found.run.cancel()
            }
            return current!.client
        }
        throw RelayError(.storeUnavailable, "no database server accepts writes now; try again shortly")
    }

    /// Forgets `client` after a connection to it broke, so the next request looks for the writable server again.
    private func lost(_ client: PostgresClient) {
        guard let current, current.client === client else { return }
        logger.warning("database: lost \(current.server); looking for the server that accepts writes")
        current.run.cancel()
        self.current = nil
    }

    /// Tries each server in order; the first that accepts writes gets a running pool.
    private static func findWritable(_ settings: PostgresSettings, logger: Logger) async -> Current? {
        for server in settings.servers {
            do {
                guard let connection = try await connectIfWritable(server, settings: settings, logger: logger) else {
                    logger.info("database: \(server) accepts no writes (a standby); trying the next")
                    continue
                }
                try? await connection.close()
                let client = PostgresClient(configuration: settings.clientConfiguration(server), backgroundLogger: logger)
                let run = Task { await client.run() }
                return Current(client: client, server: server, run: run)
            } catch {
                logger.info("database: cannot use \(server): \(Self.describe(error))")
            }
        }
        return nil
    }

    /// Whether the server would refuse writes (in recovery, or read-only by default).
    static func isReadOnly(_ connection: PostgresConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.query(ifOpen: "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')", logger: logger)
        for try await (recovering, readOnly) in rows.decode((Bool, String).self) {
            return recovering || readOnly == "on"
        }
        return true
    }

    /// Stops the pool; requests from now on fail.
    func close() {
        closed = true
        current?.run.cancel()
        current = nil
        searching?.cancel()
    }

    /// What a PostgreSQL failure means to a client of the relay: `store_unavailable` when the server went away or
    /// accepts no writes, `storage_full` for a full disk, `storage_failed` for other server errors.
    static func relayError(_ error: PSQLError) -> RelayError {
        switch error.code {
        case .server:
            let state = error.serverInfo?[.sqlState] ?? ""
            switch state {
            case "53100": return RelayError(.storageFull, "the relay's database is out of disk space")
            // Read-only transaction (a standby), operator intervention (shutdown, crash), connection exceptions.
            case "25006", _ where state.hasPrefix("57") || state.hasPrefix("08"):
                return RelayError(.storeUnavailable, "the relay's database is not accepting writes (\(state)); try again shortly")
            default:
                return RelayError(.storageFailed, "the relay's database refused (\(state))")
            }
        default:
            return RelayError(.storeUnavailable, "the relay lost its database connection; try again shortly")
        }
    }

    /// A failure for the log: the SQLSTATE and message of a server error, the code otherwise; never a password.
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let state = error.serverInfo?[.sqlState] {
                return "\(state) \(error.serverInfo?[.message] ?? "")"
            }
            return "\(error.code)"
        }
        return "\(type(of: error))"
    }
}
