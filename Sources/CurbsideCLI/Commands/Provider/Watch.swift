import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stay connected and print arrivals and receipts as they happen; reconnects with back-off. Ctrl-C stops."
        )
        @OptionGroup var options: ProviderOptions

        func run() async throws {
            let client = try await options.open()
            let json = options.json
            let watching = Task {
                await client.watch { event in
                    let line =
                        json
                        ? ((try? CLIJSON.text(event)) ?? "")
                        : "\(formatTime(event.at))  \(event.kind.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0)) \(event.detail)"
                    // Unbuffered, so a pipe sees each event as it happens.
                    FileHandle.standardOutput.write(Data((line + "\n").utf8))
                }
            }
            let signals = SignalWatcher(signals: [SIGINT, SIGTERM]) { _ in watching.cancel() }
            defer { signals.cancel() }
            await watching.value
        }
    }
}
