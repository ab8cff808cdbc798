import ArgumentParser

extension Curbside {
    /// Operator commands for running a relay.
    struct Relay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run and manage a Curbside relay.",
            discussion: """
                Every command takes --data DIR, the relay's data directory; enroll, accounts, revoke and status work \
                while `relay serve` runs on it.

                \(ExitStatus.relayHelp)
                """,
            subcommands: [
                RelayInit.self, RelayServe.self, RelayEnroll.self, RelayAccounts.self, RelayRevoke.self, RelayStatus.self,
                RelayCheckConfig.self, RelayMigrate.self,
            ]
        )
    }
}

/// The `--data DIR` option every relay command takes.
struct RelayDataOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The relay's data directory.", valueName: "dir"))
    var data: String

    var directory: RelayDataDirectory { RelayDataDirectory(path: data) }
}
