import Foundation
import Logging

/// Writes the relay's log to standard error, one line a record, in the CLI's style:
/// `curbside relay: connection closed connection=1f3a9c02 peer=10.0.0.7 handle=osei.derm duration=12.4s`, with the
/// level after the prefix when it is not info (`curbside relay: warning: …`). Metadata is sorted by key; values with
/// spaces are quoted. What is logged is the relay's business: it logs no content, keys, codes or passwords.
struct RelayLogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    init(logLevel: Logger.Level) {
        self.logLevel = logLevel
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        FileHandle.standardError.write(
            Data(Self.line(event.level, event.message, metadata.merging(event.metadata ?? [:]) { $1 }).utf8)
        )
    }

    static func line(_ level: Logger.Level, _ message: Logger.Message, _ metadata: Logger.Metadata) -> String {
        var line = "curbside relay: " + (level == .info ? "" : "\(level): ") + message.description
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            let text = value.description
            line +=
                " \(key)="
                + (text.contains(where: { $0 == " " || $0 == "\"" }) || text.isEmpty
                    ? "\"\(text.replacingOccurrences(of: "\"", with: "\\\""))\"" : text)
        }
        return line + "\n"
    }
}
