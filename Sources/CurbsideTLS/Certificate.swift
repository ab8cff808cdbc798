internal import COpenSSL
internal import COpenSSLShims

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The SHA-256 of a certificate's SubjectPublicKeyInfo (DER): what a client pins.
///
/// Pinning the key rather than the certificate lets an operator re-issue the certificate with the same key.
public struct PublicKeyFingerprint: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// Parses "sha256:<64 hex digits>" or the bare hex.
    public init?(_ text: String) {
        let hex = text.hasPrefix("sha256:") ? String(text.dropFirst(7)) : text
        guard hex.utf8.count == 64 else { return nil }
        var bytes: [UInt8] = []
        var iterator = hex.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            guard let h = Self.nibble(high), let l = Self.nibble(low) else { return nil }
            bytes.append(h << 4 | l)
        }
        self.bytes = bytes
    }

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// "sha256:" and 64 lowercase hex digits.
    public var description: String {
        "sha256:" + bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
            .joined()
    }
}

/// An X.509 certificate. The only type that holds an `X509 *`; freed on deinit.
public final class TLSCertificate: @unchecked Sendable {
    // Immutable once built: OpenSSL only reads it after this point, and reference counts are atomic.
    private let x509: OpaquePointer

    private init(taking x509: OpaquePointer) {
        self.x509 = x509
    }

    deinit {
        X509_free(x509)
    }

    /// Reads the first certificate of a PEM document.
    ///
    /// - Throws: `TLSError.certificateError` when no certificate can be read.
    public convenience init(pem: [UInt8]) throws {
        _ = OpenSSLLibrary.ready
        OpenSSLErrorQueue.clear()
        let bio = try MemoryBIO(pem)
        guard let x509 = bio.withPointer({ PEM_read_bio_X509($0, nil, nil, nil) }) else {
            throw TLSError.drainingQueue(.certificateError, "no PEM certificate could be read")
        }
        self.init(taking: x509)
    }

    /// Reads a PEM certificate file.
    public convenience init(pemFile path: String) throws {
        try self.init(pem: try readFile(path))
    }

    /// The certificate as PEM text.
    public var pem: [UInt8] {
        get throws {
            let bio = try MemoryBIO()
            guard bio.withPointer({ PEM_write_bio_X509($0, x509) }) == 1 else {
                throw TLSError.drainingQueue(.certificateError, "could not encode the certificate as PEM")
            }
            return bio.contents
        }
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo.
    public var publicKeyFingerprint: PublicKeyFingerprint {
        Self.publicKeyFingerprint(of: x509)
    }

    static func publicKeyFingerprint(of x509: OpaquePointer) -> PublicKeyFingerprint {
        var der: UnsafeMutablePointer<UInt8>? = nil
        let length = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x509), &der)
        defer { CRYPTO_free(der, #fileID, #line) }
        precondition(length > 0, "internal error: a certificate without a public key")
        var digest = [UInt8](repeating: 0, count: 32)
        var digestLength: UInt32 = 0
        _ = EVP_Digest(der, Int(length), &digest, &digestLength, EVP_sha256(), nil)
        return PublicKeyFingerprint(bytes: digest)
    }

    /// Lends the `X509 *` to `body`; it must not escape.
    func withPointer<R>(_ body: (OpaquePointer) throws -> R) rethrows -> R {
        try body(x509)
    }
}

/// A private key. The only type that holds an `EVP_PKEY *`; freed on deinit.
public final class TLSPrivateKey: @unchecked Sendable {
    // Immutable once built; OpenSSL only reads it.
    private let pkey: OpaquePointer

    private init(taking pkey: OpaquePointer) {
        self.pkey = pkey
    }

    deinit {
        EVP_PKEY_free(pkey)
    }

    /// A fresh Ed25519 key.
    public static func generateEd25519() throws -> TLSPrivateKey {
        _ = OpenSSLLibrary.ready
        OpenSSLErrorQueue.clear()
        guard let context = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nil) else {
            throw TLSError.drainingQueue(.certificateError, "cannot create an Ed25519 key context")
        }
        defer { EVP_PKEY_CTX_free(context) }
        var key: OpaquePointer? = nil
        guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_keygen(context, &key) == 1, let key else {
            throw TLSError.drainingQueue(.certificateError, "Ed25519 key generation failed")
        }
        return TLSPrivateKey(taking: key)
    }

