internal import CSodium

/// X25519 keys (RFC 7748) for key agreement: prekeys, HPKE ephemerals, age attachment identities.
///
/// A separate namespace from `SigningKey`, so an agreement key can never be passed where a signing key is expected.
public enum AgreementKey {
    public static let byteCount = 32

    /// An X25519 private scalar.
    public struct Private: Sendable, Equatable, CustomStringConvertible {
        /// The 32 secret bytes, unclamped as stored; X25519 clamps when it multiplies.
        public let rawRepresentation: SecretBytes
        /// The matching public key, X25519(scalar, 9).
        public let publicKey: Public

        /// A fresh random private key.
        public init() {
            try! self.init(rawRepresentation: .random(count: AgreementKey.byteCount))
        }

        /// Imports a private key.
        ///
        /// - Throws: `CryptoError.invalidLength` unless 32 bytes.
        public init(rawRepresentation: SecretBytes) throws(CryptoError) {
            _ = Sodium.ready
            guard rawRepresentation.count == AgreementKey.byteCount else {
                throw CryptoError(.invalidLength, "x25519 private key of \(rawRepresentation.count) bytes")
            }
            var publicBytes = [UInt8](repeating: 0, count: AgreementKey.byteCount)
            rawRepresentation.withUnsafeBytes { scalar in
                _ = crypto_scalarmult_curve25519_base(&publicBytes, scalar.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            self.rawRepresentation = rawRepresentation
            self.publicKey = try Public(rawRepresentation: publicBytes)
        }

        /// X25519(self, peer): the raw shared secret, not yet a key.
        ///
        /// - Throws: `CryptoError.weakPublicKey` when the result is all zeros, which happens exactly when the
        ///   peer's key has small order (RFC 7748 §6.1, RFC 9180 §7.1.4).
        public func sharedSecret(with peer: Public) throws(CryptoError) -> SecretBytes {
            var status: Int32 = 0
            let shared = SecretBytes(count: AgreementKey.byteCount) { out in
                rawRepresentation.withUnsafeBytes { scalar in
                    status = crypto_scalarmult_curve25519(
                        out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        scalar.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        peer.rawRepresentation
                    )
                }
            }
            guard status == 0 else {
                throw CryptoError(.weakPublicKey, "x25519 public key \(peer.rawRepresentation.hexString)")
            }
            return shared
        }

        public var description: String { "AgreementKey.Private(public: \(publicKey))" }
    }

    /// An X25519 public key. Any 32 bytes are a valid encoding (RFC 7748); small-order keys are caught when used.
    public struct Public: Sendable, Hashable, CustomStringConvertible {
        public let rawRepresentation: [UInt8]

        /// Imports a public key.
        ///
        /// - Throws: `CryptoError.invalidLength` unless 32 bytes.
        public init(rawRepresentation: [UInt8]) throws(CryptoError) {
            guard rawRepresentation.count == AgreementKey.byteCount else {
                throw CryptoError(.invalidLength, "x25519 public key of \(rawRepresentation.count) bytes")
            }
            self.rawRepresentation = rawRepresentation
        }

        public var description: String { rawRepresentation.hexString }
    }
}
