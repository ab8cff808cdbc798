import ArgumentParser
import CurbsideRelay
import CurbsideWire

extension Curbside.Relay {
    /// Lists the registered accounts; safe while the relay runs.
    struct RelayAccounts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "accounts",
            abstract: "List registered handles: key, registered, last seen, queued (works while the relay runs).",
            discussion: """
                The key is the start of the identity key `curbside whoami` prints on the provider's device \
                (--json gives all 64 hex digits). Last seen is the latest login, to the minute.

                Example: curbside relay accounts --data /srv/curbside
                """
        )

        @OptionGroup var options: RelayDataOption
        @OptionGroup var output: RelayOutputOption

        /// One line of `relay accounts --json`.
        struct Account: Encodable {
            let handle: String
            /// 64 hex digits.
            let identityKey: String
            let registeredAt: String
            let lastSeenAt: String?
            let queuedEnvelopes: Int
            let queuedBytes: Int
        }

        func run() async throws {
            let accounts = try await options.directory.openStore().store.accounts()
            let listed = accounts.map { account in
                Account(
                    handle: account.handle.rawValue,
                    identityKey: account.identityKey.rawRepresentation.hexString,
                    registeredAt: formatTime(account.registeredAt),
                    lastSeenAt: account.lastSeenAt.map { formatTime($0) },
                    queuedEnvelopes: account.queuedEnvelopes,
                    queuedBytes: account.queuedBytes
                )
            }
            try output.output(listed) {
                guard !accounts.isEmpty else {
                    return "no accounts yet: `curbside relay enroll --data \(options.data) HANDLE` makes a code to register one"
                }
                let width = max(6, accounts.map(\.handle.rawValue.count).max() ?? 0)
                func pad(_ text: String, _ count: Int) -> String { text.padding(toLength: count, withPad: " ", startingAt: 0) }
                var lines = [
                    "\(pad("handle", width))  \(pad("key", 17))  \(pad("registered", 20))  \(pad("last seen", 20))  queued"
                ]
                for (account, row) in zip(accounts, listed) {
                    lines.append(
                        "\(pad(row.handle, width))  \(pad(keyPrefix(account.identityKey), 17))  \(pad(row.registeredAt, 20))  "
                            + "\(pad(row.lastSeenAt ?? "never", 20))  \(row.queuedEnvelopes) (\(row.queuedBytes) bytes)"
                    )
                }
                return lines.joined(separator: "\n")
            }
        }
    }
}
