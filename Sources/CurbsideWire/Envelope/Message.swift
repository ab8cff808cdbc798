/// The signed content of an envelope: who, to whom, which message in which thread, when, what, and attachments
/// (spec/envelope.md §Message).
public struct Message: Sendable, Hashable, WireCodable {
    public static let wireName = "message"
    static let attachmentCountBounds = 0...16
    static let signatureLabel = Array("curbside/v1/message\0".utf8)

    public let sender: Party
    public let recipient: Party
    public let id: MessageID
    /// The consult's id for every message of its thread, the consult included.
    public let threadID: ThreadID
    public let createdAt: Timestamp
    public let content: Content
    public let attachments: [AttachmentDescriptor]

    /// - Throws: `WireError.lengthOutOfBounds` for more than 16 attachments, `.invalidValue` for a receipt with any.
    public init(
        sender: Party,
        recipient: Party,
        id: MessageID = .random(),
        threadID: ThreadID? = nil,
        createdAt: Timestamp = .now(),
        content: Content,
        attachments: [AttachmentDescriptor] = []
    ) throws(WireError) {
        guard Self.attachmentCountBounds.contains(attachments.count) else {
            throw WireError(.lengthOutOfBounds, field: "message.attachments", offset: nil, detail: "\(attachments.count) attachments, at most 16")
        }
        if case .receipt = content, !attachments.isEmpty {
            throw WireError(.invalidValue, field: "message.attachments", offset: nil, detail: "a receipt carries no attachments")
        }
        self.sender = sender
        self.recipient = recipient
        self.id = id
        self.threadID = threadID ?? id
        self.createdAt = createdAt
        self.content = content
        self.attachments = attachments
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        sender = try Party(from: &reader, field: "\(field).sender")
        recipient = try Party(from: &reader, field: "\(field).recipient")
        id = try MessageID(from: &reader, field: "\(field).message_id")
        threadID = try MessageID(from: &reader, field: "\(field).thread_id")
        createdAt = try Timestamp(from: &reader, field: "\(field).created_at")
        content = try Content(from: &reader, field: field)
        let attachmentsOffset = reader.offset
        attachments = try reader.readList("\(field).attachments", count: Self.attachmentCountBounds) {
            (reader, index) throws(WireError) in
            try AttachmentDescriptor(from: &reader, field: "\(field).attachments[\(index)]")
        }
        if case .receipt = content, !attachments.isEmpty {
            throw WireError(
                .invalidValue,
                field: "\(field).attachments",
                offset: attachmentsOffset,
                detail: "a receipt carries no attachments"
            )
        }
    }

    public func encode(to writer: inout WireWriter) {
        sender.encode(to: &writer)
        recipient.encode(to: &writer)
        id.encode(to: &writer)
        threadID.encode(to: &writer)
        writer.writeUInt64(createdAt.millisecondsSince1970)
        content.encode(to: &writer)
        writer.writeList(attachments, count: Self.attachmentCountBounds) { $1.encode(to: &$0) }
    }

    /// The bytes the sender signs: the label "curbside/v1/message" and a zero byte, then the encoded message.
    public var signedBytes: [UInt8] {
        Self.signatureLabel + encoded
    }
}

/// A message with its sender's signature: the plaintext inside an envelope (spec/envelope.md §Plaintext).
public struct SignedMessage: Sendable, Hashable, WireCodable {
    public static let wireName = "plaintext"

    public let message: Message
    public let signature: [UInt8]

    /// Signs `message` with `identity`, which must be the message's sender.
    ///
    /// - Throws: `EnvelopeError.senderKeyMismatch` when `identity` is not `message.sender.identityKey`.
    public init(signing message: Message, with identity: SigningKey) throws(EnvelopeError) {
        guard identity.verifyingKey == message.sender.identityKey else {
            throw EnvelopeError(
                .senderKeyMismatch,
                "signing key \(identity.verifyingKey) is not \(message.sender.handle)'s identity key"
            )
        }
        self.message = message
        self.signature = identity.signature(for: message.signedBytes)
    }

    /// A message with any signature, valid or not; vectors use it to build forgeries.
    package init(message: Message, signature: [UInt8]) {
        self.message = message
        self.signature = signature
    }

    /// Whether the signature verifies under the sender identity the message names.
    public var isSignatureValid: Bool {
        message.sender.identityKey.isValidSignature(signature, for: message.signedBytes)
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        message = try Message(from: &reader, field: "\(field).message")
        signature = try reader.readBytes(count: VerifyingKey.signatureByteCount, "\(field).signature")
    }

    public func encode(to writer: inout WireWriter) {
        message.encode(to: &writer)
        writer.writeBytes(signature)
    }
}
