import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create your identity, register it on the relay and publish prekeys.",
            discussion: """
                The operator of the relay gives you its address, its fingerprint and an enrollment code \
                (`curbside relay enroll`). The passphrase (CURBSIDE_PASSPHRASE, or asked twice) protects the identity \
                key on this device. Prints the safety number of your own key.
                """
        )

        @OptionGroup var options: ProviderOptions
        @Option(help: "Your handle, such as amara.gp.") var handle: String
        @Option(help: ArgumentHelp("The relay's address.", valueName: "host:port")) var relay: String
        @Option(help: ArgumentHelp("SHA-256 of the relay's public key: 64 hex digits.", valueName: "sha256hex")) var relayFingerprint: String
        @Option(help: "The enrollment code from the relay's operator.") var code: String

        func run() async throws {
            let handle = try parseHandle(handle)
            guard let endpoint = RelayEndpoint(address: relay, fingerprint: relayFingerprint) else {
                throw ClientError(
                    .invalidArgument,
                    "--relay must be HOST:PORT and --relay-fingerprint 64 hex digits",
                    hint: "both are printed by `curbside relay init` on the relay"
                )
            }
            let client = try await Client.create(
                home: options.homeURL,
                handle: handle,
                relay: endpoint,
                enrollmentCode: code,
                passphrase: try Passphrase.read(prompt: "New passphrase for \(handle): ", confirm: true)
            )
            // A safety number is one half per party; this is this profile's half, which colleagues will see in theirs.
            let own = Array(client.safetyNumber(with: client.me).groups.prefix(6))
            struct Output: Encodable {
                let handle: String
                let identityKey: String
                let relay: String
                let home: String
            }
            try options.output(
                Output(handle: handle.rawValue, identityKey: client.me.identityKey.rawRepresentation.hexString, relay: "\(endpoint)", home: client.home.path)
            ) {
                """
                created      \(handle) on \(endpoint)
                profile      \(client.home.path)
                identity     \(client.me.identityKey.rawRepresentation.hexString)
                your half of every safety number (colleagues will read these 30 digits to you):
                             \(own.prefix(3).joined(separator: " "))
                             \(own.suffix(3).joined(separator: " "))
                """
            }
        }
    }

    struct Whoami: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print your handle, identity key and relay.")
        @OptionGroup var options: ProviderOptions

        func run() async throws {
            let client = try await options.open()
            struct Output: Encodable {
                let handle: String
                let identityKey: String
                let relay: String
                let relayFingerprint: String
                let home: String
            }
            let output = Output(
                handle: client.me.handle.rawValue,
                identityKey: client.me.identityKey.rawRepresentation.hexString,
                relay: "\(client.relay)",
                relayFingerprint: client.relay.fingerprint,
                home: client.home.path
            )
            try options.output(output) {
                """
                handle       \(output.handle)
                identity     \(output.identityKey)
                relay        \(output.relay)
                fingerprint  \(output.relayFingerprint)
                profile      \(output.home)
                """
            }
        }
    }

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
                abstract: "Mark a contact verified after comparing safety numbers (accepts a changed key)."
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

    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a consult; prints its id.",
            discussion: "When the relay cannot be reached, the consult is queued and `curbside sync` sends it later."
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
            let client = try await options.open()
            try await attachments.configure(client, options: options)
            let outcome = try await client.send(consult, to: try parseHandle(handle), attachments: attachments.sources)
            ProgressBar.shared.end()
            try report(outcome, options: options)
        }
    }

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
                outcome = try await client.reply(to: try parseMessageID(id), text: body, attachments: attachments.sources)
                ProgressBar.shared.end()
            } catch let error as WireError {
                throw ClientError(.invalidArgument, "the reply cannot be sent as written: \(error)")
            }
            try report(outcome, options: options)
        }
    }

    struct Inbox: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Fetch, then list consults, replies and receipts, newest first.")
        @OptionGroup var options: ProviderOptions
        @Option(help: "When nothing new arrived, wait up to this many seconds for something to.") var wait: Int = 0

        func run() async throws {
            let client = try await options.open()
            var report = try await client.sync()
            var waited = 0
            while report.received + report.receipts == 0, waited < wait, report.reachedRelay {
                try await Task.sleep(for: .seconds(1))
                waited += 1
                report = try await client.sync()
            }
            let items = try await client.inbox()
            let unopened = try await client.unopenedEnvelopes()
            struct Output: Encodable {
                let relayReached: Bool
                let messages: [MessageSummary]
                /// Envelopes that reached this device and could not be opened; their senders were told.
                let unopened: [UnopenedEnvelope]
            }
            try options.output(Output(relayReached: report.reachedRelay, messages: items, unopened: unopened)) {
                var lines: [String] = []
                if !report.reachedRelay { lines.append("(the relay could not be reached; showing what this device has)") }
                // Each is reported once, grouped by sender: nothing that arrived may go unmentioned.
                var bySender: [String: Int] = [:]
                for envelope in unopened where !envelope.shown { bySender[envelope.sender, default: 0] += 1 }
                for (sender, count) in bySender.sorted(by: { $0.key < $1.key }) {
                    lines.append(
                        "\(count) \(count == 1 ? "message" : "messages") from \(sender) could not be opened — ask them to send it again "
                            + "(they were told it failed)"
                    )
                }
                if items.isEmpty, bySender.isEmpty { lines.append("nothing received yet") }
                for item in items {
                    let urgency = item.urgency.map { " [\($0)]" } ?? ""
                    lines.append("\(item.id)  \(formatTime(item.createdAt))  \(item.kind.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)) from \(item.peer)\(urgency)  \(item.title)")
                }
                return lines.joined(separator: "\n")
            }
            if let newest = unopened.map(\.sequence).max() { try await client.markUnopenedShown(through: newest) }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a consult or reply (and send its read receipt).")
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

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each consult's timeline — created, stored, delivered to device, delivered, read, answered — and its time to answer."
        )
        @OptionGroup var options: ProviderOptions
        @Argument(help: "One message id (default: everything you sent).") var id: String?

        func run() async throws {
            let client = try await options.open()
            _ = try await client.sync()
            let statuses = try await client.status(try id.map(parseMessageID))
            try options.output(statuses) {
                if statuses.isEmpty { return "nothing sent yet" }
                return statuses.map { (status: ConsultStatus) -> String in
                    let steps: [String] = [
                        "\(status.summary.kind) \(status.summary.id) to \(status.summary.peer): \(status.summary.title)"
                            + (status.queued ? "  (queued: waiting for the relay)" : ""),
                        "  created              \(formatTime(status.created))",
                        "  stored               \(formatTime(status.stored))",
                        "  delivered to device  \(formatTime(status.deliveredToDevice))",
                        "  delivered            \(formatTime(status.delivered))",
                        "  read                 \(formatTime(status.read))",
                        "  answered             \(formatTime(status.answered))",
                        "  time to answer       \(formatDuration(status.timeToAnswer))",
                    ]
                    // Failures and expiry are never silent: each is its own line with what the other side said.
                    let problems: [String] = status.timeline.filter { $0.kind == .failed || $0.kind == .expired }.map { event in
                        let label = event.kind.rawValue.padding(toLength: 19, withPad: " ", startingAt: 0)
                        return "  \(label)  \(formatTime(event.at))" + (event.detail.map { "  \($0)" } ?? "")
                    }
                    return (steps + problems).joined(separator: "\n")
                }
                .joined(separator: "\n\n")
            }
        }
    }

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
                throw ClientError(.unreachable, report.queueReason ?? "the relay could not be reached", hint: "queued messages are kept; run `curbside sync` again later")
            }
        }
    }

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
                        ? String(decoding: (try? JSONEncoder.cli.encode(event)) ?? Data(), as: UTF8.self)
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

