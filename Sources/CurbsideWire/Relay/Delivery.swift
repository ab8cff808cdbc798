/// Sending, fetching and acknowledging envelopes through the relay (spec/relay.md §Store and forward).

/// An envelope addressed to a handle, as a client hands it to the relay.
public struct SendRequest: Sendable, Hashable, WireCodable {
    public static let wireName = "send"
    /// A sealed envelope's largest encoding (envelope.md §Sizes).
    public static let envelopeBounds = 1...(44 + (1 << 21))

    /// As many attachments as a message may carry (envelope.md §Content).
    public static let attachmentBounds = 0...16

    public let recipient: Handle
    /// The sealed envelope's bytes; the relay stores them without reading them.
    public let envelope: [UInt8]
    /// The ids (SHA-256) of the committed uploads the envelope's attachment descriptors name, so the relay keeps
    /// them while the envelope waits and deletes them after it.
    public let attachments: [[UInt8]]

    /// - Throws: `WireError.lengthOutOfBounds` for an empty or oversized envelope or more than 16 attachments,
    ///   `.invalidValue` for an attachment id named twice.
    public init(recipient: Handle, envelope: [UInt8], attachments: [[UInt8]] = []) throws(WireError) {
        guard Self.envelopeBounds.contains(envelope.count) else {
            throw WireError(.lengthOutOfBounds, field: "send.envelope", offset: nil, detail: "\(envelope.count) bytes")
        }
        guard Self.attachmentBounds.contains(attachments.count) else {
            throw WireError(.lengthOutOfBounds, field: "send.attachments", offset: nil, detail: "\(attachments.count) ids")
        }
        precondition(attachments.allSatisfy { $0.count == 32 }, "internal error: an attachment id is 32 bytes")
        guard Set(attachments).count == attachments.count else {
            throw WireError(.invalidValue, field: "send.attachments", offset: nil, detail: "an attachment id is named twice")
        }
        self.recipient = recipient
        self.envelope = envelope
        self.attachments = attachments
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        recipient = try Handle(from: &reader, field: "\(field).recipient")
        envelope = try reader.readOpaque("\(field).envelope", bounds: Self.envelopeBounds)
        let listOffset = reader.offset
        attachments = try reader.readList("\(field).attachments", count: Self.attachmentBounds) { (reader, index) throws(WireError) in
            try reader.readBytes(count: 32, "\(field).attachments[\(index)]")
        }
        guard Set(attachments).count == attachments.count else {
            throw WireError(.invalidValue, field: "\(field).attachments", offset: listOffset, detail: "an attachment id is named twice")
        }
    }

    public func encode(to writer: inout WireWriter) {
        recipient.encode(to: &writer)
        writer.writeOpaque(envelope, bounds: Self.envelopeBounds)
        writer.writeList(attachments, count: Self.attachmentBounds) { $0.writeBytes($1) }
    }
}

/// The relay's `stored` answer: the envelope is durably on disk.
public struct StoredReceipt: Sendable, Hashable, WireCodable {
    public static let wireName = "stored"

    /// SHA-256 of the envelope bytes: how the relay, the recipient's acknowledgement and notices name it.
    public let envelopeID: [UInt8]
    public let storedAt: Timestamp
    /// When the relay will delete it, with an expiry notice, if the recipient has not acknowledged it.
    public let expiresAt: Timestamp

    public init(envelopeID: [UInt8], storedAt: Timestamp, expiresAt: Timestamp) {
        precondition(envelopeID.count == 32, "internal error: an envelope id is 32 bytes")
        self.envelopeID = envelopeID
        self.storedAt = storedAt
        self.expiresAt = expiresAt
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        envelopeID = try reader.readBytes(count: 32, "\(field).envelope_id")
        storedAt = try Timestamp(from: &reader, field: "\(field).stored_at")
        expiresAt = try Timestamp(from: &reader, field: "\(field).expires_at")
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeBytes(envelopeID)
        writer.writeUInt64(storedAt.millisecondsSince1970)
        writer.writeUInt64(expiresAt.millisecondsSince1970)
    }
}

/// One envelope as the relay delivers it, in a `envelopes` answer or a push.
public struct DeliveredEnvelope: Sendable, Hashable, WireCodable {
    public static let wireName = "delivered_envelope"

