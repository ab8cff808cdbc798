import CurbsideWire

/// How the relay names a stored envelope: the SHA-256 of its bytes. A sender that retries after a lost `stored`
/// sends the same bytes, so the retry names the same envelope and is stored once.
public struct EnvelopeID: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(of envelope: [UInt8]) {
        bytes = SHA256.hash(envelope)
    }

    public init?(bytes: [UInt8]) {
        guard bytes.count == SHA256.byteCount else { return nil }
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

/// What `enqueue` did.
public enum EnqueueOutcome: Sendable, Hashable {
    /// Newly stored, durably, at this sequence number.
    case stored(sequence: Int64)
    /// The same bytes were stored before for the same recipient (a retry); nothing new was written. The times are
    /// the original ones.
    case duplicate(sequence: Int64, storedAt: Timestamp, expiresAt: Timestamp)
}

/// A relay-level notice for a sender about one of its envelopes.
public struct SenderNotice: Sendable, Hashable {
    public enum Kind: Int64, Sendable {
        /// The recipient's device acknowledged it; the relay deleted it.
        case deliveredToDevice = 1
        /// Nobody fetched it before it expired; the relay deleted it.
        case expired = 2
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
