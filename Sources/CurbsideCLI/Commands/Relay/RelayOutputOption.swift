import ArgumentParser
import CurbsideWire
import Foundation

/// The `--json` flag of relay commands that print a result, as provider commands have it.
struct RelayOutputOption: ParsableArguments {
    @Flag(help: "Machine-readable output: one JSON document.")
    var json = false

    /// Prints `value` as JSON (sorted snake_case keys, as provider commands do), or `human()` otherwise.
    func output<T: Encodable>(_ value: T, human: () -> String) throws {
        if json {
            print(try CLIJSON.text(value))
        } else {
            let text = human()
            if !text.isEmpty { print(text) }
        }
    }
}

/// A time for relay output: ISO 8601 in UTC, as provider commands print times.
func formatTime(_ timestamp: Timestamp?) -> String {
    formatTime(timestamp.map(\.millisecondsSince1970))
}

/// "1 queued message", "2 queued messages": a count and its noun, in the plural unless it is one.
func counted(_ count: Int, _ noun: String) -> String {
    "\(count) \(noun)\(count == 1 ? "" : "s")"
}
