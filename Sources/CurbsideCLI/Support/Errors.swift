import CurbsideClient

/// Exit statuses, documented in `curbside --help` (sysexits.h numbers where one fits).
public enum ExitStatus {
    public static let success: Int32 = 0
    /// Anything not listed below.
    public static let failure: Int32 = 1
    /// A wrong command, option, handle or message id.
    public static let usage: Int32 = 64
    /// A contact's key changed or a safety number did not match: nothing was sent.
    public static let trust: Int32 = 65
    /// The relay could not be reached (or showed another certificate key); queued work is kept.
    public static let network: Int32 = 69
    /// `send` or `reply`: the message is queued in the outbox, not yet stored on the relay; a later command that
    /// reaches the relay sends it (EX_TEMPFAIL).
    public static let queued: Int32 = 75
    /// The relay refused, or something broke the protocol.
    public static let `protocol`: Int32 = 76
    /// The profile could not be opened: wrong passphrase, damaged files.
    public static let profile: Int32 = 77
    /// A relay's settings (relay.conf, CURBSIDE_RELAY_* variables) have problems; each is printed.
    public static let configuration: Int32 = 78
    /// Ctrl-C (SIGINT) or SIGTERM stopped a `send` or `reply`; what became of the message is printed.
    public static let interrupted: Int32 = 130

    static let help = """
        Exit status: 0 ok; 64 usage (bad arguments, unknown handle or id); 65 trust (a contact's key changed or a \
        safety number did not match; nothing was sent); 69 network (relay unreachable or certificate mismatch; \
        queued messages are kept); 75 queued (send or reply: the message waits in the outbox, not yet stored on the \
        relay; a later command that reaches the relay sends it); 76 protocol (the relay refused or broke the protocol); 77 profile (wrong \
        passphrase or damaged profile); 78 configuration (relay.conf or a CURBSIDE_RELAY_* variable has a problem); \
        130 interrupted (Ctrl-C during send or reply: the message was cancelled, or it is said why not); 1 anything else.
        """

    /// The statuses of `curbside relay` commands, in `curbside relay --help`.
    static let relayHelp = """
        Exit status: 0 ok; 64 usage (bad arguments; a handle that is not registered, or is registered already, for \
        the command given; init on a directory that holds a relay); 69 network (serve: the listen address is in use \
        or cannot be bound; the PostgreSQL database cannot be reached or takes no writes); 78 configuration (no \
        relay.conf in --data, or a setting in relay.conf or a CURBSIDE_RELAY_* variable has a problem); 1 anything \
        else (a file could not be used; migrate's checks failed).
        """
}

extension ClientError: CurbsideReportableError {
    public var report: String {
        "curbside: error: \(message)\n" + (hint.map { "curbside: hint: \($0)\n" } ?? "")
    }

    public var jsonReport: String { Curbside.encode(self) }

    public var exitStatus: Int32 {
        switch category {
        case .usage: ExitStatus.usage
        case .trust: ExitStatus.trust
        case .network: ExitStatus.network
        case .protocol: ExitStatus.protocol
        case .profile: ExitStatus.profile
        }
    }
}

/// An error the executable prints itself, as `curbside: error: …` and `curbside: hint: …` lines.
public protocol CurbsideReportableError: Error {
    /// The lines to print on standard error, each ending in a newline.
    var report: String { get }
    /// The process's exit status (ExitStatus).
    var exitStatus: Int32 { get }
    /// The same, as one line of JSON for `--json` mode: `{"error": {"code": …, "message": …, "hint": …}}`.
    var jsonReport: String { get }
}

extension CurbsideReportableError {
    public var exitStatus: Int32 { ExitStatus.failure }
}

/// An error the CLI prints as `curbside: error: …` with optional hints, the way age does, exiting with `exitStatus`
/// (ExitStatus; `failure` unless the error says which kind it is).
struct CLIError: CurbsideReportableError, CustomStringConvertible {
    let message: String
    let hint: String?
    let exitStatus: Int32

    init(_ message: String, hint: String? = nil, exitStatus: Int32 = ExitStatus.failure) {
        self.message = message
        self.hint = hint
        self.exitStatus = exitStatus
    }

    var description: String {
        hint.map { "\(message)\ncurbside: hint: \($0)" } ?? message
    }

    var report: String { "curbside: error: \(description)\n" }

    var jsonReport: String { Curbside.encode(CLIErrorBody(code: "failed", message: message, hint: hint)) }
}

/// A command that ends with its own status after saying why on standard error: a message left queued (75), a send
/// interrupted by Ctrl-C (130). `report` holds its `curbside: …` lines.
struct CommandEnding: CurbsideReportableError {
    let message: String
    let hint: String?
    let exitStatus: Int32

    init(_ message: String, hint: String? = nil, status: Int32) {
        self.message = message
        self.hint = hint
        exitStatus = status
    }

    var report: String { "curbside: \(message)\n" + (hint.map { "curbside: hint: \($0)\n" } ?? "") }

    var jsonReport: String {
        let code = switch exitStatus {
        case ExitStatus.queued: "queued"
        case ExitStatus.interrupted: "interrupted"
        default: "failed"
        }
        return Curbside.encode(CLIErrorBody(code: code, message: message, hint: hint))
    }
}
