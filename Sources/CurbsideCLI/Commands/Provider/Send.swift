import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a consult; prints its id.",
            discussion: """
                Prints only the consult's id on standard output. When the relay cannot be reached, the consult waits \
                in the outbox: the command says so on standard error and exits with status 75, and any later command \
                that reaches the relay (`curbside sync`) sends it. Ctrl-C cancels the consult unless the relay has \
                stored it already (then it says so: a stored consult cannot be recalled); exit status 130.

                Examples:
                  curbside send osei.derm --subject "Pigmented lesion, left forearm" \\
                      --question "Excise within two weeks?" --summary-file case.txt --image lesion.jpg --urgency urgent
                  curbside send kofi.cardio --subject "Chest pain, ST changes" --question "Transfer now?" --urgency emergency
                """
        )
        @OptionGroup var options: ProviderOptions
        @Argument(help: "The colleague's handle.") var handle: String
        @Option(help: "One line saying what the consult is about.") var subject: String
        @Option(help: "The question for the specialist.") var question: String
        @Option(help: "The case summary: history, findings, what was tried.") var summary: String?
        @Option(help: ArgumentHelp("Read the case summary from a file.", valueName: "file")) var summaryFile: String?
        @Option(help: "routine, urgent or emergency.") var urgency: String = "routine"
        @Option(help: "The specialty asked, such as dermatology.") var specialty: String = "general"
        @OptionGroup var attachments: AttachmentOptions

        func validate() throws {
            if summary != nil, summaryFile != nil { throw ValidationError("give --summary or --summary-file, not both") }
            try attachments.validate()
            guard ["routine", "urgent", "emergency"].contains(urgency) else {
                throw ValidationError("--urgency must be routine, urgent or emergency")
            }
        }

        func run() async throws {
            var text = summary ?? ""
            if let summaryFile {
                guard let data = FileManager.default.contents(atPath: summaryFile) else {
                    throw ClientError(.fileNotAccessible, "cannot read \(summaryFile)")
                }
                text = String(decoding: data, as: UTF8.self)
            }
            let consult: Consult
            do {
                consult = try Consult(
                    subject: subject,
                    urgency: urgency == "emergency" ? .emergency : urgency == "urgent" ? .urgent : .routine,
                    specialty: specialty,
                    question: question,
                    clinicalSummary: text
                )
            } catch {
                throw ClientError(.invalidArgument, "the consult cannot be sent as written: \(error)")
            }
            let recipient = try parseHandle(handle)
            let id = MessageID.random()
            let client = try await options.open(ownMessage: id)
            await attachments.configure(client)
            let sources = attachments.sources
            let outcome = try await InterruptibleSend.run("consult", id: id, client: client, options: options) {
                try await client.send(consult, to: recipient, attachments: sources, id: id)
            }
            ProgressBar.shared.end()
            try report(outcome, options: options)
        }
    }
}
