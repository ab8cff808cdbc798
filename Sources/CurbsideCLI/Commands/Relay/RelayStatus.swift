import ArgumentParser
import CurbsideRelay
import Logging

extension Curbside.Relay {
    /// Prints what the relay holds; safe while it runs.
    struct RelayStatus: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Print accounts, queued envelopes and stored bytes (works while the relay runs)."
        )

        @OptionGroup var options: RelayDataOption

        func run() async throws {
            let directory = options.directory
            let settings = try directory.readSettings()
            try directory.makePrivate()
            let store = try await settings.openStore(logger: Logger(label: "curbside.relay") { _ in SwiftLogNoOpLogHandler() }).store
            let statistics = try await store.statistics()
            print("listen             \(settings.listen)")
            print("database           \(settings.database)")
            print("accounts           \(statistics.accounts)")
            print("pending enrolments \(statistics.pendingEnrollments)")
            print("one-time prekeys   \(statistics.oneTimePrekeys)")
            print("queued envelopes   \(statistics.queuedEnvelopes)")
            print("queued bytes       \(statistics.queuedBytes)")
            print("attachments        \(statistics.attachments)")
            print("attachment bytes   \(statistics.attachmentBytes)")
        }
    }
}
