import ArgumentParser
import CurbsideRelay
import CurbsideTLS
import Foundation

extension Curbside.Relay {
    /// Runs the relay in the foreground until SIGINT or SIGTERM.
    struct RelayServe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve",
            abstract: "Run the relay in the foreground; logs to stderr; SIGINT or SIGTERM stop it cleanly."
        )

        @OptionGroup var options: RelayDataOption

        @Option(help: ArgumentHelp("Address and port to listen on, instead of the one in relay.conf.", valueName: "host:port"))
        var listen: String?

        func validate() throws {
            if let listen, HostPort(listen) == nil {
                throw ValidationError("--listen must be HOST:PORT, such as 0.0.0.0:4433; got \"\(listen)\"")
            }
        }

        func run() async throws {
            let directory = options.directory
            let settings = try directory.readSettings()
            try directory.makePrivate()
            let address = listen.flatMap(HostPort.init) ?? settings.listen
            let identity = try TLSIdentity.read(certificatePath: directory.certificatePath, privateKeyPath: directory.privateKeyPath)
            let tls = try TLSContext(configuration: .server(identity: identity, applicationProtocols: ["curbside/1"]))
            // The power-cut test's control run (curbside-faults powercut --control) needs a relay that loses what it
            // acknowledged; nothing else sets this, and the relay says so loudly when it is set.
            let unsafeNoSync = ProcessInfo.processInfo.environment["CURBSIDE_TESTONLY_UNSAFE_NO_SYNC"] == "1"
            if unsafeNoSync { log("WARNING: CURBSIDE_TESTONLY_UNSAFE_NO_SYNC=1: commits are not fsynced; consults can be lost") }
            let store = try SQLiteRelayStore(path: directory.storePath, _testOnlyUnsafeNoSync: unsafeNoSync)
            var configuration = RelayConfiguration()
            configuration.host = address.host
            configuration.port = address.port
            let attachments = try BlobStore(root: directory.attachmentsPath)
            let bound = try await RelayServer(configuration: configuration, tls: tls, store: store, attachments: attachments).bind()
            log("listening on \(HostPort(host: address.host, port: bound.port)), fingerprint \(identity.certificate.publicKeyFingerprint)")

            let serving = Task { try await bound.serve() }
            let signals = SignalWatcher(signals: [SIGINT, SIGTERM]) { signal in
                log("signal \(signal): stopping")
                serving.cancel()
            }
            defer { signals.cancel() }
            do {
                try await serving.value
            } catch is CancellationError {
            } catch where Task.isCancelled || serving.isCancelled {
            }
            log("stopped")
        }
    }
}

/// Writes one line to standard error; the relay's log never holds content.
func log(_ line: String) {
    FileHandle.standardError.write(Data("curbside relay: \(line)\n".utf8))
}

/// Calls `handler` on the given signals instead of the default action, until cancelled.
/// Sendable because the sources are only created in init and cancelled, which Dispatch allows from any thread.
final class SignalWatcher: @unchecked Sendable {
    private let sources: [any DispatchSourceSignal]

    init(signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        sources = signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(number) }
            source.resume()
            return source
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}
