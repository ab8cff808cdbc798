internal import CSodium

/// Input to a MAC or KDF that is either public bytes or a secret, so that secrets are absorbed in place
/// instead of being concatenated into an ordinary array first.
package enum KeyMaterial {
    case bytes([UInt8])
    case secret(SecretBytes)

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch self {
        case .bytes(let bytes): try bytes.withUnsafeBytes(body)
        case .secret(let secret): try secret.withUnsafeBytes(body)
        }
    }
}

/// HMAC-SHA256 (RFC 2104) through libsodium's `crypto_auth_hmacsha256`, which accepts keys of any length.
public struct HMACSHA256 {
    /// Tag length in bytes.
    public static let byteCount = 32

    private var state = crypto_auth_hmacsha256_state()

    /// Starts a MAC under `key`, which may be public bytes or a secret.
    package init(key: KeyMaterial) {
        _ = Sodium.ready
        // libsodium wants a non-null key pointer even for an empty key.
        var empty: UInt8 = 0
        key.withUnsafeBytes { key in
            if let base = key.baseAddress, key.count > 0 {
                _ = crypto_auth_hmacsha256_init(&state, base.assumingMemoryBound(to: UInt8.self), key.count)
            } else {
                _ = crypto_auth_hmacsha256_init(&state, &empty, 0)
            }
        }
    }

    /// Starts a MAC under `key`.
    public init(key: SymmetricKey) {
        self.init(key: .secret(key.secret))
    }

    /// Absorbs more input.
    package mutating func update(_ part: KeyMaterial) {
        part.withUnsafeBytes { update($0) }
    }

    /// Absorbs more input.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        _ = crypto_auth_hmacsha256_update(
            &state,
            bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
            UInt64(bytes.count)
        )
    }

    /// Absorbs more input.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The tag as a secret (when it is a derived key, as in HKDF), wiping the MAC state.
    package mutating func finalizeSecret() -> SecretBytes {
        let tag = SecretBytes(count: Self.byteCount) { out in
            _ = crypto_auth_hmacsha256_final(&state, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        withUnsafeMutableBytes(of: &state) { sodium_memzero($0.baseAddress!, $0.count) }
        return tag
    }

    /// The tag, wiping the MAC state.
    public mutating func finalize() -> [UInt8] {
        finalizeSecret().copiedBytes
    }

    /// The HMAC-SHA256 tag of `message` under `key`.
    public static func authenticationCode(for message: [UInt8], using key: SymmetricKey) -> [UInt8] {
        var mac = HMACSHA256(key: key)
        mac.update(message)
        return mac.finalize()
    }

    /// Whether `tag` is the HMAC-SHA256 of `message` under `key`, compared in constant time.
    public static func isValidAuthenticationCode(_ tag: [UInt8], for message: [UInt8], using key: SymmetricKey) -> Bool
    {
        constantTimeEquals(authenticationCode(for: message, using: key), tag)
    }
}

/// HKDF with SHA-256 (RFC 5869).
///
/// libsodium 1.0.18, the version Debian 12 ships, has no HKDF of its own, so this is RFC 5869 over
/// `crypto_auth_hmacsha256`. Pseudorandom keys and outputs stay in `SecretBytes`.
public enum HKDF {
    /// The largest output `expand` can produce: 255 blocks of 32 bytes.
    public static let maximumOutputByteCount = 255 * HMACSHA256.byteCount

    /// HKDF-Extract: PRK = HMAC-SHA256(salt, IKM), where an empty salt stands for 32 zero bytes.
    public static func extract(salt: [UInt8], inputKeyMaterial: SecretBytes) -> SecretBytes {
        extract(salt: salt, inputKeyMaterialParts: [.secret(inputKeyMaterial)])
    }

    /// HKDF-Extract over the concatenation of `inputKeyMaterial`, absorbed part by part.
    package static func extract(salt: [UInt8], inputKeyMaterialParts: [KeyMaterial]) -> SecretBytes {
        extract(salt: .bytes(salt), inputKeyMaterialParts: inputKeyMaterialParts)
    }

    /// HKDF-Extract whose salt may itself be secret (HPKE salts with the KEM's shared secret).
    package static func extract(salt: KeyMaterial, inputKeyMaterialParts: [KeyMaterial]) -> SecretBytes {
        var mac: HMACSHA256
        switch salt {
        case .bytes(let bytes) where bytes.isEmpty:
            mac = HMACSHA256(key: .bytes([UInt8](repeating: 0, count: HMACSHA256.byteCount)))
        case .secret(let secret) where secret.count == 0:
            mac = HMACSHA256(key: .bytes([UInt8](repeating: 0, count: HMACSHA256.byteCount)))
        default:
            mac = HMACSHA256(key: salt)
        }
        for part in inputKeyMaterialParts { mac.update(part) }
        return mac.finalizeSecret()
    }

    /// HKDF-Expand: `outputByteCount` bytes of T(1) | T(2) | … where T(i) = HMAC(PRK, T(i-1) | info | i).
    ///
    /// - Throws: `CryptoError.limitExceeded` beyond 255 × 32 bytes.
    public static func expand(
        pseudoRandomKey: SecretBytes,
        info: [UInt8],
        outputByteCount: Int
    ) throws(CryptoError) -> SecretBytes {
        try expand(pseudoRandomKey: pseudoRandomKey, infoParts: [.bytes(info)], outputByteCount: outputByteCount)
    }

    /// HKDF-Expand over the concatenation of `info`, absorbed part by part.
    package static func expand(
        pseudoRandomKey: SecretBytes,
        infoParts: [KeyMaterial],
        outputByteCount: Int
    ) throws(CryptoError) -> SecretBytes {
        guard outputByteCount >= 0, outputByteCount <= maximumOutputByteCount else {
            throw CryptoError(.limitExceeded, "hkdf-sha256 output of \(outputByteCount) bytes")
        }
        return SecretBytes(count: outputByteCount) { output in
            var previous: SecretBytes? = nil
            var written = 0
            var counter: UInt8 = 1
            while written < outputByteCount {
                var mac = HMACSHA256(key: .secret(pseudoRandomKey))
                if let previous { mac.update(.secret(previous)) }
                for part in infoParts { mac.update(part) }
                mac.update([counter])
                let block = mac.finalizeSecret()
                let take = min(block.count, outputByteCount - written)
                block.withUnsafeBytes { block in
                    UnsafeMutableRawBufferPointer(rebasing: output[written..<(written + take)])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: block[0..<take]))
                }
                written += take
                previous = block
                counter &+= 1
            }
        }
    }

    /// Extract then expand, as one call.
    public static func deriveKey(
        inputKeyMaterial: SecretBytes,
        salt: [UInt8],
        info: [UInt8],
        outputByteCount: Int
    ) throws(CryptoError) -> SecretBytes {
        let prk = extract(salt: salt, inputKeyMaterial: inputKeyMaterial)
        return try expand(pseudoRandomKey: prk, info: info, outputByteCount: outputByteCount)
    }
}
