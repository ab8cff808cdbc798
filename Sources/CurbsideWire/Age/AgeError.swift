/// Why an age file was refused (spec/attachments.md, the age v1 format). Codes are listed in spec/errors.md.
public struct AgeError: ErrorDomain, Hashable, CustomStringConvertible {
    public typealias Code = ErrorCode<AgeError>

    public let code: Code
    public let detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "age: \(detail)" }

    public static let allCodes: [Code] = [
        .malformedHeader, .unsupportedVersion, .noMatchingStanza, .badHeaderMAC, .truncated, .chunkAfterLast,
        .emptyFinalChunk, .decryptionFailed, .malformedKey,
    ]
}

extension ErrorCode where Domain == AgeError {
    /// The header does not follow the v1 grammar (a bad line, non-canonical base64, a stanza of the wrong shape), or
    /// an X25519 stanza's shared secret is all zeros.
    public static var malformedHeader: Self { .init(601, "age_malformed_header", "malformed age header") }
    /// The version line names a version other than v1.
    public static var unsupportedVersion: Self { .init(602, "age_unsupported_version", "unsupported age version") }
    /// No X25519 stanza opens with the identity: the file was encrypted to someone else.
    public static var noMatchingStanza: Self { .init(603, "age_no_matching_identity", "no matching identity") }
    /// The header's MAC does not verify under the file key: the header was changed.
    public static var badHeaderMAC: Self { .init(604, "age_bad_header_mac", "bad header MAC") }
    /// The payload ends without a final chunk (cut short), or before its nonce.
    public static var truncated: Self { .init(605, "age_truncated", "truncated age file") }
    /// Bytes follow the final chunk.
    public static var chunkAfterLast: Self { .init(606, "age_chunk_after_last", "data after the final chunk") }
    /// A final chunk with no plaintext, in a file whose payload is not empty.
    public static var emptyFinalChunk: Self { .init(607, "age_empty_final_chunk", "empty final chunk") }
    /// A payload chunk does not decrypt: changed, reordered or from another file.
    public static var decryptionFailed: Self { .init(608, "age_chunk_decryption_failed", "chunk decryption failed") }
    /// An age identity or recipient string that is not valid Bech32 of the right kind and length.
    public static var malformedKey: Self { .init(609, "age_malformed_key", "malformed age key") }
}
