internal import CSodium

/// ChaCha20-Poly1305 as in RFC 8439 (96-bit nonce, 16-byte tag), through libsodium's
/// `crypto_aead_chacha20poly1305_ietf_*`.
public enum ChaChaPoly {
    public static let keyByteCount = 32
    public static let nonceByteCount = 12
    public static let tagByteCount = 16

    /// Encrypts `plaintext` and returns ciphertext followed by the 16-byte tag.
    ///
    /// - Throws: `CryptoError.invalidLength` for a key or nonce of the wrong size.
    public static func seal(
        _ plaintext: [UInt8],
        using key: SymmetricKey,
        nonce: [UInt8],
        authenticating associatedData: [UInt8] = []
    ) throws(CryptoError) -> [UInt8] {
        _ = Sodium.ready
        try check(key: key, nonce: nonce)
        var output = [UInt8](repeating: 0, count: plaintext.count + tagByteCount)
        var outputLength: UInt64 = 0
        key.secret.withUnsafeBytes { key in
            _ = crypto_aead_chacha20poly1305_ietf_encrypt(
                &output, &outputLength,
                plaintext, UInt64(plaintext.count),
                associatedData, UInt64(associatedData.count),
                nil, nonce, key.baseAddress!.assumingMemoryBound(to: UInt8.self)
            )
        }
        return output
    }

    /// Decrypts ciphertext-plus-tag.
    ///
    /// - Throws: `CryptoError.authenticationFailure` when the tag does not verify (any change to key, nonce,
    ///   associated data or ciphertext), `CryptoError.invalidLength` for a bad key or nonce size.
    public static func open(
        _ sealed: [UInt8],
        using key: SymmetricKey,
        nonce: [UInt8],
        authenticating associatedData: [UInt8] = []
    ) throws(CryptoError) -> [UInt8] {
        _ = Sodium.ready
        try check(key: key, nonce: nonce)
        guard sealed.count >= tagByteCount else {
            throw CryptoError(.authenticationFailure, "chacha20-poly1305")
        }
        var output = [UInt8](repeating: 0, count: sealed.count - tagByteCount)
        var outputLength: UInt64 = 0
        let status = key.secret.withUnsafeBytes { key in
            crypto_aead_chacha20poly1305_ietf_decrypt(
                &output, &outputLength,
                nil,
                sealed, UInt64(sealed.count),
                associatedData, UInt64(associatedData.count),
                nonce, key.baseAddress!.assumingMemoryBound(to: UInt8.self)
            )
        }
        guard status == 0 else {
            throw CryptoError(.authenticationFailure, "chacha20-poly1305")
        }
        return output
    }

    /// Encrypts `plaintext` into the first `plaintext.count + tagByteCount` bytes of `output` (ciphertext, then the
    /// tag), allocating nothing: for bulk data whose buffers the caller reuses. `output` must not overlap `plaintext`.
    ///
    /// - Throws: `CryptoError.invalidLength` for a key or nonce of the wrong size.
    package static func seal(
        _ plaintext: UnsafeRawBufferPointer,
        using key: SymmetricKey,
        nonce: [UInt8],
        into output: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        _ = Sodium.ready
        try check(key: key, nonce: nonce)
        precondition(output.count >= plaintext.count + tagByteCount, "internal error: chacha20-poly1305 output too small")
        let out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        key.secret.withUnsafeBytes { key in
            _ = crypto_aead_chacha20poly1305_ietf_encrypt(
                out, nil,
                plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(out), UInt64(plaintext.count),
                nil, 0,
                nil, nonce, key.baseAddress!.assumingMemoryBound(to: UInt8.self)
            )
        }
    }

    /// Decrypts ciphertext-plus-tag into the first `sealed.count - tagByteCount` bytes of `output`, allocating
    /// nothing; false (and `output` zeroed) when the tag does not verify or `sealed` is shorter than a tag.
    ///
    /// - Throws: `CryptoError.invalidLength` for a key or nonce of the wrong size.
    package static func open(
        _ sealed: UnsafeRawBufferPointer,
        using key: SymmetricKey,
        nonce: [UInt8],
        into output: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) -> Bool {
        _ = Sodium.ready
        try check(key: key, nonce: nonce)
        guard sealed.count >= tagByteCount else { return false }
        precondition(output.count >= sealed.count - tagByteCount, "internal error: chacha20-poly1305 output too small")
        let status = key.secret.withUnsafeBytes { key in
            crypto_aead_chacha20poly1305_ietf_decrypt(
                output.baseAddress!.assumingMemoryBound(to: UInt8.self), nil,
                nil,
                sealed.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(sealed.count),
                nil, 0,
                nonce, key.baseAddress!.assumingMemoryBound(to: UInt8.self)
            )
        }
        return status == 0
    }

    private static func check(key: SymmetricKey, nonce: [UInt8]) throws(CryptoError) {
        guard key.byteCount == keyByteCount else {
            throw CryptoError(.invalidLength, "chacha20-poly1305 key of \(key.byteCount) bytes")
        }
        guard nonce.count == nonceByteCount else {
            throw CryptoError(.invalidLength, "chacha20-poly1305 nonce of \(nonce.count) bytes")
        }
    }
}
