internal import CSodium

/// Argon2id (RFC 9106) through libsodium's `crypto_pwhash`: turns a passphrase into a key for files at rest.
public enum PasswordHash {
    public static let saltByteCount = 16

    /// Work and memory per derivation; stored beside what it protects, so a file keeps opening if defaults change.
    public struct Limits: Sendable, Hashable, Codable {
        public let operations: UInt64
        public let memoryBytes: UInt64

        public init(operations: UInt64, memoryBytes: UInt64) {
            self.operations = operations
            self.memoryBytes = memoryBytes
        }

        /// What profiles use: 3 passes over 24 MiB. Stronger than OWASP's recommended minimums for Argon2id
        /// (2 passes over 19 MiB, or 3 over 12 MiB), and small enough that a client unlocking its profile stays
        /// within 64 MiB of memory in all.
        public static var profile: Limits {
            Limits(operations: 3, memoryBytes: 24 << 20)
        }

        /// libsodium's "moderate" limits: 3 passes over 256 MiB, about a second on a laptop.
        public static var moderate: Limits {
            Limits(operations: UInt64(crypto_pwhash_opslimit_moderate()), memoryBytes: UInt64(crypto_pwhash_memlimit_moderate()))
        }

        /// libsodium's "interactive" limits: 2 passes over 64 MiB.
        public static var interactive: Limits {
            Limits(operations: UInt64(crypto_pwhash_opslimit_interactive()), memoryBytes: UInt64(crypto_pwhash_memlimit_interactive()))
        }

        /// Whether libsodium accepts these limits (a tampered file must not make us allocate terabytes).
        public var isAcceptable: Bool {
            operations >= UInt64(crypto_pwhash_opslimit_min()) && operations <= 16
                && memoryBytes >= UInt64(crypto_pwhash_memlimit_min()) && memoryBytes <= 4 << 30
        }
    }

    /// A `byteCount`-byte key from `passphrase` and `salt`.
    ///
    /// - Throws: `CryptoError.invalidLength` for a bad salt, `.limitExceeded` for unacceptable limits or when the
    ///   memory cannot be allocated.
    public static func deriveKey(
        from passphrase: SecretBytes,
        salt: [UInt8],
        limits: Limits,
        byteCount: Int = 32
    ) throws(CryptoError) -> SymmetricKey {
        _ = Sodium.ready
        guard salt.count == saltByteCount else { throw CryptoError(.invalidLength, "argon2id salt of \(salt.count) bytes") }
        guard limits.isAcceptable else {
            throw CryptoError(.limitExceeded, "argon2id limits \(limits.operations) passes, \(limits.memoryBytes) bytes")
        }
        var status: Int32 = 0
        let key = SecretBytes(count: byteCount) { output in
            status = passphrase.withUnsafeBytes { password in
                let empty: [CChar] = [0]
                return empty.withUnsafeBufferPointer { fallback in
                    crypto_pwhash(
                        output.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(byteCount),
                        password.baseAddress?.assumingMemoryBound(to: CChar.self) ?? fallback.baseAddress!, UInt64(password.count),
                        salt, limits.operations, Int(limits.memoryBytes), crypto_pwhash_alg_argon2id13()
                    )
                }
            }
        }
        guard status == 0 else { throw CryptoError(.limitExceeded, "argon2id could not allocate \(limits.memoryBytes) bytes") }
        return SymmetricKey(key)
    }
}
