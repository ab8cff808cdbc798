import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Outbox: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List what waits in the outbox, or cancel a message there before the relay stores it.",
            discussion: """
                A message waits in the outbox until the relay stores it: the relay could not be reached, the \
                recipient's key changed, or the relay refused it. Any command that reaches the relay sends what waits \
                and says what it sent. A message the relay has stored cannot be recalled.
                """,
            subcommands: [List.self, Cancel.self],
            defaultSubcommand: List.self
        )

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List waiting messages, oldest first: id, recipient, subject, size, last error."
            )
            @OptionGroup var options: ProviderOptions

            func run() async throws {
                let items = try await options.open().outbox()
                try options.output(items) {
                    guard !items.isEmpty else { return "the outbox is empty" }
                    return items.map { item in
                        let files = item.attachments == 0 ? "" : " (\(item.attachments) \(item.attachments == 1 ? "file" : "files"))"
                        var line =
                            "\(item.id)  \(formatTime(item.queuedAt))  \(item.kind) to \(item.recipient)  "
                            + "\(ProgressBar.bytes(item.bytes))\(files)  \(item.title)"
                        if item.sending {
                            line += "\n    being sent, or its sending was interrupted: the relay may have stored it"
                        }
                        if let error = item.lastError {
                            line +=
                                "\n    last error (\(item.attempts) \(item.attempts == 1 ? "attempt" : "attempts")): \(error)"
                        }
                        return line
                    }.joined(separator: "\n")
                }
            }
        }

        struct Cancel: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Cancel a waiting message: deleted with its files, it will never be sent."
            )
            @OptionGroup var options: ProviderOptions
            @Argument(help: "The message's id as `curbside outbox` lists it, or its first 6 or more hex digits.") var id: String

            func run() async throws {
                let client = try await options.open()
                let messageID = try await resolveMessageID(id, in: client)
                let outcome = try await client.cancelQueued(messageID, evenIfSending: true)
                struct Output: Encodable {
                    let id: String
                    let outcome: OutboxCancellation
                }
                switch outcome {
                case .cancelled, .cancelledButMayBeStored:
                    // The relay forgets the uploads now if it can be reached; otherwise at the next sync.
                    await client.abandonCancelledUploads()
                    try options.output(Output(id: messageID.description, outcome: outcome)) {
                        outcome == .cancelled
                            ? "cancelled \(messageID): it was not sent, nobody will receive it"
                            : "cancelled \(messageID) on this device, but its sending had begun: the relay may have stored it, "
                                + "and a stored message cannot be recalled"
                    }
                case .alreadyStored:
                    throw CLIError(
                        "\(messageID) is no longer in the outbox: the relay stored it, and a stored message cannot be recalled",
                        hint:
                            "`curbside status \(messageID)` shows where it stands; tell its recipient if it was sent in error"
                    )
                case .notQueued, .sending:
                    throw ClientError(
                        .unknownMessage,
                        "there is no message \(messageID) in the outbox",
                        hint: "`curbside outbox` lists what waits"
                    )
                }
            }
        }
    }
}
