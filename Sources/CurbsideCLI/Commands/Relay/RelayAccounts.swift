import ArgumentParser
import CurbsideRelay
import CurbsideWire

extension Curbside.Relay {
    /// Lists the registered accounts; safe while the relay runs.
    struct RelayAccounts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "accounts",
            abstract: "List registered handles (key, registered, last seen, queued) and codes not used yet; works while the relay runs.",
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

        /// A code not used yet: the handle may still register with it until `expiresAt`.
        struct Pending: Encodable {
            let handle: String
            let expiresAt: String
        }

        /// What `relay accounts --json` prints.
        struct Listing: Encodable {
            let accounts: [Account]
            let pendingEnrollments: [Pending]
        }

        func run() async throws {
            let store = try await options.directory.openStore().store
            let accounts = try await store.accounts()
            let pending = try await store.pendingEnrollments(at: .now()).map {
                Pending(handle: $0.handle.rawValue, expiresAt: formatTime($0.expiresAt))
            }
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
            try output.output(Listing(accounts: listed, pendingEnrollments: pending)) {
                var lines = Self.table(accounts, listed)
                if accounts.isEmpty {
                    lines = ["no accounts yet: `curbside relay enroll --data \(options.data) HANDLE` makes a code to register one"]
                }
                if !pending.isEmpty {
                    lines.append("waiting to register (a code not used yet):")
                    lines += pending.map { "  \($0.handle)  code valid until \($0.expiresAt)" }
                }
                return lines.joined(separator: "\n")
            }
        }

        /// The accounts as aligned columns under a header.
        private static func table(_ accounts: [AccountSummary], _ listed: [Account]) -> [String] {
            let width = max(6, accounts.map(\.handle.rawValue.count).max() ?? 0)
            func pad(_ text: String, _ count: Int) -> String { text.padding(toLength: count, withPad: " ", startingAt: 0) }
            var lines = ["\(pad("handle", width))  \(pad("key", 17))  \(pad("registered", 20))  \(pad("last seen", 20))  queued"]
            for (account, row) in zip(accounts, listed) {
                lines.append(
                    "\(pad(row.handle, width))  \(pad(keyPrefix(account.identityKey), 17))  \(pad(row.registeredAt, 20))  "
                        + "\(pad(row.lastSeenAt ?? "never", 20))  \(row.queuedEnvelopes) (\(row.queuedBytes) bytes)"
                )
            }
            return lines
        }
    }
}
