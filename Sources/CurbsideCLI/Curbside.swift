import ArgumentParser
import CurbsideTLS
import CurbsideWire

/// The `curbside` command: secure consults between healthcare providers.
public struct Curbside: AsyncParsableCommand {
    /// The release of this build.
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "curbside",
        abstract: "End-to-end encrypted consults between healthcare providers.",
        discussion: """
            Send a consult with clinical images to a colleague through a relay that stores and forwards it \
            and can read none of it. The protocol is described in spec/ in the source tree.

            Profile: --home DIR, else $CURBSIDE_HOME, else ~/.curbside. Passphrase: $CURBSIDE_PASSPHRASE, else asked without echo.

            \(ExitStatus.help)
            """,
        version: "curbside \(version) (libsodium \(CryptoLibrary.sodiumVersion), \(OpenSSLLibrary.versionString))",
        subcommands: [
            Init.self, Whoami.self, Contacts.self, Send.self, Inbox.self, Show.self, Reply.self, Status.self, Sync.self,
            Outbox.self, Prune.self, Watch.self, Report.self, Relay.self, Demo.self, Completion.self,
        ]
    )

    public init() {}
}
