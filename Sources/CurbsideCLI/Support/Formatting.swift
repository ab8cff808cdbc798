import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

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

/// The message `text` names: its id or a unique prefix of it (`Client.messageID(matching:)`).
func resolveMessageID(_ text: String, in client: Client) async throws -> MessageID {
    try await client.messageID(matching: text)
}

/// Prints a send's outcome: only its id on standard output (or the outcome as JSON). A message that waits in the
/// outbox ends the command with status 75 (`ExitStatus.queued`) and a line on standard error saying why.
func report(_ outcome: SendOutcome, options: ProviderOptions) throws {
    if !options.json {
        for note in outcome.removedMetadata { FileHandle.standardError.write(Data("curbside: removed \(note)\n".utf8)) }
    }
    try options.output(outcome) { outcome.id }
    guard outcome.stored else {
        throw CommandEnding(
            "queued, not yet stored: \(outcome.waiting ?? "the relay could not be reached")",
            hint: "it waits in the outbox; any later command that reaches the relay (`curbside sync`) sends it, "
                + "and `curbside outbox cancel \(outcome.id)` withdraws it",
            status: ExitStatus.queued
        )
    }
}

/// How a contact's key is trusted, in a word or three.
func trustWord(_ contact: Contact) -> String {
    if contact.changedKey != nil { return "KEY CHANGED — sending blocked until verified" }
    return contact.verified ? "verified" : "not verified"
}

extension String {
    /// The string cut into pieces of `size` characters (the last may be shorter).
    func chunked(_ size: Int) -> [String] {
        Array(self).chunked(size).map { String($0) }
    }
}

extension Array {
    func chunked(_ size: Int) -> [[Element]] {
        stride(from: 0, to: count, by: size).map { Array(self[$0..<Swift.min($0 + size, count)]) }
    }
}
