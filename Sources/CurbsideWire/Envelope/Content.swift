/// What a message carries; its content type byte selects the body's structure (spec/envelope.md §Content).
public enum Content: Sendable, Hashable, WireCodable {
    public static let wireName = "content"

    case consult(Consult)
    case reply(Reply)
    case receipt(Receipt)

    /// The content type byte.
    public enum Kind: UInt8, Sendable {
        case consult = 1
        case reply = 2
        case receipt = 3
    }

    public var kind: Kind {
        switch self {
        case .consult: .consult
        case .reply: .reply
        case .receipt: .receipt
        }
    }

    static let bodyBounds = 1...(1 << 20)

    /// content_type, then the body as a length-prefixed nested structure.
    public init(from reader: inout WireReader, field: String) throws(WireError) {
        let kind = try reader.readEnum(Kind.self, "\(field).content_type")
        let bodyField = "\(field).body"
        self = try reader.readNested(bodyField, bounds: Self.bodyBounds) { (reader) throws(WireError) -> Content in
            switch kind {
            case .consult: .consult(try Consult(from: &reader, field: "\(bodyField).consult"))
            case .reply: .reply(try Reply(from: &reader, field: "\(bodyField).reply"))
            case .receipt: .receipt(try Receipt(from: &reader, field: "\(bodyField).receipt"))
            }
        }
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeEnum(kind)
        writer.writeNested(bounds: Self.bodyBounds) { writer in
            switch self {
            case .consult(let consult): consult.encode(to: &writer)
            case .reply(let reply): reply.encode(to: &writer)
            case .receipt(let receipt): receipt.encode(to: &writer)
            }
        }
    }
}

/// A request for a specialist's opinion (spec/envelope.md §Consult).
public struct Consult: Sendable, Hashable, WireCodable {
    public static let wireName = "consult"

    public enum Urgency: UInt8, Sendable, CaseIterable {
        case routine = 1
        case urgent = 2
        case emergency = 3
    }

    static let subjectBounds = 1...256
    static let specialtyBounds = 1...64
    static let questionBounds = 1...16_384
    static let summaryBounds = 0...65_535

    public let subject: String
    public let urgency: Urgency
    /// The specialty asked, such as "dermatology".
    public let specialty: String
    public let question: String
    /// The case summary: history, findings, what has been tried.
    public let clinicalSummary: String

    /// Validates each text field's length and characters.
    ///
    /// - Throws: `WireError` (`lengthOutOfBounds` or `invalidText`) naming the field.
    public init(
        subject: String,
        urgency: Urgency,
        specialty: String,
        question: String,
        clinicalSummary: String
    ) throws(WireError) {
        try Text.check(subject, field: "consult.subject", bounds: Self.subjectBounds)
        try Text.check(specialty, field: "consult.specialty", bounds: Self.specialtyBounds)
        try Text.check(question, field: "consult.question", bounds: Self.questionBounds)
        try Text.check(clinicalSummary, field: "consult.clinical_summary", bounds: Self.summaryBounds)
        self.subject = subject
        self.urgency = urgency
        self.specialty = specialty
        self.question = question
        self.clinicalSummary = clinicalSummary
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        subject = try reader.readText("\(field).subject", bounds: Self.subjectBounds)
        urgency = try reader.readEnum(Urgency.self, "\(field).urgency")
        specialty = try reader.readText("\(field).specialty", bounds: Self.specialtyBounds)
        question = try reader.readText("\(field).question", bounds: Self.questionBounds)
        clinicalSummary = try reader.readText("\(field).clinical_summary", bounds: Self.summaryBounds)
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeText(subject, bounds: Self.subjectBounds)
        writer.writeEnum(urgency)
        writer.writeText(specialty, bounds: Self.specialtyBounds)
        writer.writeText(question, bounds: Self.questionBounds)
        writer.writeText(clinicalSummary, bounds: Self.summaryBounds)
    }
}