/// `--image FILE` (repeatable), `--keep-metadata` and `--retries` for send and reply.
struct AttachmentOptions: ParsableArguments {
    @Option(name: .customLong("image"), help: ArgumentHelp("Attach an image (JPEG or PNG; other files need --keep-metadata); repeat for several.", valueName: "file"))
    var images: [String] = []
    @Flag(
        help: ArgumentHelp(
            "Send files as they are: keep JPEG GPS data and PNG text chunks (removed by default), and allow formats "
                + "Curbside cannot clean (WebP, HEIC, TIFF, DICOM, PDF, …), which are refused by default."
        )
    )
    var keepMetadata = false
    @Option(help: "Reconnect this many times when the connection drops during a transfer.") var retries: Int = 5

    func validate() throws {
        guard images.count <= 16 else { throw ValidationError("at most 16 --image files") }
        for image in images where !FileManager.default.isReadableFile(atPath: image) {
            throw ValidationError("cannot read \(image)")
        }
        guard retries >= 0 else { throw ValidationError("--retries must be 0 or more") }
    }

    var sources: [AttachmentSource] { images.map { AttachmentSource(path: $0, keepMetadata: keepMetadata) } }

    func configure(_ client: Client, options: ProviderOptions) async throws {
        await client.setRetryLimit(retries)
        if !options.json, isatty(STDERR_FILENO) == 1 {
            client.onTransferProgress { ProgressBar.shared.show($0) }
        }
    }
}