    /// The relay's queue position; fetch resumes after the last one seen.
    public let sequence: UInt64
    public let envelopeID: [UInt8]
    public let sender: Handle
    public let storedAt: Timestamp
    public let envelope: [UInt8]

    public init(sequence: UInt64, envelopeID: [UInt8], sender: Handle, storedAt: Timestamp, envelope: [UInt8]) {
        self.sequence = sequence
        self.envelopeID = envelopeID
        self.sender = sender
        self.storedAt = storedAt
        self.envelope = envelope
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        sequence = try reader.readUInt64("\(field).sequence")
        envelopeID = try reader.readBytes(count: 32, "\(field).envelope_id")
        sender = try Handle(from: &reader, field: "\(field).sender")
        storedAt = try Timestamp(from: &reader, field: "\(field).stored_at")
        envelope = try reader.readOpaque("\(field).envelope", bounds: SendRequest.envelopeBounds)
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeUInt64(sequence)
        writer.writeBytes(envelopeID)
        sender.encode(to: &writer)
        writer.writeUInt64(storedAt.millisecondsSince1970)
        writer.writeOpaque(envelope, bounds: SendRequest.envelopeBounds)
    }
}

/// A relay-level notice for a sender: its envelope reached the recipient's device, expired undelivered, or reached
/// the device and could not be opened there (spec/relay.md §Store and forward).
public struct DeliveryNotice: Sendable, Hashable, WireCodable {
    public static let wireName = "notice"

    public enum Kind: UInt8, Sendable {
        case deliveredToDevice = 1
        case expired = 2
        /// The recipient's device received the envelope and could not open it; `reason` says why.
        case rejected = 3
    }

    public let sequence: UInt64
    public let kind: Kind
    public let envelopeID: [UInt8]
    public let recipient: Handle
    public let at: Timestamp
    /// Why the recipient's device rejected the envelope: present exactly when `kind` is `.rejected`.
    public let reason: Receipt.FailureReason?

    public init(sequence: UInt64, kind: Kind, envelopeID: [UInt8], recipient: Handle, at: Timestamp, reason: Receipt.FailureReason? = nil) {
        precondition((kind == .rejected) == (reason != nil), "internal error: a rejected notice, and only one, carries a reason")
        self.sequence = sequence
        self.kind = kind
        self.envelopeID = envelopeID
        self.recipient = recipient
        self.at = at
        self.reason = reason
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        sequence = try reader.readUInt64("\(field).sequence")
        kind = try reader.readEnum(Kind.self, "\(field).kind")
        envelopeID = try reader.readBytes(count: 32, "\(field).envelope_id")
        recipient = try Handle(from: &reader, field: "\(field).recipient")
        at = try Timestamp(from: &reader, field: "\(field).at")
        reason = kind == .rejected ? try reader.readEnum(Receipt.FailureReason.self, "\(field).reason") : nil
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeUInt64(sequence)
        writer.writeEnum(kind)
        writer.writeBytes(envelopeID)
        recipient.encode(to: &writer)
        writer.writeUInt64(at.millisecondsSince1970)
        if let reason { writer.writeEnum(reason) }
    }
}

/// One envelope a recipient's device could not open, and why (spec/relay.md §Store and forward, `reject`).
///
/// Only the relay vouches for a rejection: the recipient cannot sign for an envelope it could not open under a key
/// the sender trusts, so the sender learns it as a relay-level notice, never as an end-to-end receipt.
public struct Rejection: Sendable, Hashable, WireCodable {
    public static let wireName = "rejection"

    /// SHA-256 of the envelope bytes, as delivered.
    public let envelopeID: [UInt8]
    public let reason: Receipt.FailureReason

    public init(envelopeID: [UInt8], reason: Receipt.FailureReason) {
        precondition(envelopeID.count == 32, "internal error: an envelope id is 32 bytes")
        self.envelopeID = envelopeID
        self.reason = reason
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        envelopeID = try reader.readBytes(count: 32, "\(field).envelope_id")
        reason = try reader.readEnum(Receipt.FailureReason.self, "\(field).reason")
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeBytes(envelopeID)
        writer.writeEnum(reason)
    }
}
