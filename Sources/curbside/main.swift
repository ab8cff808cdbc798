import ArgumentParser
import CurbsideCLI

import Foundation

/// Parses and runs a command; errors a person can act on print as `curbside: error: …` with hints, the way age
/// does (as one JSON object with --json), with the exit status of their kind; parsing errors and --help print the
/// way argument-parser does.
func run(_ root: Curbside.Type) async {
    var command: any ParsableCommand
    do {
        command = try root.parseAsRoot()
    } catch {
        if let failure = root.parseFailure(error) { fail(failure) }
        root.exit(withError: error)
    }
    do {
        if var asyncCommand = command as? any AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
    } catch {
        let json = (command as? any JSONReportingCommand)?.reportsJSON ?? false
        if let failure = root.failure(error, json: json) { fail(failure) }
        // --help, validation and the parser's own errors.
        root.exit(withError: error)
    }
}

func fail(_ failure: (report: String, status: Int32)) -> Never {
    FileHandle.standardError.write(Data(failure.report.utf8))
    exit(failure.status)
}

await run(Curbside.self)