/// A one-line progress display on standard error: bytes, rate and time left.
final class ProgressBar: @unchecked Sendable {
    static let shared = ProgressBar()
    private let lock = NSLock()
    private var started: (name: String, at: Date, from: UInt64)?
    private var lastDraw = Date.distantPast
    private var drawn = false

    func show(_ progress: TransferProgress) {
        lock.lock()
        defer { lock.unlock() }
        if started?.name != progress.fileName + progress.direction.rawValue {
            started = (progress.fileName + progress.direction.rawValue, Date(), progress.bytes)
        }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.1 || progress.bytes == progress.total else { return }
        lastDraw = now
        let elapsed = max(now.timeIntervalSince(started!.at), 0.001)
        let rate = Double(progress.bytes - min(progress.bytes, started!.from)) / elapsed
        let left = rate > 0 ? Double(progress.total - progress.bytes) / rate : 0
        let fraction = progress.total == 0 ? 1 : Double(progress.bytes) / Double(progress.total)
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let line = String(
            format: "\r%@ %@ [%@] %3d%%  %@ / %@  %@/s  %@ left ",
            progress.direction == .upload ? "up  " : "down", String(progress.fileName.prefix(24)), bar, Int(fraction * 100),
            Self.bytes(progress.bytes), Self.bytes(progress.total), Self.bytes(UInt64(rate)), formatDuration(UInt64(left * 1000))
        )
        FileHandle.standardError.write(Data(line.utf8))
        drawn = true
    }

    func end() {
        lock.lock()
        defer { lock.unlock() }
        if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
        drawn = false
        started = nil
    }

    static func bytes(_ count: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB"]
        var value = Double(count), unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }
}

/// Prints a send's outcome: the id, and whether it waits in the outbox.
private func report(_ outcome: SendOutcome, options: ProviderOptions) throws {
    if !options.json {
        for note in outcome.removedMetadata { FileHandle.standardError.write(Data("curbside: removed \(note)\n".utf8)) }
    }
    try options.output(outcome) {
        outcome.stored
            ? outcome.id
            : "\(outcome.id)\nqueued: \(outcome.waiting ?? "the relay could not be reached"); `curbside sync` sends it when the relay can be reached"
    }
}

private func trustWord(_ contact: Contact) -> String {
    if contact.changedKey != nil { return "KEY CHANGED — sending blocked until verified" }
    return contact.verified ? "verified" : "not verified"
}

extension Array {
    func chunked(_ size: Int) -> [[Element]] {
        stride(from: 0, to: count, by: size).map { Array(self[$0..<Swift.min($0 + size, count)]) }
    }
}
