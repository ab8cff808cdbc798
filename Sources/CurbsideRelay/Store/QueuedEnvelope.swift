import CurbsideDigest
import CurbsideWire

/// How the relay names a stored envelope: the SHA-256 of its bytes. A sender that retries after a lost `stored`
/// sends the same bytes, so the retry names the same envelope and is stored once. Computed once per send, through
/// OpenSSL (`SHA256Digest`), where the CPU's SHA extensions make it a small part of what a send costs.
public struct EnvelopeID: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(of envelope: [UInt8]) {
        bytes = SHA256Digest.hash(envelope)
    }

    public init?(bytes: [UInt8]) {
        guard bytes.count == SHA256Digest.byteCount else { return nil }
        self.bytes = bytes
    }

    public var description: String { bytes.hexString }
}

/// An envelope waiting for its recipient's device.
public struct QueuedEnvelope: Sendable, Hashable {
    /// Position in the relay's queue; fetches resume after the last one seen.
    public let sequence: Int64
    public let id: EnvelopeID
    public let sender: Handle
    public let recipient: Handle
    public let body: [UInt8]
    public let storedAt: Timestamp
    public let expiresAt: Timestamp
}

extension DeliveredEnvelope {
    /// Bytes one envelope takes in an `envelopes` or `push_envelope` body: sequence (8), envelope id (32), sender
    /// with its 1-byte length, stored_at (8), and the envelope with its 4-byte length (spec/relay.md §Store and
    /// forward): 117 bytes besides the envelope for a 64-byte handle.
    static func encodedByteCount(senderByteCount: Int, envelopeByteCount: Int) -> Int {
        8 + 32 + 1 + senderByteCount + 8 + 4 + envelopeByteCount
    }
}

/// An envelope a sender hands the relay, with what the store checks in the transaction that stores it.
public struct Submission: Sendable, Hashable {
    public let body: [UInt8]
    /// The body's SHA-256 (its envelope id), computed once per send: the relay answers with it, and the store finds
    /// a retry by it.
    public let id: EnvelopeID
    public let sender: Handle
    public let recipient: Handle
    /// Ids (SHA-256) of the sender's committed attachments the envelope refers to.
    public let attachments: [[UInt8]]
    public let storedAt: Timestamp
    public let expiresAt: Timestamp
    /// The recipient's queue limits: a new envelope that would pass either is not stored. Bytes count the envelope
    /// and every attachment it names.
    public let maximumQueuedEnvelopes: Int
    public let maximumQueuedBytes: Int
    /// The share of the recipient's queue one sender may hold, counted the same way.
    public let maximumQueuedEnvelopesPerSender: Int
    public let maximumQueuedBytesPerSender: Int

    public init(
        body: [UInt8],
        id: EnvelopeID? = nil,
        sender: Handle,
        recipient: Handle,
        attachments: [[UInt8]] = [],
        storedAt: Timestamp,
        expiresAt: Timestamp,
        maximumQueuedEnvelopes: Int = .max,
        maximumQueuedBytes: Int = .max,
        maximumQueuedEnvelopesPerSender: Int = .max,
        maximumQueuedBytesPerSender: Int = .max
    ) {
        self.body = body
        self.id = id ?? EnvelopeID(of: body)
        self.sender = sender
        self.recipient = recipient
        self.attachments = attachments
        self.storedAt = storedAt
        self.expiresAt = expiresAt
        self.maximumQueuedEnvelopes = maximumQueuedEnvelopes
        self.maximumQueuedBytes = maximumQueuedBytes
        self.maximumQueuedEnvelopesPerSender = maximumQueuedEnvelopesPerSender
        self.maximumQueuedBytesPerSender = maximumQueuedBytesPerSender
    }
}

/// What `enqueue` did.
public enum EnqueueOutcome: Sendable, Hashable {
    /// Newly stored, durably, at this sequence number.
    case stored(sequence: Int64)
    /// The same bytes were stored before for the same recipient (a retry); nothing new was written. The times are
    /// the original ones.
    case duplicate(sequence: Int64, storedAt: Timestamp, expiresAt: Timestamp)
    /// Nothing stored: the recipient's queue is full.
    case queueFull
    /// Nothing stored: the sender holds its whole share of the recipient's queue (these envelopes and bytes).
    case senderShareFull(envelopes: Int, bytes: Int)
    /// Nothing stored: nobody is registered under the recipient's handle.
    case unknownRecipient
    /// Nothing stored: the sender has no committed attachment with this id.
    case unknownAttachment([UInt8])
}

/// What acknowledging or expiring envelopes removed.
public struct Removal: Sendable, Hashable {
    /// One per envelope deleted, for its sender.
    public var notices: [SenderNotice] = []
    /// Attachments no envelope refers to any more, forgotten by the store: their files are to be deleted.
    public var attachmentFiles: [Int64] = []

    public init(notices: [SenderNotice] = [], attachmentFiles: [Int64] = []) {
        self.notices = notices
        self.attachmentFiles = attachmentFiles
    }
}

/// An attachment upload as the store records it; the bytes are in the `BlobStore` under `key`.
public struct StoredAttachment: Sendable, Hashable {
    public let key: Int64
    public let owner: Handle
    /// SHA-256 of the bytes.
    public let id: [UInt8]
    public let size: UInt64
    /// Committed: size and hash checked, durable.
    public let complete: Bool
    /// When it is deleted unless an envelope refers to it; nil while envelopes refer to it.
    public let expiresAt: Timestamp?
}

/// What `openUpload` did.
public enum UploadOpening: Sendable, Hashable {
    /// The upload, new or as it was.
    case opened(StoredAttachment)
    /// An upload of this id is open with another size.
    case sizeDiffers(StoredAttachment)
    /// The account's attachments would pass its storage quota (bytes or count); nothing was recorded.
    case quotaExceeded(used: UInt64, count: Int)
}

/// A relay-level notice for a sender about one of its envelopes.
public struct SenderNotice: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// The recipient's device acknowledged it; the relay deleted it.
        case deliveredToDevice
        /// Nobody fetched it before it expired; the relay deleted it.
        case expired
        /// The recipient's device received it and could not open it; the relay deleted it.
        case rejected(Receipt.FailureReason)

        /// How a store keeps the kind in one integer: 1, 2, or 256 plus the rejection's reason.
        public var storedValue: Int64 {
            switch self {
            case .deliveredToDevice: 1
            case .expired: 2
            case .rejected(let reason): 256 + Int64(reason.rawValue)
            }
        }

        public init?(storedValue: Int64) {
            switch storedValue {
            case 1: self = .deliveredToDevice
            case 2: self = .expired
            case 256...511:
                guard let reason = Receipt.FailureReason(rawValue: UInt8(storedValue - 256)) else { return nil }
                self = .rejected(reason)
            default: return nil
            }
        }
    }

    public let sequence: Int64
    public let kind: Kind
    /// Who the notice is for: the envelope's sender.
    public let sender: Handle
    public let envelopeID: EnvelopeID
    /// The envelope's recipient.
    public let recipient: Handle
    public let at: Timestamp
}
