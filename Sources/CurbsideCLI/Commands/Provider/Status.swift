import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each consult's timeline — created, stored, delivered to device, delivered, read, answered — and its time to answer."
        )
        @OptionGroup var options: ProviderOptions
        @Argument(help: "One message id, or its first 6 or more hex digits (default: everything you sent).") var id: String?

        func run() async throws {
            let client = try await options.open()
            _ = try await client.sync()
            var messageID: MessageID?
            if let id { messageID = try await resolveMessageID(id, in: client) }
            let statuses = try await client.status(messageID)
            try options.output(statuses) {
                if statuses.isEmpty { return "nothing sent yet" }
                return statuses.map { (status: ConsultStatus) -> String in
                    let steps: [String] = [
                        "\(status.summary.kind) \(status.summary.id) to \(status.summary.peer): \(status.summary.title)"
                            + (status.queued ? "  (queued: waiting for the relay)" : ""),
                        "  created              \(formatTime(status.created))",
                        "  stored               \(formatTime(status.stored))",
                        "  delivered to device  \(formatTime(status.deliveredToDevice))",
                        "  delivered            \(formatTime(status.delivered))",
                        "  read                 \(formatTime(status.read))",
                        "  answered             \(formatTime(status.answered))",
                        "  time to answer       \(formatDuration(status.timeToAnswer))",
                    ]
                    // Failures and expiry are never silent: each is its own line with what the other side said.
                    let problems: [String] = status.timeline.filter { $0.kind == .failed || $0.kind == .expired }.map { event in
                        let label = event.kind.rawValue.padding(toLength: 19, withPad: " ", startingAt: 0)
                        return "  \(label)  \(formatTime(event.at))" + (event.detail.map { "  \($0)" } ?? "")
                    }
                    return (steps + problems).joined(separator: "\n")
                }
                .joined(separator: "\n\n")
            }
        }
    }
}
