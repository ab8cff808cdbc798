import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stay connected and print arrivals and receipts as they happen; reconnects with back-off. Ctrl-C stops.",
            discussion: """
                Each consult or reply that arrives is printed as its `curbside inbox` line (an emergency in red on a \
                terminal; NO_COLOR turns colour off). Receipts and notices about what you sent name the message and \
                the step it reached. With --json, one JSON object a line: event, at, and the message's id, peer, \
                kind, urgency, title (and step, for receipts and notices).
                """
        )
        @OptionGroup var options: ProviderOptions

        func run() async throws {
            let client = try await options.open()
            let json = options.json
            let colour = MessageLine.colourAllowed()
            let watching = Task {
                await client.watch { event in
                    let line =
                        json
                        ? ((try? CLIJSON.text(event)) ?? "")
                        : Self.line(for: event, colour: colour)
                    // Unbuffered, so a pipe sees each event as it happens.
                    FileHandle.standardOutput.write(Data((line + "\n").utf8))
                }
            }
            let signals = SignalWatcher(signals: [SIGINT, SIGTERM]) { _ in watching.cancel() }
            defer { signals.cancel() }
            await watching.value
        }

        /// An arrival as its inbox line; anything else as its time, its word and what it is about.
        static func line(for event: WatchEvent, colour: Bool) -> String {
            let head = "\(formatTime(event.at))  \(event.kind.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0)) "
            guard let message = event.message else { return head + (event.detail ?? "") }
            if event.kind == .received { return MessageLine(summary: message, colour: colour).text }
            let step = event.step.map { "\($0)".replacingOccurrences(of: "_", with: " ") + ": " } ?? ""
            let about = "\(step)\(message.kind) \(message.id) to \(message.peer)  \(MessageLine(summary: message, colour: false).title)"
            return head + about + (event.detail.map { " — \($0)" } ?? "")
        }
    }
}
