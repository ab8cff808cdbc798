internal import CSodium

/// An Ed25519 private key (RFC 8032): a provider's identity, which signs messages and prekeys.
///
/// Stored as its 32-byte seed and libsodium's expanded 64-byte secret key, both in `SecretBytes`.
public struct SigningKey: Sendable, CustomStringConvertible {
    public static let seedByteCount = 32

    private let secretKey: SecretBytes  // seed ‖ public key, libsodium's layout
    /// The matching public key.
    public let verifyingKey: VerifyingKey

    /// A fresh random identity.
    public init() {
        try! self.init(seed: .random(count: Self.seedByteCount))
    }

    /// The key whose RFC 8032 seed ("private key") is `seed`.
    ///
    /// - Throws: `CryptoError.invalidLength` unless the seed is 32 bytes.
    public init(seed: SecretBytes) throws(CryptoError) {
        _ = Sodium.ready
        guard seed.count == Self.seedByteCount else {
            throw CryptoError(.invalidLength, "ed25519 seed of \(seed.count) bytes")
        }
        var publicKey = [UInt8](repeating: 0, count: VerifyingKey.byteCount)
        secretKey = SecretBytes(count: Int(crypto_sign_SECRETKEYBYTES)) { secret in
            seed.withUnsafeBytes { seed in
                _ = crypto_sign_seed_keypair(
                    &publicKey,
                    secret.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    seed.baseAddress!.assumingMemoryBound(to: UInt8.self)
                )
            }
        }
        verifyingKey = try VerifyingKey(rawRepresentation: publicKey)
    }

    /// The 32-byte seed, for storing the key encrypted at rest.
    public var seed: SecretBytes {
        secretKey.withUnsafeBytes { SecretBytes($0[0..<Self.seedByteCount]) }
    }

    /// The 64-byte Ed25519 signature of `message` (deterministic, as RFC 8032 specifies).
    public func signature(for message: [UInt8]) -> [UInt8] {
        var signature = [UInt8](repeating: 0, count: VerifyingKey.signatureByteCount)
        secretKey.withUnsafeBytes { secret in
            _ = crypto_sign_detached(
                &signature, nil,
                message, UInt64(message.count),
                secret.baseAddress!.assumingMemoryBound(to: UInt8.self)
            )
        }
        return signature
    }

    public var description: String { "SigningKey(public: \(verifyingKey))" }
}

/// An Ed25519 public key: the identity a handle is bound to, and what a signature is checked against.
public struct VerifyingKey: Sendable, Hashable, CustomStringConvertible {
    public static let byteCount = 32
    public static let signatureByteCount = 64

    /// The 32-byte encoding of the point.
    public let rawRepresentation: [UInt8]

    /// Imports a public key.
    ///
    /// - Throws: `CryptoError.invalidLength` unless 32 bytes; `CryptoError.invalidPublicKey` unless the bytes are the
    ///   canonical encoding of a point of the prime-order subgroup (small-order points are refused, so no key
    ///   "verifies" a forged signature).
    public init(rawRepresentation: [UInt8]) throws(CryptoError) {
        _ = Sodium.ready
        guard rawRepresentation.count == Self.byteCount else {
            throw CryptoError(.invalidLength, "ed25519 public key of \(rawRepresentation.count) bytes")
        }
        guard crypto_core_ed25519_is_valid_point(rawRepresentation) == 1 else {
            throw CryptoError(.invalidPublicKey, "ed25519 public key \(rawRepresentation.hexString)")
        }
        self.rawRepresentation = rawRepresentation
    }

    /// Whether `signature` is a valid Ed25519 signature of `message` by this key.
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        guard signature.count == Self.signatureByteCount else { return false }
        return crypto_sign_verify_detached(signature, message, UInt64(message.count), rawRepresentation) == 0
    }

    public var description: String { rawRepresentation.hexString }
}
