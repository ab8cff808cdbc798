import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Sync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send the outbox, fetch what waits, apply receipts, keep prekeys topped up.")
        @OptionGroup var options: ProviderOptions

        func run() async throws {
            let report = try await options.open().sync()
            try options.output(report) {
                report.reachedRelay
                    ? "sent \(report.sent), received \(report.received), receipts \(report.receipts), notices \(report.notices)"
                        + (report.failed > 0 ? ", could not open \(report.failed)" : "") + (report.queued > 0 ? ", still queued \(report.queued)" : "")
                    : "the relay could not be reached; \(report.queued) message(s) stay queued"
            }
            if !report.reachedRelay {
                throw report.queueError
                    ?? ClientError(.unreachable, "the relay could not be reached", hint: "queued messages are kept; run `curbside sync` again later")
            }
        }
    }
}
