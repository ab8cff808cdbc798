import CurbsideWire

/// Why this device rejected an envelope, as its sender was told in the relay's `rejected` notice (spec/envelope.md
/// §Receiving, the `failure` reasons of a receipt).
///
/// The raw value is the word `--json` carries.
public enum RejectionReason: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// It did not decrypt: not for a prekey this device holds, or its bytes were damaged.
    case undecryptable
    /// Its signature did not verify, or it was signed in another account's name.
    case badSignature = "bad_signature"
    /// An attachment it names could not be fetched.
    case attachmentUnavailable = "attachment_unavailable"
    /// An attachment did not match its hash or did not decrypt.
    case attachmentCorrupt = "attachment_corrupt"
    /// Its content is of a kind or shape this version does not accept.
    case unsupportedContent = "unsupported_content"
    /// Its sender's key is not the one pinned for that contact.
    case untrustedSender = "untrusted_sender"
    /// It arrived after its lifetime.
    case expired
    /// Anything else.
    case other

    /// The raw value, so interpolation prints the word and not the case name.
    public var description: String { rawValue }

    /// The reason a receipt carries on the wire.
    public init(_ reason: Receipt.FailureReason) {
        switch reason {
        case .undecryptable: self = .undecryptable
        case .badSignature: self = .badSignature
        case .attachmentUnavailable: self = .attachmentUnavailable
        case .attachmentCorrupt: self = .attachmentCorrupt
        case .unsupportedContent: self = .unsupportedContent
        case .untrustedSender: self = .untrustedSender
        case .expired: self = .expired
        case .other: self = .other
        }
    }
}
