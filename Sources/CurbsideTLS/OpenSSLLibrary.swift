internal import COpenSSL
internal import COpenSSLShims

/// OpenSSL 3, initialised once for the whole process.
///
/// The TLS handler, contexts and certificates of this module build on it; nothing outside the module imports
/// the C library.
public enum OpenSSLLibrary {
    /// Initialises libssl and libcrypto once; a global `let` makes Swift run it exactly once, on first use.
    static let ready: Void = {
        guard OPENSSL_init_ssl(UInt64(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS), nil) == 1 else {
            fatalError("internal error: OpenSSL failed to initialise")
        }
    }()

    /// The linked library's version text, such as "OpenSSL 3.0.19 27 Jan 2026".
    public static var versionString: String {
        _ = ready
        return String(cString: OpenSSL_version(OPENSSL_VERSION))
    }

    /// The linked library's version as a number, major × 2^28 + minor × 2^20 + patch × 2^4.
    public static var versionNumber: UInt {
        _ = ready
        return UInt(OpenSSL_version_num())
    }

    /// Whether the linked library offers TLS 1.3, checked by building a context limited to it.
    public static var supportsTLS13: Bool {
        _ = ready
        guard let context = SSL_CTX_new(TLS_method()) else { return false }
        defer { SSL_CTX_free(context) }
        let version = curbside_TLS1_3_VERSION()
        return curbside_SSL_CTX_set_min_proto_version(context, version) == 1
            && curbside_SSL_CTX_set_max_proto_version(context, version) == 1
    }
}
