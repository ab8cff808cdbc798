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
        @Argument(help: "The message id, or its first 6 or more hex digits.") var id: String
        @Option(help: ArgumentHelp("Decrypt the attachments into this directory.", valueName: "dir")) var saveDir: String?
        @Option(
            help: ArgumentHelp(
                "Also write each attachment as received (NAME.age) with its single-use identity (NAME.key), to check with another age implementation.",
                valueName: "dir"
            )
        )
        var rawDir: String?

        /// Why a received attachment is not on this device, for people.
        static func why(_ state: AttachmentState) -> String {
            switch state {
            case .unavailable: "the relay no longer has it, or it was not fetched yet (run `curbside sync`)"
            case .corrupt: "its size, SHA-256 or encryption did not check; the sender was told"
            case .tooLarge: "larger than this device accepts; the sender was told"
            case .overSenderLimit: "past today's limit for this sender; the sender was told"
            case .discarded: "its encrypted copy was deleted once the recipient's device had it"
            case .ready, .uploaded, .saved: "\(state)"
            }
        }

        func run() async throws {
            let client = try await options.open()
            let messageID = try await resolveMessageID(id, in: client)
            let shown = try await client.show(messageID)
            var exported: [String] = [], raw: [String] = []
            if let saveDir { exported = try await client.saveAttachments(of: messageID, to: saveDir) }
            if let rawDir { raw = try await client.saveAttachments(of: messageID, to: rawDir, raw: true) }
            let saved = exported + raw
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
                    // Where each one is: exported just now, ready to export, or why it is not on this device.
                    var exportedPaths = exported[...]
                    for attachment in shown.attachments {
                        let described = "  " + AttachmentDescription(attachment).short
                        let onThisDevice = attachment.state == .saved || attachment.state == .ready || attachment.state == .uploaded
                        if onThisDevice, let path = exportedPaths.popFirst() {
                            lines.append("\(described) — saved as \(path)")
                        } else if onThisDevice {
                            lines.append("\(described) — `curbside show \(id) --save-dir DIR` to export")
                        } else {
                            lines.append("\(described) — not on this device: \(Self.why(attachment.state))")
                        }
                    }
                }
                lines += raw.map { "saved        \($0)" }
                return lines.joined(separator: "\n")
            }
        }
    }
}
