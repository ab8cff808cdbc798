/// Why an envelope could not be sealed or opened (spec/envelope.md §Opening). Codes are listed in spec/errors.md.
///
/// Any AEAD failure is `decryptionFailed`, whatever byte was changed: header, `enc` or ciphertext.
public struct EnvelopeError: ErrorDomain, Hashable, CustomStringConvertible {
    public typealias Code = ErrorCode<EnvelopeError>

    public let code: Code
    /// Public detail: ids, handles, fingerprints; never plaintext.
    public let detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "envelope: \(detail)" }

    public static let allCodes: [Code] = [
        .unsupportedSuite, .unknownPrekey, .decryptionFailed, .malformedContent, .badSignature, .wrongRecipient,
        .senderKeyMismatch, .recipientMismatch, .invalidPrekey,
    ]
}

extension ErrorCode where Domain == EnvelopeError {
    /// The header names a cipher suite this implementation does not have.
    public static var unsupportedSuite: Self { .init(301, "unsupported_suite", "unsupported suite") }
    /// The header names a prekey the recipient does not hold (never had, already used, or rotated away).
    public static var unknownPrekey: Self { .init(302, "unknown_prekey", "unknown prekey") }
    /// HPKE could not open the ciphertext: it, the header or `enc` was changed, or it was not sealed to this key.
    public static var decryptionFailed: Self { .init(303, "decryption_failed", "decryption failed") }
    /// The plaintext decrypted but is not a valid signed message.
    public static var malformedContent: Self { .init(304, "malformed_content", "malformed content") }
    /// The sender's Ed25519 signature over the message does not verify.
    public static var badSignature: Self { .init(305, "bad_signature", "bad signature") }
    /// A valid message signed for somebody else, re-encrypted to this recipient.
    public static var wrongRecipient: Self { .init(306, "wrong_recipient", "wrong recipient") }
    /// Sealing: the signing key is not the message's sender identity.
    public static var senderKeyMismatch: Self { .init(307, "sender_key_mismatch", "sender key mismatch") }
    /// Sealing: the message's recipient is not the bundle's owner.
    public static var recipientMismatch: Self { .init(308, "recipient_mismatch", "recipient mismatch") }
    /// Sealing: the bundle's prekey cannot be encrypted to (it has small order).
    public static var invalidPrekey: Self { .init(309, "invalid_prekey", "invalid prekey") }
}
