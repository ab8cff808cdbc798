import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create your identity, register it on the relay and publish prekeys.",
            discussion: """
                The operator of the relay gives you its address, its fingerprint and an enrollment code \
                (`curbside relay enroll`). The passphrase (CURBSIDE_PASSPHRASE, or asked twice) protects the identity \
                key on this device. Prints the safety number of your own key.
                """
        )

        @OptionGroup var options: ProviderOptions
        @Option(help: "Your handle, such as amara.gp.") var handle: String
        @Option(help: ArgumentHelp("The relay's address.", valueName: "host:port")) var relay: String
        @Option(help: ArgumentHelp("SHA-256 of the relay's public key: 64 hex digits.", valueName: "sha256hex")) var relayFingerprint: String
        @Option(help: "The enrollment code from the relay's operator.") var code: String

        func run() async throws {
            let handle = try parseHandle(handle)
            guard let endpoint = RelayEndpoint(address: relay, fingerprint: relayFingerprint) else {
                throw ClientError(
                    .invalidArgument,
                    "--relay must be HOST:PORT and --relay-fingerprint 64 hex digits",
                    hint: "both are printed by `curbside relay init` on the relay"
                )
            }
            // Everything that can be checked is checked before the passphrase is asked for twice: the code's shape,
            // that the relay answers with the pinned key, and that it would register the handle with the code.
            guard let enrollmentCode = EnrollmentCode(code) else { throw ClientError.malformedEnrollmentCode() }
            try await Client.checkEnrollment(relay: endpoint, handle: handle, enrollmentCode: enrollmentCode)
            let client = try await Client.create(
                home: options.homeURL,
                handle: handle,
                relay: endpoint,
                enrollmentCode: code,
                passphrase: try Passphrase.read(prompt: "New passphrase for \(handle): ", confirm: true)
            )
            // A safety number is one half per party; this is this profile's half, which colleagues will see in theirs.
            let own = Array(client.safetyNumber(with: client.me).groups.prefix(6))
            struct Output: Encodable {
                let handle: String
                let identityKey: String
                let relay: String
                let home: String
            }
            try options.output(
                Output(handle: handle.rawValue, identityKey: client.me.identityKey.rawRepresentation.hexString, relay: "\(endpoint)", home: client.home.path)
            ) {
                """
                created      \(handle) on \(endpoint)
                profile      \(client.home.path)
                identity     \(client.me.identityKey.rawRepresentation.hexString)
                your half of every safety number (colleagues will read these 30 digits to you):
                             \(own.prefix(3).joined(separator: " "))
                             \(own.suffix(3).joined(separator: " "))
                """
            }
        }
    }
}
