import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

/// Options every provider command takes.
struct ProviderOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The profile directory (default: $CURBSIDE_HOME, else ~/.curbside).", valueName: "dir"))
    var home: String?

    @Flag(help: "Machine-readable output: one JSON document (JSON lines for watch).")
    var json = false

    var homeURL: URL { Client.home(explicit: home) }

    /// Opens the profile with the passphrase from CURBSIDE_PASSPHRASE or a prompt, ready to say on standard error
    /// what it does that takes time or leaves the device: a progress line per phase that moves file bytes (on a
    /// terminal, without --json), and a `curbside: sent …` line for each message it flushes from the outbox — except
    /// `ownMessage`, which the command reports itself — and for each automatic receipt only in the count.
    func open(ownMessage: MessageID? = nil) async throws -> Client {
        let client = try await openProfile()
        if !json, isatty(STDERR_FILENO) == 1 {
            client.onTransferProgress { ProgressBar.shared.show($0) }
        }
        let own = ownMessage?.description
        client.onSent { item in
            guard item.id != own, item.kind != .receipt else { return }
            ProgressBar.shared.end()
            let title = item.title.isEmpty ? "" : ": \(item.title)"
            FileHandle.standardError.write(Data("curbside: sent \(item.kind) \(item.id) to \(item.recipient) from the outbox\(title)\n".utf8))
        }
        return client
    }

    private func openProfile() async throws -> Client {
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
            print(try CLIJSON.text(value))
        } else {
            let text = human()
            if !text.isEmpty { print(text) }
        }
    }
}

extension JSONEncoder {
    static var cli: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
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
        guard confirm else {
            guard let passphrase = readWithoutEcho(prompt) else { throw noTerminal }
            return passphrase
        }
        // A new passphrase: a typo or a short one is asked for again, not a reason to start over.
        for _ in 0..<attempts {
            guard let first = readWithoutEcho(prompt) else { throw noTerminal }
            guard first.count >= minimumLength else {
                say("That is shorter than \(minimumLength) characters; try again.\n")
                continue
            }
            guard let second = readWithoutEcho("Again: ") else { throw noTerminal }
            if second == first { return first }
            say("The two passphrases differ; try again.\n")
        }
        throw ClientError(.invalidArgument, "no passphrase was set after \(attempts) tries", hint: "run the command again when ready")
    }

    /// How many times a new passphrase is asked for.
    static let attempts = 3
    /// The shortest passphrase a profile accepts (`Client.create` enforces it).
    static let minimumLength = 8

    private static var noTerminal: ClientError {
        ClientError(.invalidArgument, "no passphrase", hint: "type it at the prompt, or set CURBSIDE_PASSPHRASE")
    }

    /// Writes `text` to the terminal the passphrase is read from.
    private static func say(_ text: String) {
        let tty = open("/dev/tty", O_WRONLY)
        guard tty >= 0 else { return }
        defer { close(tty) }
        _ = text.withCString { write(tty, $0, strlen($0)) }
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
