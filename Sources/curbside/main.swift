import ArgumentParser
import CurbsideCLI

import Foundation

/// Parses and runs a command; errors a person can act on print as `curbside: error: …` with hints, the way age
/// does, and everything else (usage errors, --help) the way argument-parser does.
func run<Command: AsyncParsableCommand>(_ root: Command.Type) async {
    do {
        var command = try root.parseAsRoot()
        if var asyncCommand = command as? any AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
    } catch let error as any CurbsideReportableError {
        FileHandle.standardError.write(Data(error.report.utf8))
        exit(error.exitStatus)
    } catch {
        root.exit(withError: error)
    }
}

await run(Curbside.self)