    /// Reads a PEM private key (PKCS #8 or traditional).
    public convenience init(pem: [UInt8]) throws {
        _ = OpenSSLLibrary.ready
        OpenSSLErrorQueue.clear()
        let bio = try MemoryBIO(pem)
        // The password callback refuses: an encrypted key is an error, never a prompt on the terminal.
        guard let key = bio.withPointer({ PEM_read_bio_PrivateKey($0, nil, refusePassword, nil) }) else {
            throw TLSError.drainingQueue(.certificateError, "no unencrypted PEM private key could be read")
        }
        self.init(taking: key)
    }

    /// Reads a PEM private key file.
    public convenience init(pemFile path: String) throws {
        try self.init(pem: try readFile(path))
    }

    /// The key as unencrypted PKCS #8 PEM. Handle as a secret.
    public var pem: [UInt8] {
        get throws {
            let bio = try MemoryBIO()
            guard bio.withPointer({ PEM_write_bio_PrivateKey($0, pkey, nil, nil, 0, nil, nil) }) == 1 else {
                throw TLSError.drainingQueue(.certificateError, "could not encode the private key as PEM")
            }
            return bio.contents
        }
    }

    func withPointer<R>(_ body: (OpaquePointer) throws -> R) rethrows -> R {
        try body(pkey)
    }
}

/// A certificate and its private key, such as a relay's identity.
public struct TLSIdentity: Sendable {
    public let certificate: TLSCertificate
    public let privateKey: TLSPrivateKey

    public init(certificate: TLSCertificate, privateKey: TLSPrivateKey) {
        self.certificate = certificate
        self.privateKey = privateKey
    }

    /// A self-signed Ed25519 certificate for `names` (DNS names or IP addresses, all in the subject alternative
    /// name; the first is also the common name), valid from now for `days`.
    public static func selfSigned(names: [String], days: Int = 825) throws -> TLSIdentity {
        precondition(!names.isEmpty, "internal error: a certificate needs at least one name")
        _ = OpenSSLLibrary.ready
        OpenSSLErrorQueue.clear()
        let key = try TLSPrivateKey.generateEd25519()
        guard let x509 = X509_new() else { throw TLSError.drainingQueue(.certificateError, "X509_new failed") }
        var owned = true
        defer { if owned { X509_free(x509) } }

        // A random positive 127-bit serial, as RFC 5280 §4.1.2.2 allows up to 20 octets.
        var serialBytes = [UInt8](repeating: 0, count: 16)
        guard RAND_bytes(&serialBytes, Int32(serialBytes.count)) == 1 else {
            throw TLSError.drainingQueue(.certificateError, "no random bytes for the serial number")
        }
        serialBytes[0] &= 0x7F
        let serial = BN_bin2bn(serialBytes, Int32(serialBytes.count), nil)
        defer { BN_free(serial) }

        let name = X509_get_subject_name(x509)
        let sanText = names.map { isIPAddress($0) ? "IP:\($0)" : "DNS:\($0)" }.joined(separator: ",")
        let ok =
            X509_set_version(x509, 2) == 1
            && BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x509)) != nil
            && X509_gmtime_adj(X509_getm_notBefore(x509), -300) != nil
            && X509_gmtime_adj(X509_getm_notAfter(x509), Int(days) * 86_400) != nil
            && key.withPointer({ X509_set_pubkey(x509, $0) }) == 1
            && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, names[0], -1, -1, 0) == 1
            && X509_set_issuer_name(x509, name) == 1
            && addExtension(x509, NID_subject_alt_name, sanText)
            && addExtension(x509, NID_basic_constraints, "critical,CA:FALSE")
            && key.withPointer({ X509_sign(x509, $0, nil) }) > 0
        guard ok else {
            throw TLSError.drainingQueue(.certificateError, "could not build a self-signed certificate for \(names)")
        }
        owned = false
        return TLSIdentity(certificate: TLSCertificate(takingForIdentity: x509), privateKey: key)
    }

    /// Writes the certificate (mode 0644 unless given) and the key (mode 0600, created fresh) as PEM.
    ///
    /// - Parameter certificateMode: the relay keeps its certificate 0600 too, in its private data directory.
    /// - Throws: `TLSError.certificateError` if either file exists or cannot be written.
    public func write(certificatePath: String, privateKeyPath: String, certificateMode: Int = 0o644) throws {
        try writeFile(privateKeyPath, try privateKey.pem, mode: 0o600)
        do {
            try writeFile(certificatePath, try certificate.pem, mode: mode_t(certificateMode))
        } catch {
            unlink(privateKeyPath)  // no orphan key that would make every retry fail
            throw error
        }
    }

    /// Reads a certificate and key written by `write` (or any PEM pair), checking that they match.
    public static func read(certificatePath: String, privateKeyPath: String) throws -> TLSIdentity {
        let identity = TLSIdentity(
            certificate: try TLSCertificate(pemFile: certificatePath),
            privateKey: try TLSPrivateKey(pemFile: privateKeyPath)
        )
        let matches = identity.certificate.withPointer { x509 in
            identity.privateKey.withPointer { key in X509_check_private_key(x509, key) }
        }
        guard matches == 1 else {
            throw TLSError.drainingQueue(.certificateError, "\(privateKeyPath) is not the key of \(certificatePath)")
        }
        return identity
    }

    private static func isIPAddress(_ text: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    private static func addExtension(_ x509: OpaquePointer, _ nid: Int32, _ value: String) -> Bool {
        guard let ext = X509V3_EXT_conf_nid(nil, nil, nid, value) else { return false }
        defer { X509_EXTENSION_free(ext) }
        return X509_add_ext(x509, ext, -1) == 1
    }
}

