import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Reply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reply in the thread of a consult or reply.")
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
            let client = try await options.open()
            try await attachments.configure(client, options: options)
            let outcome: SendOutcome
            do {
                outcome = try await client.reply(to: try await resolveMessageID(id, in: client), text: body, attachments: attachments.sources)
                ProgressBar.shared.end()
            } catch let error as WireError {
                throw ClientError(.invalidArgument, "the reply cannot be sent as written: \(error)")
            }
            try report(outcome, options: options)
        }
    }
}
