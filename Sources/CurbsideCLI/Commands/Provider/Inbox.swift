import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Inbox: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Fetch, then list consults, replies and receipts, newest first.")
        @OptionGroup var options: ProviderOptions
        @Option(help: "When nothing new arrived, wait up to this many seconds for something to.") var wait: Int = 0

        func run() async throws {
            let client = try await options.open()
            var report = try await client.sync()
            var waited = 0
            while report.received + report.receipts == 0, waited < wait, report.reachedRelay {
                try await Task.sleep(for: .seconds(1))
                waited += 1
                report = try await client.sync()
            }
            let items = try await client.inbox()
            let unopened = try await client.unopenedEnvelopes()
            struct Output: Encodable {
                let relayReached: Bool
                let messages: [MessageSummary]
                /// Envelopes that reached this device and could not be opened; their senders were told.
                let unopened: [UnopenedEnvelope]
            }
            try options.output(Output(relayReached: report.reachedRelay, messages: items, unopened: unopened)) {
                var lines: [String] = []
                if !report.reachedRelay { lines.append("(the relay could not be reached; showing what this device has)") }
                // Each is reported once, grouped by sender: nothing that arrived may go unmentioned.
                var bySender: [String: Int] = [:]
                for envelope in unopened where !envelope.shown { bySender[envelope.sender, default: 0] += 1 }
                for (sender, count) in bySender.sorted(by: { $0.key < $1.key }) {
                    lines.append(
                        "\(count) \(count == 1 ? "message" : "messages") from \(sender) could not be opened — ask them to send it again "
                            + "(they were told it failed)"
                    )
                }
                if items.isEmpty, bySender.isEmpty { lines.append("nothing received yet") }
                for item in items {
                    let urgency = item.urgency.map { " [\($0)]" } ?? ""
                    lines.append("\(item.id)  \(formatTime(item.createdAt))  \(item.kind.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)) from \(item.peer)\(urgency)  \(item.title)")
                }
                return lines.joined(separator: "\n")
            }
            if let newest = unopened.map(\.sequence).max() { try await client.markUnopenedShown(through: newest) }
        }
    }
}
