import ArgumentParser
import CurbsideClient
import CurbsideRelay
import CurbsideTLS
import CurbsideTransport
import Foundation
import Logging
import NIOCore
import ServiceLifecycle

extension Curbside.Relay {
    /// Runs the relay in the foreground, as a service group, until SIGINT or SIGTERM.
    struct RelayServe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve",
            abstract: "Run the relay in the foreground; logs to stderr; SIGINT or SIGTERM stop it cleanly."
        )

        @OptionGroup var options: RelayDataOption

        @Option(
            help: ArgumentHelp(
                "Address and port to listen on, instead of the one in relay.conf.",
                valueName: "host:port"
            )
        )
        var listen: String?

        @Option(
            help: ArgumentHelp(
                "Least severe log lines to write: trace, debug, info, notice, warning, error or critical "
                    + "(default: log_level in relay.conf, else info).",
                valueName: "level"
            )
        )
        var logLevel: String?

        func validate() throws {
            if let listen, RelayEndpoint.Address(listen) == nil {
                throw ValidationError("--listen must be HOST:PORT, such as 0.0.0.0:4433; got \"\(listen)\"")
            }
            if let logLevel, Logger.Level(rawValue: logLevel) == nil {
                throw ValidationError(
                    "--log-level must be trace, debug, info, notice, warning, error or critical; got \"\(logLevel)\""
                )
            }
        }

        func run() async throws {
            let directory = options.directory
            var settings = try directory.readSettings()
            try directory.makePrivate()
            if let listen { settings.listen = RelayEndpoint.Address(listen)! }
            let level = logLevel.flatMap(Logger.Level.init(rawValue:)) ?? settings.logLevel
            let logger = Logger(label: "curbside.relay") { _ in RelayLogHandler(logLevel: level) }
            let identity = try TLSIdentity.read(
                certificatePath: directory.certificatePath,
                privateKeyPath: directory.privateKeyPath
            )
            let tls = try TLSContext(
                configuration: .server(
                    identity: identity,
                    applicationProtocols: [RelayTransport.applicationProtocol]
                )
            )
            // The power-cut test's control run (curbside-faults powercut --control) needs a relay that loses what it
            // acknowledged; nothing else sets this, and the relay says so loudly when it is set.
            let unsafeNoSync = ProcessInfo.processInfo.environment["CURBSIDE_TESTONLY_UNSAFE_NO_SYNC"] == "1"
            if unsafeNoSync {
                logger.warning("CURBSIDE_TESTONLY_UNSAFE_NO_SYNC=1: commits are not fsynced; consults can be lost")
            }
            let (store, attachments) = try await settings.openStore(logger: logger, unsafeNoSync: unsafeNoSync)
            let server = RelayServer(
                configuration: settings.relayConfiguration,
                tls: tls,
                store: store,
                attachments: attachments,
                logger: logger
            )
            let bound: BoundRelay
            do {
                bound = try await server.bind()
            } catch let error as IOError where [EADDRINUSE, EACCES, EADDRNOTAVAIL].contains(error.errnoCode) {
                // One line: the address and what to do, not the socket call that failed.
                let why =
                    switch error.errnoCode {
                    case EADDRINUSE: "is in use by another process (a relay serving already?)"
                    case EACCES: "needs privileges this user lacks (ports below 1024)"
                    default: "is not an address of this machine"
                    }
                throw CLIError(
                    "cannot listen on \(settings.listen): it \(why); stop that process or choose another address with --listen or `listen` in relay.conf",
                    exitStatus: ExitStatus.network
                )
            }
            let address = RelayEndpoint.Address(host: settings.listen.host, port: bound.port)
            logger.info("listening on \(address), fingerprint \(identity.certificate.publicKeyFingerprint)")
            // SIGTERM or SIGINT shuts the group down gracefully: the relay stops accepting, lets requests under way
            // be answered (for at most shutdown_grace_period) and returns.
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    // Stopped in reverse order: the listener first (requests under way are answered), then the
                    // PostgreSQL store's connections.
                    services: ((store as? PostgresRelayStore).map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? [])
                        + [.init(service: bound)],
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger
                )
            )
            try await group.run()
            logger.info("stopped")
        }
    }
}
