import ArgumentParser
import CurbsideRelay
import CurbsideWire

extension Curbside.Relay {
    /// Creates a one-time enrollment code for a handle, or, with `--replace`, for a new key of a registered one.
    struct RelayEnroll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "enroll",
            abstract: "Create a one-time code that lets a provider register a handle (--replace: a new key for it).",
            discussion: """
                Give the code to the provider over a channel you trust; `curbside init --code` uses it once.

                A provider who lost their device (or whose key was stolen) gets a new one with --replace: the old \
                key can no longer log in, from now on, and connections logged in with it are closed; consults \
                queued for it stay queued and reach the new device, which cannot open them and tells their \
                senders so. Contacts see a key change: their next send is held until they compare safety numbers \
                again (`curbside contacts verify`).

                Examples:
                  curbside relay enroll --data /srv/curbside osei.derm
                  curbside relay enroll --data /srv/curbside --replace osei.derm
                """
        )

        @OptionGroup var options: RelayDataOption
        @OptionGroup var output: RelayOutputOption

        @Argument(help: ArgumentHelp("The handle to enroll, such as osei.derm.", valueName: "handle"))
        var handle: String

        @Option(help: ArgumentHelp("Days the code stays valid.", valueName: "days"))
        var days: UInt64 = 7

        @Flag(help: "The handle is registered: revoke its key now and make a code that binds a new one.")
        var replace = false

        func validate() throws {
            do {
                _ = try Handle(handle)
            } catch {
                throw ValidationError("\"\(handle)\" is not a valid handle: \(error.detail ?? "\(error)")")
            }
            guard (1...365).contains(days) else { throw ValidationError("--days must be 1 to 365") }
        }

        /// What `relay enroll --json` prints; the code is the one secret this command exists to show.
        struct Enrollment: Encodable {
            let handle: String
            let code: String
            let expiresAt: String
            /// With --replace: the key revoked, 64 hex digits.
            let replacedKey: String?
            /// With --replace: consults left queued for the handle.
            let keptEnvelopes: Int?
        }

        func run() async throws {
            let handle = try Handle(handle)
            let store = try await options.directory.openStore().store
            let directory = KeyDirectory(store: store)
            let now = Timestamp.now()
            let revocation: Revocation?
            let code: EnrollmentCode
            if replace {
                guard let replaced = try await directory.replace(handle, now: now, lifetimeSeconds: days * 86_400) else {
                    throw CLIError(
                        "\(handle) is not registered; there is no key to replace",
                        hint: "to let \(handle) register, run `curbside relay enroll --data \(options.data) \(handle)`",
                        exitStatus: ExitStatus.usage
                    )
                }
                (revocation, code) = (replaced.revocation, replaced.code)
            } else if try await store.identityKey(for: handle) != nil {
                throw CLIError(
                    "\(handle) is registered already; no code was made",
                    hint: "for a lost or replaced device: `curbside relay enroll --data \(options.data) --replace \(handle)`; "
                        + "to remove the account: `curbside relay revoke --data \(options.data) \(handle) --queue keep|drop`",
                    exitStatus: ExitStatus.usage
                )
            } else {
                revocation = nil
                code = try await directory.enroll(handle, now: now, lifetimeSeconds: days * 86_400)
            }
            let enrollment = Enrollment(
                handle: handle.rawValue,
                code: "\(code)",
                expiresAt: formatTime(now.adding(seconds: days * 86_400)),
                replacedKey: revocation?.identityKey.rawRepresentation.hexString,
                keptEnvelopes: revocation?.keptEnvelopes
            )
            try output.output(enrollment) {
                var lines: [String] = []
                if let revocation {
                    lines.append("revoked key \(keyPrefix(revocation.identityKey)) of \(handle): it can no longer log in")
                    lines.append("\(counted(revocation.keptEnvelopes, "queued message")) kept; the new device will report each as unreadable to its sender")
                }
                lines.append("enrollment code for \(handle): \(code)")
                lines.append("valid for \(days) days, once; give it to the provider over a channel you trust")
                if revocation != nil {
                    lines.append("contacts will see a key change and must compare safety numbers again")
                }
                return lines.joined(separator: "\n")
            }
        }
    }
}

/// An identity key as operators read it: its first 16 hex digits, the start of what `curbside whoami` prints.
func keyPrefix(_ key: VerifyingKey) -> String {
    String(key.rawRepresentation.hexString.prefix(16)) + "…"
}
