import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Contacts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, show and verify the colleagues whose keys you pinned.",
            subcommands: [List.self, Show.self, Verify.self],
            defaultSubcommand: List.self
        )

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List contacts and whether they are verified.")
            @OptionGroup var options: ProviderOptions

            func run() async throws {
                let contacts = try await options.open().contacts()
                try options.output(contacts) {
                    contacts.isEmpty
                        ? "no contacts yet: sending to a handle, or `curbside contacts show HANDLE`, pins its key"
                        : contacts.map { "\($0.handle.padding(toLength: 24, withPad: " ", startingAt: 0)) \(trustWord($0))" }
                            .joined(separator: "\n")
                }
            }
        }

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Show a contact's safety number (fetching and pinning the key on first use)."
            )
            @OptionGroup var options: ProviderOptions
            @Argument(help: "The colleague's handle.") var handle: String

            func run() async throws {
                let contact = try await options.open().contact(try parseHandle(handle))
                try options.output(contact) {
                    var lines = [
                        "handle         \(contact.handle)",
                        "status         \(trustWord(contact))",
                        "identity key   \(contact.identityKey)",
                    ]
                    if let changed = contact.changedKey { lines.append("NEW key        \(changed)") }
                    lines.append("safety number  (compare with \(contact.handle) in person or by phone)")
                    lines += contact.safetyNumber.split(separator: " ").chunked(4).map { "               " + $0.joined(separator: " ") }
                    lines.append("then: curbside contacts verify \(contact.handle) NUMBER")
                    return lines.joined(separator: "\n")
                }
            }
        }

        struct Verify: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Mark a contact verified after comparing safety numbers (accepts a changed key).",
                discussion: """
                    Compare the number with your colleague in person or by phone (`curbside contacts show HANDLE` \
                    prints it), never through the relay, then give it here as read, with or without spaces.

                    Example:
                      curbside contacts verify osei.derm 05870 21163 04921 18327 31907 52148 26744 10932 77615 41208 39551 60473
                    """
            )
            @OptionGroup var options: ProviderOptions
            @Argument(help: "The colleague's handle.") var handle: String
            @Argument(parsing: .remaining, help: "The 60-digit safety number you compared (spaces allowed).") var number: [String]

            func run() async throws {
                let contact = try await options.open().verify(try parseHandle(handle), safetyNumber: number.joined(separator: " "))
                try options.output(contact) { "verified     \(contact.handle)" }
            }
        }
    }
}
