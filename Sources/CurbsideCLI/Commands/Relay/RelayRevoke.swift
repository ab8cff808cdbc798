import ArgumentParser
import CurbsideRelay
import CurbsideWire

extension Curbside.Relay {
    /// Removes an account: its key can no longer log in; its queue is kept or dropped as the operator says.
    struct RelayRevoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke",
            abstract: "Remove a provider's account: its key can no longer log in (works while the relay runs).",
            discussion: """
                The account and its prekeys are deleted at once, and its enrollment codes not used yet are void; a \
                running relay closes the connections logged in with the key within seconds. Sends to the handle are refused as to an unknown handle until it is \
                enrolled again (`curbside relay enroll HANDLE`, with a new key).

                --queue keep leaves the consults queued for the handle: they expire as usual (their senders are \
                told), or reach the device that registers the handle next, which cannot open them and tells their \
                senders so. --queue drop deletes them now, and each sender gets an `expired` notice for each, at \
                its next sync (or at once while connected, on PostgreSQL).

                Examples:
                  curbside relay revoke --data /srv/curbside osei.derm --queue keep
                  curbside relay revoke --data /srv/curbside osei.derm --queue drop --json
                """
        )

        enum QueuePolicy: String, ExpressibleByArgument, CaseIterable {
            case keep, drop
        }

        @OptionGroup var options: RelayDataOption
        @OptionGroup var output: RelayOutputOption

        @Argument(help: ArgumentHelp("The handle to revoke, such as osei.derm.", valueName: "handle"))
        var handle: String

        @Option(help: ArgumentHelp("What happens to the consults queued for the handle: keep or drop.", valueName: "keep|drop"))
        var queue: QueuePolicy

        func validate() throws {
            do {
                _ = try Handle(handle)
            } catch {
                throw ValidationError("\"\(handle)\" is not a valid handle: \(error.detail ?? "\(error)")")
            }
        }

        /// What `relay revoke --json` prints.
        struct Revoked: Encodable {
            let handle: String
            /// The key revoked, 64 hex digits.
            let identityKey: String
            let keptEnvelopes: Int
            let droppedEnvelopes: Int
            let voidedCodes: Int
        }

        func run() async throws {
            let handle = try Handle(handle)
            let (store, attachments) = try await options.directory.openStore()
            guard let revocation = try await store.revoke(handle, droppingQueue: queue == .drop, now: .now()) else {
                throw CLIError(
                    "\(handle) is not registered; nothing was revoked",
                    hint: "`curbside relay accounts --data \(options.data)` lists the registered handles",
                    exitStatus: ExitStatus.usage
                )
            }
            // The store forgot these attachments with the dropped envelopes; a file left behind is removed by the
            // relay's next sweep.
            try? await attachments.delete(revocation.removal.attachmentFiles)
            let revoked = Revoked(
                handle: handle.rawValue,
                identityKey: revocation.identityKey.rawRepresentation.hexString,
                keptEnvelopes: revocation.keptEnvelopes,
                droppedEnvelopes: revocation.removal.notices.count,
                voidedCodes: revocation.voidedCodes
            )
            try output.output(revoked) {
                var lines = ["revoked \(handle) (key \(keyPrefix(revocation.identityKey))): it can no longer log in"]
                switch queue {
                case .keep:
                    lines.append("\(counted(revoked.keptEnvelopes, "queued message")) kept")
                case .drop:
                    let senders = Set(revocation.removal.notices.map(\.sender)).count
                    lines.append("\(counted(revoked.droppedEnvelopes, "queued message")) dropped; \(counted(senders, "sender")) told by an expiry notice")
                }
                if revocation.voidedCodes > 0 {
                    lines.append("\(counted(revocation.voidedCodes, "enrollment code")) for \(handle) not used yet: void")
                }
                lines.append("to let \(handle) register a new key: curbside relay enroll --data \(options.data) \(handle)")
                return lines.joined(separator: "\n")
            }
        }
    }
}
