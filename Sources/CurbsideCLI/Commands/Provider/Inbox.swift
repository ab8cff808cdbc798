import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Inbox: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fetch, then list the consults and replies you received, newest first (--all adds receipts).",
            discussion: """
                One line each: * when unread, the id, when it was written, who sent it, a consult's urgency, its \
                subject (a reply: re: its consult's subject, then its first line), and its attachments with their \
                real sizes. `curbside show ID` reads one (6 or more digits of the id are enough); \
                `curbside show ID --save-dir DIR` exports its attachments.
                """
        )
        @OptionGroup var options: ProviderOptions
        @Flag(help: "Also list receipts (delivered, read, failed) for what you sent.") var all = false
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
            let received = try await client.inbox()
            let items = all ? received : received.filter { $0.kind != .receipt }
            let hiddenReceipts = received.count - items.count
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
                if items.isEmpty, bySender.isEmpty { lines.append(received.isEmpty ? "nothing received yet" : "no consults or replies yet") }
                let colour = MessageLine.colourAllowed()
                lines += items.map { MessageLine(summary: $0, colour: colour).text }
                let unread = items.count { $0.unread == true }
                var footer: [String] = []
                if unread > 0 { footer.append("* \(unread) unread: `curbside show ID` reads one") }
                if items.contains(where: { $0.attachments != nil }) { footer.append("`curbside show ID --save-dir DIR` exports attachments") }
                if hiddenReceipts > 0 { footer.append("\(hiddenReceipts) \(hiddenReceipts == 1 ? "receipt" : "receipts") not listed (--all lists them)") }
                if !footer.isEmpty { lines += [""] + footer }
                return lines.joined(separator: "\n")
            }
            if let newest = unopened.map(\.sequence).max() { try await client.markUnopenedShown(through: newest) }
        }
    }
}