extension TLSCertificate {
    fileprivate convenience init(takingForIdentity x509: OpaquePointer) {
        self.init(taking: x509)
    }
}

/// A memory BIO used to move PEM in and out of OpenSSL.
final class MemoryBIO {
    private let bio: OpaquePointer

    init() throws {
        guard let bio = BIO_new(BIO_s_mem()) else { throw TLSError.drainingQueue(.certificateError, "BIO_new failed") }
        self.bio = bio
    }

    convenience init(_ bytes: [UInt8]) throws {
        try self.init()
        _ = bytes.withUnsafeBytes { BIO_write(bio, $0.baseAddress, Int32($0.count)) }
    }

    deinit {
        BIO_free(bio)
    }

    func withPointer<R>(_ body: (OpaquePointer) throws -> R) rethrows -> R {
        try body(bio)
    }

    var contents: [UInt8] {
        var data: UnsafeMutablePointer<CChar>? = nil
        let length = curbside_BIO_get_mem_data(bio, &data)
        guard length > 0, let data else { return [] }
        return Array(UnsafeRawBufferPointer(start: data, count: length))
    }
}

func readFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw TLSError(.certificateError, "cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16_384)
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n < 0 { throw TLSError(.certificateError, "cannot read \(path): \(String(cString: strerror(errno)))") }
        if n == 0 { break }
        out += chunk[0..<n]
    }
    return out
}

func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t) throws {
    // O_EXCL: never overwrite an existing key; the mode applies from creation, so the key is never readable by others.
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode)
    guard fd >= 0 else { throw TLSError(.certificateError, "cannot create \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var written = 0
    while written < bytes.count {
        let n = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { throw TLSError(.certificateError, "cannot write \(path): \(String(cString: strerror(errno)))") }
        written += n
    }
    guard fchmod(fd, mode) == 0, fsync(fd) == 0 else {
        throw TLSError(.certificateError, "cannot finish \(path): \(String(cString: strerror(errno)))")
    }
}

/// A PEM password callback that supplies no password.
private func refusePassword(
    _ buffer: UnsafeMutablePointer<CChar>?,
    _ size: Int32,
    _ writing: Int32,
    _ userData: UnsafeMutableRawPointer?
) -> Int32 {
    0
}
