import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Whoami: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print your handle, identity key and relay.")
        @OptionGroup var options: ProviderOptions

        func run() async throws {
            let client = try await options.open()
            struct Output: Encodable {
                let handle: String
                let identityKey: String
                let relay: String
                let relayFingerprint: String
                let home: String
            }
            let output = Output(
                handle: client.me.handle.rawValue,
                identityKey: client.me.identityKey.rawRepresentation.hexString,
                relay: "\(client.relay)",
                relayFingerprint: client.relay.fingerprint,
                home: client.home.path
            )
            try options.output(output) {
                """
                handle       \(output.handle)
                identity     \(output.identityKey)
                relay        \(output.relay)
                fingerprint  \(output.relayFingerprint)
                profile      \(output.home)
                """
            }
        }
    }
}
