/// Why a cryptographic operation or a key import failed.
///
/// Authentication failures are a single code that says nothing about which byte or which part was wrong.
public struct CryptoError: ErrorDomain, Hashable, CustomStringConvertible {
    public typealias Code = ErrorCode<CryptoError>

    public let code: Code
    /// What was being done, such as "x25519 public key"; public values only, never secret material.
    public let context: String

    public init(_ code: Code, _ context: String) {
        self.code = code
        self.context = context
    }

    public var description: String { "\(context): \(code.name)" }

    public static let allCodes: [Code] = [
        .invalidLength, .invalidPublicKey, .weakPublicKey, .authenticationFailure, .limitExceeded, .unsupported,
    ]
}

extension ErrorCode where Domain == CryptoError {
    /// A key, nonce or seed of the wrong length.
    public static var invalidLength: Self { .init(401, "invalid_key_length", "invalid length") }
    /// An Ed25519 public key that is not a canonical point of the prime-order subgroup.
    public static var invalidPublicKey: Self { .init(402, "invalid_key", "invalid public key") }
    /// An X25519 exchange produced the all-zero value: the peer's key has small order.
    public static var weakPublicKey: Self { .init(403, "weak_public_key", "weak public key") }
    /// AEAD decryption or MAC verification failed.
    public static var authenticationFailure: Self { .init(404, "authentication_failure", "authentication failure") }
    /// Output requested beyond what the primitive allows (HKDF's 255 blocks, HPKE's sequence numbers).
    public static var limitExceeded: Self { .init(405, "limit_exceeded", "limit exceeded") }
    /// The operation does not exist in this configuration, such as sealing with HPKE's export-only AEAD.
    public static var unsupported: Self { .init(406, "unsupported", "unsupported") }
}
