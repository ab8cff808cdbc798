internal import COpenSSL

/// One-shot SHA-256 through OpenSSL, for digests computed on a hot path: the relay names every stored envelope by
/// the SHA-256 of its bytes, and libsodium's portable SHA-256 took about 59,000 instructions of a 1 KiB send's
/// 320,000 at the relay (callgrind, bench/relay_instructions.py). The digest is the same as `CurbsideWire.SHA256`'s.
public enum SHA256Digest {
    /// Digest length in bytes.
    public static let byteCount = 32

    /// Fetched once, for this and `FileSHA256`: an implicit fetch by `EVP_sha256()` looks the algorithm up in
    /// OpenSSL's provider tables on every call. An `EVP_MD` is immutable and may be shared between threads.
    nonisolated(unsafe) static let algorithm: OpaquePointer = {
        guard let algorithm = EVP_MD_fetch(nil, "SHA256", nil) else {
            fatalError("internal error: OpenSSL has no SHA-256")
        }
        return algorithm
    }()

    /// The SHA-256 of `bytes`.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: byteCount) { digest, initialized in
            var length: UInt32 = 0
            guard EVP_Digest(bytes.baseAddress, bytes.count, digest.baseAddress, &length, algorithm, nil) == 1,
                length == byteCount
            else {
                fatalError("internal error: OpenSSL's SHA-256 failed")
            }
            initialized = byteCount
        }
    }

    /// The SHA-256 of `bytes`.
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { hash($0) }
    }
}