/// An answer in a consult's thread (spec/envelope.md §Reply).
public struct Reply: Sendable, Hashable, WireCodable {
    public static let wireName = "reply"
    static let textBounds = 1...65_535

    /// The message this answers.
    public let inReplyTo: MessageID
    public let text: String

    /// - Throws: `WireError` (`lengthOutOfBounds` or `invalidText`) for the text.
    public init(inReplyTo: MessageID, text: String) throws(WireError) {
        try Text.check(text, field: "reply.text", bounds: Self.textBounds)
        self.inReplyTo = inReplyTo
        self.text = text
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        inReplyTo = try MessageID(from: &reader, field: "\(field).in_reply_to")
        text = try reader.readText("\(field).text", bounds: Self.textBounds)
    }

    public func encode(to writer: inout WireWriter) {
        inReplyTo.encode(to: &writer)
        writer.writeText(text, bounds: Self.textBounds)
    }
}

/// An end-to-end receipt the recipient's client signs and sends back (spec/envelope.md §Receipt).
public struct Receipt: Sendable, Hashable, WireCodable {
    public static let wireName = "receipt"
    static let detailBounds = 0...1024

    public enum Kind: UInt8, Sendable, CaseIterable {
        /// Decrypted, verified, attachments fetched.
        case delivered = 1
        /// Shown to the recipient.
        case read = 2
        /// Could not be processed; a reason follows.
        case failed = 3
    }

    /// Why a message failed at the recipient.
    public enum FailureReason: UInt8, Sendable, CaseIterable {
        case undecryptable = 1
        case badSignature = 2
        case attachmentUnavailable = 3
        case attachmentCorrupt = 4
        case unsupportedContent = 5
        case untrustedSender = 6
        case expired = 7
        case other = 255
    }

    public struct Failure: Sendable, Hashable {
        public let reason: FailureReason
        /// Public detail for the sender; never patient data.
        public let detail: String

        /// - Throws: `WireError` for a detail that is too long or holds control characters.
        public init(reason: FailureReason, detail: String = "") throws(WireError) {
            try Text.check(detail, field: "receipt.failure.detail", bounds: Receipt.detailBounds)
            self.reason = reason
            self.detail = detail
        }

        fileprivate init(unchecked reason: FailureReason, detail: String) {
            self.reason = reason
            self.detail = detail
        }
    }

    /// The message this receipt is about.
    public let messageID: MessageID
    public let kind: Kind
    /// The reason, exactly when `kind` is `failed`.
    public let failure: Failure?

    public static func delivered(_ messageID: MessageID) -> Receipt {
        Receipt(messageID: messageID, kind: .delivered, failure: nil)
    }

    public static func read(_ messageID: MessageID) -> Receipt {
        Receipt(messageID: messageID, kind: .read, failure: nil)
    }

    public static func failed(_ messageID: MessageID, _ failure: Failure) -> Receipt {
        Receipt(messageID: messageID, kind: .failed, failure: failure)
    }

    private init(messageID: MessageID, kind: Kind, failure: Failure?) {
        self.messageID = messageID
        self.kind = kind
        self.failure = failure
    }

    /// kind, message_id, and for `failed` only: reason and detail (a TLS-style `select`).
    public init(from reader: inout WireReader, field: String) throws(WireError) {
        kind = try reader.readEnum(Kind.self, "\(field).kind")
        messageID = try MessageID(from: &reader, field: "\(field).message_id")
        switch kind {
        case .delivered, .read:
            failure = nil
        case .failed:
            let reason = try reader.readEnum(FailureReason.self, "\(field).failure.reason")
            let detail = try reader.readText("\(field).failure.detail", bounds: Self.detailBounds)
            failure = Failure(unchecked: reason, detail: detail)
        }
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeEnum(kind)
        messageID.encode(to: &writer)
        if let failure {
            writer.writeEnum(failure.reason)
            writer.writeText(failure.detail, bounds: Self.detailBounds)
        }
    }
}
