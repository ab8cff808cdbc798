import ArgumentParser
import CurbsideCLI

/// Runs an async root command; inside the generic, `main()` resolves to the async entry point.
func runAsync<Command: AsyncParsableCommand>(_ command: Command.Type) async {
    await Command.main()
}

await runAsync(Curbside.self)
