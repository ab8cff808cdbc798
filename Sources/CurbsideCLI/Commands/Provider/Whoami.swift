import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Whoami: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print your handle, identity key, your half of every safety number, and relay.")
        @OptionGroup var options: ProviderOptions

        func run() async throws {
            let client = try await options.open()
            struct Output: Encodable {
                let handle: String
                let identityKey: String
                /// The thirty digits this identity puts in every safety number, grouped as `contacts show` prints.
                let safetyNumberHalf: String
                let relay: String
                let relayFingerprint: String
                let home: String
            }
            let output = Output(
                handle: client.me.handle.rawValue,
                identityKey: client.me.identityKey.rawRepresentation.hexString,
                safetyNumberHalf: SafetyNumber.half(of: client.me).chunked(5).joined(separator: " "),
                relay: "\(client.relay)",
                relayFingerprint: client.relay.fingerprint,
                home: client.home.path
            )
            try options.output(output) {
                // Grouped as `contacts show` groups a whole safety number, so a colleague finds these digits in theirs.
                let half = output.safetyNumberHalf.split(separator: " ").chunked(4).map { $0.joined(separator: " ") }
                return (
                    [
                        "handle         \(output.handle)",
                        "identity       \(output.identityKey)",
                        "safety number  your half (the first or last 30 digits of every colleague's number with you):",
                    ]
                    + half.map { "               " + $0 }
                    + [
                        "relay          \(output.relay)",
                        "fingerprint    \(output.relayFingerprint)",
                        "profile        \(output.home)",
                    ]
                ).joined(separator: "\n")
            }
        }
    }
}
