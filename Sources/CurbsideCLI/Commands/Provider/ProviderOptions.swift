import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

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
    /// The relay refused, or something broke the protocol.
    public static let `protocol`: Int32 = 76
    /// The profile could not be opened: wrong passphrase, damaged files.
    public static let profile: Int32 = 77
    /// A relay's settings (relay.conf, CURBSIDE_RELAY_* variables) have problems; each is printed.
    public static let configuration: Int32 = 78

    static let help = """
        Exit status: 0 ok; 64 usage (bad arguments, unknown handle or id); 65 trust (a contact's key changed or a \
        safety number did not match; nothing was sent); 69 network (relay unreachable or certificate mismatch; \
        queued messages are kept); 76 protocol (the relay refused or broke the protocol); 77 profile (wrong \
        passphrase or damaged profile); 78 configuration (relay.conf or a CURBSIDE_RELAY_* variable has a problem); \
        1 anything else.
        """
}

extension ClientError: CurbsideReportableError {
    public var report: String {
        "curbside: error: \(message)\n" + (hint.map { "curbside: hint: \($0)\n" } ?? "")
    }

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

/// Options every provider command takes.
struct ProviderOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The profile directory (default: $CURBSIDE_HOME, else ~/.curbside).", valueName: "dir"))
    var home: String?

    @Flag(help: "Machine-readable output: one JSON document (JSON lines for watch).")
    var json = false

    var homeURL: URL { Client.home(explicit: home) }

    /// Opens the profile with the passphrase from CURBSIDE_PASSPHRASE or a prompt.
    func open() async throws -> Client {
        let home = homeURL
        guard FileManager.default.fileExists(atPath: home.appendingPathComponent("identity.json").path) else {
            throw ClientError(
                .noProfile,
                "there is no Curbside profile in \(home.path)",
                hint: "create one with `curbside init`, or point --home (or CURBSIDE_HOME) at yours"
            )
        }
        return try await Client.open(home: home, passphrase: try Passphrase.read(prompt: "Passphrase for \(home.path): "))
    }

    /// Prints `value` as JSON, or `human()` otherwise.
    func output<T: Encodable>(_ value: T, human: () -> String) throws {
        if json {
            print(String(decoding: try JSONEncoder.cli.encode(value), as: UTF8.self))
        } else {
            let text = human()
            if !text.isEmpty { print(text) }
        }
    }
}

extension JSONEncoder {
    static var cli: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }
}

/// Reads the passphrase: CURBSIDE_PASSPHRASE if set, else from the terminal without echo.
enum Passphrase {
    static func read(prompt: String, confirm: Bool = false) throws -> SecretBytes {
        if let fromEnvironment = ProcessInfo.processInfo.environment["CURBSIDE_PASSPHRASE"] {
            return SecretBytes(Array(fromEnvironment.utf8))
        }
        guard let first = readWithoutEcho(prompt) else {
            throw ClientError(.invalidArgument, "no passphrase", hint: "type it at the prompt, or set CURBSIDE_PASSPHRASE")
        }
        if confirm {
            guard let second = readWithoutEcho("Again: "), second == first else {
                throw ClientError(.invalidArgument, "the passphrases differ")
            }
        }
        return first
    }

    /// Reads one line from /dev/tty with echo off; nil without a terminal.
    private static func readWithoutEcho(_ prompt: String) -> SecretBytes? {
        let tty = open("/dev/tty", O_RDWR)
        guard tty >= 0 else { return nil }
        defer { close(tty) }
        var original = termios()
        guard tcgetattr(tty, &original) == 0 else { return nil }
        var silent = original
        silent.c_lflag &= ~tcflag_t(ECHO)
        _ = tcsetattr(tty, TCSAFLUSH, &silent)
        defer {
            _ = tcsetattr(tty, TCSAFLUSH, &original)
            _ = write(tty, "\n", 1)
        }
        _ = prompt.withCString { write(tty, $0, strlen($0)) }
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while Glibc.read(tty, &byte, 1) == 1, byte != 10 { bytes.append(byte) }
        defer { secureWipe(&bytes) }
        return SecretBytes(bytes)
    }

    private static func secureWipe(_ bytes: inout [UInt8]) {
        for index in bytes.indices { bytes[index] = 0 }
    }
}

/// Prints milliseconds since 1970 as an ISO 8601 time in UTC.
func formatTime(_ milliseconds: UInt64?) -> String {
    guard let milliseconds else { return "—" }
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
}

/// Milliseconds as "2 h 05 min", "3 min 12 s" or "840 ms".
func formatDuration(_ milliseconds: UInt64?) -> String {
    guard let milliseconds else { return "—" }
    let seconds = milliseconds / 1000
    if seconds >= 3600 { return "\(seconds / 3600) h \(String(format: "%02d", (seconds % 3600) / 60)) min" }
    if seconds >= 60 { return "\(seconds / 60) min \(seconds % 60) s" }
    if seconds >= 1 { return "\(seconds) s" }
    return "\(milliseconds) ms"
}

func parseHandle(_ text: String) throws -> Handle {
    do {
        return try Handle(text)
    } catch {
        throw ClientError(.invalidArgument, "\"\(text)\" is not a valid handle", hint: "handles look like amara.gp: lower case letters, digits, dots, dashes")
    }
}

func parseMessageID(_ text: String) throws -> MessageID {
    guard let bytes = [UInt8](hexString: text), let id = try? MessageID(rawValue: bytes) else {
        throw ClientError(.invalidArgument, "\"\(text)\" is not a message id (32 hex digits)", hint: "`curbside inbox` and `curbside status` list ids")
    }
    return id
}
