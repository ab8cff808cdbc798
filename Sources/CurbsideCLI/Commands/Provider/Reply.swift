import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Reply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Reply in the thread of a consult or reply; prints the reply's id.",
            discussion: """
                As with send: a reply that waits in the outbox exits with status 75, and Ctrl-C cancels it unless the \
                relay has stored it already (status 130).

                Examples:
                  curbside reply 3f9a0c… --text "Features suggest a dysplastic naevus; excise with 2 mm margins."
                  curbside reply 3f9a0c… --text-file answer.txt --image annotated.png
                """
        )
        @OptionGroup var options: ProviderOptions
        @Argument(help: "The id of the consult or reply you answer.") var id: String
        @Option(help: "The reply.") var text: String?
        @Option(help: ArgumentHelp("Read the reply from a file.", valueName: "file")) var textFile: String?
        @OptionGroup var attachments: AttachmentOptions

        func validate() throws {
            guard (text == nil) != (textFile == nil) else { throw ValidationError("give exactly one of --text and --text-file") }
            try attachments.validate()
        }

        func run() async throws {
            var body = text ?? ""
            if let textFile {
                guard let data = FileManager.default.contents(atPath: textFile) else { throw ClientError(.fileNotAccessible, "cannot read \(textFile)") }
                body = String(decoding: data, as: UTF8.self)
            }
            let text = body
            let replyID = MessageID.random()
            let client = try await options.open(ownMessage: replyID)
            let original = try await resolveMessageID(id, in: client)
            await attachments.configure(client)
            let sources = attachments.sources
            let outcome: SendOutcome
            do {
                outcome = try await InterruptibleSend.run("reply", id: replyID, client: client, options: options) {
                    try await client.reply(to: original, text: text, attachments: sources, replyID: replyID)
                }
                ProgressBar.shared.end()
            } catch let error as WireError {
                throw ClientError(.invalidArgument, "the reply cannot be sent as written: \(error)")
            }
            try report(outcome, options: options)
        }
    }
}
