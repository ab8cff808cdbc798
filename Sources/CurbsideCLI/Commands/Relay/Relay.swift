import ArgumentParser

extension Curbside {
    /// Operator commands for running a relay.
    struct Relay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run and manage a Curbside relay.",
            subcommands: [RelayInit.self, RelayServe.self, RelayEnroll.self, RelayStatus.self, RelayCheckConfig.self, RelayMigrate.self]
        )
    }
}

/// The `--data DIR` option every relay command takes.
struct RelayDataOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The relay's data directory.", valueName: "dir"))
    var data: String

    var directory: RelayDataDirectory { RelayDataDirectory(path: data) }
}
