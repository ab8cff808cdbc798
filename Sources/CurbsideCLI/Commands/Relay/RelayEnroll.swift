import ArgumentParser
import CurbsideRelay
import Logging
import CurbsideWire

extension Curbside.Relay {
    /// Creates a one-time enrollment code for a handle.
    struct RelayEnroll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "enroll",
            abstract: "Create a one-time code that lets a provider register a handle."
        )

        @OptionGroup var options: RelayDataOption

        @Argument(help: ArgumentHelp("The handle to enroll, such as osei.derm.", valueName: "handle"))
        var handle: String

        @Option(help: ArgumentHelp("Days the code stays valid.", valueName: "days"))
        var days: UInt64 = 7

        func validate() throws {
            do {
                _ = try Handle(handle)
            } catch {
                throw ValidationError("\"\(handle)\" is not a valid handle: \(error.detail ?? "\(error)")")
            }
            guard (1...365).contains(days) else { throw ValidationError("--days must be 1 to 365") }
        }

        func run() async throws {
            let directory = options.directory
            let settings = try directory.readSettings()
            try directory.makePrivate()
            let store = try await settings.openStore(logger: Logger(label: "curbside.relay") { _ in SwiftLogNoOpLogHandler() }).store
            let handle = try Handle(handle)
            if try await store.identityKey(for: handle) != nil {
                throw CLIError("\(handle) is registered already; no code was made")
            }
            let code = try await KeyDirectory(store: store).enroll(handle, now: .now(), lifetimeSeconds: days * 86_400)
            print("enrollment code for \(handle): \(code)")
            print("valid for \(days) days, once; give it to the provider over a channel you trust")
        }
    }
}
