internal import COpenSSL

/// SHA-256 of bulk data (attachment files, hundreds of MiB) through OpenSSL's EVP interface.
///
/// The digest is the same as `CurbsideWire.SHA256`'s (FIPS 180-4 leaves no choice); the difference is speed:
/// OpenSSL uses the CPU's SHA extensions where it has them, about five times libsodium's portable code on the
/// machines `make bench` runs on, and attachments are hashed up to three times on their way (sender, relay,
/// recipient). Small inputs — keys, transcripts — stay with libsodium like the rest of the protocol; the relay's
/// envelope ids, one per send, use `SHA256Digest`.
/// Moving it onto libsodium was measured and refused: 256 MiB in 1 MiB updates, libsodium 1.0.18 291–302 MiB/s,
/// OpenSSL 3.0 1,096–1,318 MiB/s. It has a module of its own so that what hashes files does not import TLS.
/// Not thread-safe; one hasher per stream.
public final class FileSHA256 {
    /// Digest length in bytes.
    public static let byteCount = 32

    private let context: OpaquePointer
    private var finished = false

    public init() {
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, SHA256Digest.algorithm, nil) == 1 else {
            fatalError("internal error: OpenSSL cannot start a SHA-256 digest")
        }
        self.context = context
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    /// Absorbs more input.
    public func update(_ bytes: UnsafeRawBufferPointer) {
        precondition(!finished, "internal error: FileSHA256 used after finalize()")
        guard !bytes.isEmpty else { return }
        guard EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) == 1 else {
            fatalError("internal error: OpenSSL's SHA-256 update failed")
        }
    }

    /// Absorbs more input.
    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest of everything absorbed; the hasher takes no more input afterwards.
    public func finalize() -> [UInt8] {
        precondition(!finished, "internal error: FileSHA256 finalized twice")
        finished = true
        var digest = [UInt8](repeating: 0, count: Self.byteCount)
        var length: UInt32 = 0
        guard EVP_DigestFinal_ex(context, &digest, &length) == 1, length == Self.byteCount else {
            fatalError("internal error: OpenSSL's SHA-256 final step failed")
        }
        return digest
    }
}

@available(*, unavailable)
extension FileSHA256: Sendable {}
