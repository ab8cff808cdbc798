import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a consult or reply (and send its read receipt).",
            discussion: """
                The id is the one `curbside inbox` lists. Attachments stay encrypted in the profile until --save-dir \
                writes them out.

                Examples:
                  curbside show 3f9a0c…
                  curbside show 3f9a0c… --save-dir ~/consults/lesion
                """
        )
        @OptionGroup var options: ProviderOptions
        @Argument(help: "The message id.") var id: String
        @Option(help: ArgumentHelp("Decrypt the attachments into this directory.", valueName: "dir")) var saveDir: String?
        @Option(
            help: ArgumentHelp(
                "Also write each attachment as received (NAME.age) with its single-use identity (NAME.key), to check with another age implementation.",
                valueName: "dir"
            )
        )
        var rawDir: String?

        func run() async throws {
            let client = try await options.open()
            let messageID = try parseMessageID(id)
            let shown = try await client.show(messageID)
            var saved: [String] = []
            if let saveDir { saved += try await client.saveAttachments(of: messageID, to: saveDir) }
            if let rawDir { saved += try await client.saveAttachments(of: messageID, to: rawDir, raw: true) }
            struct Output: Encodable {
                let message: ShownMessage
                let saved: [String]
            }
            try options.output(Output(message: shown, saved: saved)) {
                var lines = [
                    "\(shown.summary.kind) \(shown.summary.id) \(shown.summary.direction == .incoming ? "from" : "to") \(shown.summary.peer)",
                    "sent         \(formatTime(shown.summary.createdAt))",
                ]
                if let subject = shown.subject { lines.append("subject      \(subject)") }
                if let urgency = shown.summary.urgency { lines.append("urgency      \(urgency)") }
                if let specialty = shown.specialty { lines.append("specialty    \(specialty)") }
                if let question = shown.question { lines += ["", "question:", question] }
                if let summary = shown.clinicalSummary, !summary.isEmpty { lines += ["", "summary:", summary] }
                if let inReplyTo = shown.inReplyTo { lines.append("in reply to  \(inReplyTo)") }
                if let text = shown.text { lines += ["", text] }
                if !shown.attachments.isEmpty {
                    lines += ["", "attachments:"]
                    for attachment in shown.attachments {
                        lines.append("  \(attachment.fileName)  \(attachment.mediaType)  \(attachment.size) bytes  \(attachment.state)")
                    }
                }
                for path in saved { lines.append("saved        \(path)") }
                return lines.joined(separator: "\n")
            }
        }
    }
}
