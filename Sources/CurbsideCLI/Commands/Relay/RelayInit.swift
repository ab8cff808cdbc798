import ArgumentParser
import CurbsideClient
import CurbsideRelay
import CurbsideTLS
import Foundation

extension Curbside.Relay {
    /// Creates a relay's data directory: settings, a self-signed certificate and its key, and an empty SQLite store (a
    /// PostgreSQL relay's settings name its database instead; `relay serve` makes its schema).
    struct RelayInit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Create a relay's data directory, TLS certificate and store, and print what clients need.",
            discussion: """
                Prints the address and the certificate key's fingerprint that every provider gives `curbside init`.

                Examples:
                  curbside relay init --data /var/lib/curbside --listen 0.0.0.0:4433 --name relay.clinic.example
                  curbside relay init --data /var/lib/curbside --database postgres://curbside@db1,db2/curbside
                """
        )

        @OptionGroup var options: RelayDataOption

        @Option(help: ArgumentHelp("Address and port to listen on.", valueName: "host:port"))
        var listen: String = "127.0.0.1:4433"

        @Option(name: .customLong("name"), help: ArgumentHelp("A host name or address clients use; repeatable.", valueName: "host"))
        var names: [String] = []

        @Option(
            help: ArgumentHelp(
                "Where to keep accounts and queues: sqlite (relay.sqlite in the data directory) or "
                    + "postgres://USER@HOST[:PORT][,HOST[:PORT]...]/DATABASE, without the password.",
                valueName: "database"
            )
        )
        var database = "sqlite"

        func validate() throws {
            guard RelayEndpoint.Address(listen) != nil else {
                throw ValidationError("--listen must be HOST:PORT, such as 0.0.0.0:4433; got \"\(listen)\"")
            }
            _ = try postgresURL()
        }

        /// The PostgreSQL database `--database` names; nil for SQLite.
        private func postgresURL() throws -> PostgresURL? {
            guard database != "sqlite" else { return nil }
            guard database.lowercased().hasPrefix("postgres") else {
                throw ValidationError("--database must be sqlite or a postgres:// URL")
            }
            return try PostgresURL.commandLineValue(database, option: "--database")
        }

        func run() async throws {
            let directory = options.directory
            let listen = RelayEndpoint.Address(listen)!
            let fileManager = FileManager.default
            if fileManager.fileExists(atPath: directory.configurationPath) {
                throw CLIError(
                    "\(directory.path) already holds a relay; nothing was changed",
                    hint: "use another --data directory, or run `curbside relay serve --data \(directory.path)`",
                    exitStatus: ExitStatus.usage
                )
            }
            try fileManager.createDirectory(
                atPath: directory.path,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
            // The directory may have existed with another mode: createDirectory leaves it as it was.
            try directory.makePrivate()
            var certificateNames = names
            if certificateNames.isEmpty {
                certificateNames = ["localhost", "127.0.0.1"]
                if !["0.0.0.0", "::", "127.0.0.1", "localhost"].contains(listen.host) { certificateNames.append(listen.host) }
            }
            let identity = try TLSIdentity.selfSigned(names: certificateNames)
            try identity.write(certificatePath: directory.certificatePath, privateKeyPath: directory.privateKeyPath, certificateMode: 0o600)
            var settings = RelaySettings(dataDirectory: directory.path)
            settings.listen = listen
            settings.names = certificateNames
            if let url = try postgresURL() {
                settings.database = .postgres(url)
            } else {
                _ = try SQLiteRelayStore(path: directory.storePath)
            }
            try Data(settings.fileText.utf8).write(to: URL(fileURLWithPath: directory.configurationPath))

            let fingerprint = identity.certificate.publicKeyFingerprint.description.dropFirst("sha256:".count)
            print("relay created in \(directory.path)")
            print("address      \(listen)")
            print("names        \(certificateNames.joined(separator: ", "))")
            print("database     \(settings.database)")
            print("fingerprint  \(fingerprint)")
            print("clients pin the fingerprint: curbside init --relay \(listen) --relay-fingerprint \(fingerprint)")
        }
    }
}
