internal import CSodium

/// SHA-256 (FIPS 180-4), one-shot or incremental, through libsodium's `crypto_hash_sha256`.
public struct SHA256: Sendable {
    /// Digest length in bytes.
    public static let byteCount = 32

    private var state = crypto_hash_sha256_state()

    public init() {
        _ = Sodium.ready
        crypto_hash_sha256_init(&state)
    }

    /// Absorbs more input.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        crypto_hash_sha256_update(&state, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
    }

    /// Absorbs more input.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest of everything absorbed. The hasher must not be used afterwards.
    public mutating func finalize() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Self.byteCount)
        crypto_hash_sha256_final(&state, &digest)
        return digest
    }

    /// The SHA-256 digest of `bytes`.
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(bytes)
        return hasher.finalize()
    }
}
