import ArgumentParser
import CurbsideRelay

extension Curbside.Relay {
    /// Prints what the relay holds; safe while it runs.
    struct RelayStatus: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Print the relay's address, fingerprint, accounts, queued envelopes and stored bytes (works while it runs).",
            discussion: "Example: curbside relay status --data /srv/curbside --json"
        )

        @OptionGroup var options: RelayDataOption
        @OptionGroup var output: RelayOutputOption

        /// What `relay status --json` prints.
        struct Status: Encodable {
            let listen: String
            let database: String
            let fingerprint: String
            let accounts: Int
            let pendingEnrollments: Int
            let oneTimePrekeys: Int
            let queuedEnvelopes: Int
            let queuedBytes: Int
            let attachments: Int
            let attachmentBytes: Int
        }

        func run() async throws {
            let directory = options.directory
            let settings = try directory.readSettings()
            let fingerprint = try directory.certificateFingerprint()
            let statistics = try await directory.openStore().store.statistics()
            let status = Status(
                listen: "\(settings.listen)",
                database: "\(settings.database)",
                fingerprint: fingerprint,
                accounts: statistics.accounts,
                pendingEnrollments: statistics.pendingEnrollments,
                oneTimePrekeys: statistics.oneTimePrekeys,
                queuedEnvelopes: statistics.queuedEnvelopes,
                queuedBytes: statistics.queuedBytes,
                attachments: statistics.attachments,
                attachmentBytes: statistics.attachmentBytes
            )
            try output.output(status) {
                """
                listen             \(status.listen)
                database           \(status.database)
                fingerprint        \(status.fingerprint)
                accounts           \(status.accounts)
                pending enrolments \(status.pendingEnrollments)
                one-time prekeys   \(status.oneTimePrekeys)
                queued envelopes   \(status.queuedEnvelopes)
                queued bytes       \(status.queuedBytes)
                attachments        \(status.attachments)
                attachment bytes   \(status.attachmentBytes)
                """
            }
        }
    }
}
