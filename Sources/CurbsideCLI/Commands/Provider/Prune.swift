import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Free space in the profile: encrypted copies of sent files no longer needed, and leftovers.",
            discussion: """
                Sent attachments' encrypted copies are deleted by every sync once the recipient's device has them. \
                prune also deletes those the relay stored more than --sent-days days ago (it keeps undelivered \
                consults 14 days by default) and files no message refers to, such as those of an interrupted send. \
                Received files and everything in the outbox are kept.
                """
        )
        @OptionGroup var options: ProviderOptions
        @Option(help: "Delete copies of sent files the relay stored at least this many days ago.") var sentDays: Int =
            14

        func validate() throws {
            guard sentDays >= 0 else { throw ValidationError("--sent-days must be 0 or more") }
        }

        func run() async throws {
            let before =
                Timestamp.now().millisecondsSince1970
                - min(UInt64(sentDays) * 86_400_000, Timestamp.now().millisecondsSince1970)
            let report = try await options.open().prune(sentStoredBefore: before)
            try options.output(report) {
                report.bytes == 0 && report.sentCopies + report.leftovers == 0
                    ? "nothing to free"
                    : "freed \(ProgressBar.bytes(report.bytes)): \(report.sentCopies) sent \(report.sentCopies == 1 ? "copy" : "copies"), "
                        + "\(report.leftovers) \(report.leftovers == 1 ? "leftover" : "leftovers")"
            }
        }
    }
}
