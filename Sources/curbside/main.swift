import ArgumentParser
import CurbsideCLI

import Foundation

/// Parses and runs a command; errors a person can act on print as `curbside: error: …` with hints, the way age
/// does, with the exit status of their kind; parsing errors and --help print the way argument-parser does.
func run<Command: AsyncParsableCommand>(_ root: Command.Type) async {
    var command: any ParsableCommand
    do {
        command = try root.parseAsRoot()
    } catch {
        root.exit(withError: error)
    }
    do {
        if var asyncCommand = command as? any AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
    } catch let error as any CurbsideReportableError {
        FileHandle.standardError.write(Data(error.report.utf8))
        exit(error.exitStatus)
    } catch let error where String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
        // --help, validation and the parser's own errors.
        root.exit(withError: error)
    } catch {
        // Not expected: said plainly, without a stack of internals.
        FileHandle.standardError.write(Data("curbside: error: \(error)\n".utf8))
        exit(1)
    }
}

await run(Curbside.self)
