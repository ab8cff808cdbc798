import ArgumentParser
import CurbsideClient
import Foundation

/// A command whose `--json` makes its errors JSON as well: `{"error": {"code": …, "message": …, "hint": …}}` on
/// standard error, with the same exit status as in text.
public protocol JSONReportingCommand {
    /// Whether `--json` was given.
    var reportsJSON: Bool { get }
}

/// A command that takes the provider options (`--home`, `--json`).
protocol ProviderCommand: JSONReportingCommand {
    var options: ProviderOptions { get }
}

extension ProviderCommand {
    public var reportsJSON: Bool { options.json }
}

/// An error as `--json` prints it: `{"error": …}`.
struct JSONErrorReport<Body: Encodable>: Encodable {
    let error: Body
}

/// An error of the CLI itself (not the client library) as JSON: its kind, sentence and hint.
struct CLIErrorBody: Encodable {
    let code: String
    let message: String
    let hint: String?
    var problems: [String]? = nil
}

extension Curbside {
    /// What to print on standard error for `error`, which the command ended with, and the exit status; nil for the
    /// argument parser's own errors and requests (`--help`, validation), which it prints itself.
    public static func failure(_ error: any Error, json: Bool) -> (report: String, status: Int32)? {
        if isArgumentParserError(error) {
            guard json, exitCode(for: error) != .success else { return nil }
            return (encode(CLIErrorBody(code: "usage", message: message(for: error), hint: "`curbside help` lists the commands; `curbside help COMMAND` explains one")), exitCode(for: error).rawValue)
        }
        guard let error = error as? any CurbsideReportableError else {
            // Not expected: said plainly, without a stack of internals.
            return json
                ? (encode(CLIErrorBody(code: "internal", message: "\(error)", hint: nil)), ExitStatus.failure)
                : ("curbside: error: \(error)\n", ExitStatus.failure)
        }
        return (json ? error.jsonReport : error.report, error.exitStatus)
    }

    /// A command line that did not parse, in `--json` mode when `--json` is among its words.
    public static func parseFailure(_ error: any Error, arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> (report: String, status: Int32)? {
        guard arguments.contains("--json") else { return nil }
        return failure(error, json: true)
    }

    static func isArgumentParserError(_ error: any Error) -> Bool {
        error is ValidationError || error is CleanExit || error is ExitCode || String(reflecting: type(of: error)).hasPrefix("ArgumentParser.")
    }

    static func encode(_ body: some Encodable) -> String {
        let data = (try? JSONEncoder.cli.encode(JSONErrorReport(error: body))) ?? Data(#"{"error":{"code":"internal"}}"#.utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}

extension Curbside.Init: ProviderCommand {}
extension Curbside.Whoami: ProviderCommand {}
extension Curbside.Contacts.List: ProviderCommand {}
extension Curbside.Contacts.Show: ProviderCommand {}
extension Curbside.Contacts.Verify: ProviderCommand {}
extension Curbside.Send: ProviderCommand {}
extension Curbside.Reply: ProviderCommand {}
extension Curbside.Inbox: ProviderCommand {}
extension Curbside.Show: ProviderCommand {}
extension Curbside.Status: ProviderCommand {}
extension Curbside.Sync: ProviderCommand {}
extension Curbside.Watch: ProviderCommand {}
extension Curbside.Outbox.List: ProviderCommand {}
extension Curbside.Outbox.Cancel: ProviderCommand {}
extension Curbside.Prune: ProviderCommand {}
extension Curbside.Report: ProviderCommand {}

extension Curbside.Relay.RelayCheckConfig: JSONReportingCommand {
    public var reportsJSON: Bool { json }
}

/// A relay command that takes `--json` (RelayOutputOption).
protocol RelayOutputCommand: JSONReportingCommand {
    var output: RelayOutputOption { get }
}

extension RelayOutputCommand {
    public var reportsJSON: Bool { output.json }
}

extension Curbside.Relay.RelayEnroll: RelayOutputCommand {}
extension Curbside.Relay.RelayAccounts: RelayOutputCommand {}
extension Curbside.Relay.RelayRevoke: RelayOutputCommand {}
extension Curbside.Relay.RelayStatus: RelayOutputCommand {}
