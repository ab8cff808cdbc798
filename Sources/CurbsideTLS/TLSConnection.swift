internal import COpenSSL
internal import COpenSSLShims
import NIOCore

/// One TLS session over a `ByteBufferBIO`. The only type that holds an `SSL *`.
///
/// It exposes step operations only: put ciphertext in, take ciphertext out, and step the handshake, reads, writes
/// and shutdown. Each step turns OpenSSL's return code into a `Step`, so nothing above sees `SSL_get_error`.
/// Not thread-safe: it belongs to one event loop, like its handler.
final class TLSConnection {
    enum Step<Value> {
        case complete(Value)
        case wantsMoreInput
        case failed(TLSError)
    }

    enum ReadResult {
        /// This many plaintext bytes were appended.
        case data(Int)
        /// No whole record is buffered yet.
        case wantsMoreInput
        /// The peer sent close_notify.
        case closed
        case failed(TLSError)
    }

    private let ssl: OpaquePointer
    /// Both directions: network → OpenSSL and OpenSSL → network. Outlives `ssl`, which holds its BIO.
    private let bio: ByteBufferBIO
    let context: TLSContext
    private var pinFailure: TLSError?

    /// The largest TLS record's plaintext; reads hand out at most this much at a time.
    static let maximumRecordPlaintext = 16_384

    init(context: TLSContext, serverName: String? = nil) throws {
        self.context = context
        let ssl = try context.makeSSL()
        let bio = ByteBufferBIO()
        guard let bioPointer = bio.makeBIO() else {
            SSL_free(ssl)
            throw TLSError.drainingQueue(.invalidConfiguration, "BIO_new failed")
        }
        self.ssl = ssl
        self.bio = bio
        SSL_set_bio(ssl, bioPointer, bioPointer)  // the SSL now owns the BIO (one reference for both directions)
        _ = curbside_SSL_set_app_data(ssl, Unmanaged.passUnretained(self).toOpaque())

        switch context.configuration.role {
        case .server:
            SSL_set_accept_state(ssl)
        case .client(let trust):
            SSL_set_connect_state(ssl)
            if case .certificateAuthorities(_, let hostName) = trust {
                // Every stored property is set by now, so a throw runs deinit, which frees the SSL.
                guard curbside_SSL_set_tlsext_host_name(ssl, hostName) == 1, SSL_set1_host(ssl, hostName) == 1 else {
                    throw TLSError.drainingQueue(.invalidConfiguration, "cannot check host name \"\(hostName)\"")
                }
            } else if let serverName {
                _ = curbside_SSL_set_tlsext_host_name(ssl, serverName)
            }
        }
    }

    deinit {
        SSL_free(ssl)
    }

    /// Recovers the connection from an `SSL *` inside a C callback.
    static func from(_ ssl: OpaquePointer) -> TLSConnection? {
        guard let pointer = curbside_SSL_get_app_data(ssl) else { return nil }
        return Unmanaged<TLSConnection>.fromOpaque(pointer).takeUnretainedValue()
    }

    // MARK: - Bytes in and out

    /// Hands ciphertext from the network to OpenSSL: the buffer is kept, not copied, unless bytes of an
    /// incomplete record are still waiting.
    func receive(_ buffer: ByteBuffer) {
        bio.receive(buffer)
    }

    /// Ciphertext OpenSSL has produced for the network, or nil if none.
    func takePendingCiphertext(allocator: ByteBufferAllocator) -> ByteBuffer? {
        bio.takeOutbound()
    }

    // MARK: - Steps

    func handshakeStep() -> Step<Void> {
        OpenSSLErrorQueue.clear()
        let result = SSL_do_handshake(ssl)
        if result == 1 { return .complete(()) }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .wantsMoreInput
        default:
            if let pinFailure { return .failed(pinFailure) }
            var detail = "handshake failed"
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK {
                detail += ": certificate verification: \(String(cString: X509_verify_cert_error_string(verify)))"
            }
            return .failed(.drainingQueue(.handshakeFailed, detail))
        }
    }

    /// Reads one record's worth of plaintext at most into `buffer`.
    func readPlaintext(into buffer: inout ByteBuffer) -> ReadResult {
        OpenSSLErrorQueue.clear()
        var result: Int32 = 0
        var readCount = 0
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.maximumRecordPlaintext) { out in
            var count = 0
            result = SSL_read_ex(ssl, out.baseAddress, Self.maximumRecordPlaintext, &count)
            readCount = result == 1 ? count : 0
            return readCount
        }
        if result == 1 { return .data(readCount) }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .wantsMoreInput
        case SSL_ERROR_ZERO_RETURN: return .closed
        default: return .failed(.drainingQueue(.protocolError, "reading a record failed"))
        }
    }

    /// Encrypts all of `bytes` into the BIO's outbound buffer (which always has room).
    func writePlaintext(_ bytes: UnsafeRawBufferPointer) -> Step<Void> {
        OpenSSLErrorQueue.clear()
        // Room for every record at once: 5 bytes of header, the content type and a 16-byte tag each.
        let records = (bytes.count + Self.maximumRecordPlaintext - 1) / Self.maximumRecordPlaintext
        bio.reserveOutbound(bytes.count + records * 22)
        var offset = 0
        while offset < bytes.count {
            var written = 0
            let result = SSL_write_ex(ssl, bytes.baseAddress! + offset, bytes.count - offset, &written)
            guard result == 1 else {
                // A memory BIO always takes the output, so even "want read/write" means the bytes were not sent.
                return .failed(.drainingQueue(.protocolError, "writing a record failed"))
            }
            offset += written
        }
        return .complete(())
    }

    /// Sends close_notify (first call) and reports whether the peer's close_notify has arrived too.
    func shutdownStep() -> Step<Void> {
        OpenSSLErrorQueue.clear()
        let result = SSL_shutdown(ssl)
        switch result {
        case 1: return .complete(())
        case 0: return .wantsMoreInput
        default:
            switch SSL_get_error(ssl, result) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .wantsMoreInput
            default: return .failed(.drainingQueue(.protocolError, "shutdown failed"))
            }
        }
    }

    /// Updates our sending keys and asks the peer to update its own (TLS 1.3 KeyUpdate, update_requested); the
    /// message is queued as ciphertext at once rather than waiting for the next write.
    func requestKeyUpdate() -> Bool {
        OpenSSLErrorQueue.clear()
        return SSL_key_update(ssl, SSL_KEY_UPDATE_REQUESTED) == 1 && SSL_do_handshake(ssl) == 1
    }

    /// Sends a KeyUpdate OpenSSL has queued (the answer to a peer's update_requested) now, not with the next
    /// application write, which may never come.
    func sendQueuedKeyUpdate() {
        guard SSL_get_key_update_type(ssl) != SSL_KEY_UPDATE_NONE else { return }
        OpenSSLErrorQueue.clear()
        // OpenSSL keeps the answer pending until a write; re-queuing it as our own update lets the handshake call
        // send it. The slot holds one update, so this sends exactly the one owed.
        _ = SSL_key_update(ssl, SSL_KEY_UPDATE_NOT_REQUESTED)
        _ = SSL_do_handshake(ssl)
    }

    /// Whether OpenSSL gives up this connection's record buffers between records (`SSL_MODE_RELEASE_BUFFERS`).
    var releasesRecordBuffers: Bool {
        curbside_SSL_get_mode(ssl) & Int(SSL_MODE_RELEASE_BUFFERS) != 0
    }

    // MARK: - After the handshake

    /// The ALPN protocol both ends agreed on, if any.
    var negotiatedProtocol: String? {
        var data: UnsafePointer<UInt8>? = nil
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// The peer certificate's public-key fingerprint, if it presented one.
    var peerPublicKeyFingerprint: PublicKeyFingerprint? {
        guard let peer = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(peer) }
        return TLSCertificate.publicKeyFingerprint(of: peer)
    }

    /// An exporter value (RFC 8446 §7.5, RFC 5705); with the label "EXPORTER-Channel-Binding" and no context, the
    /// `tls-exporter` channel binding of RFC 9266.
    func exportKeyingMaterial(label: String, context: [UInt8]?, length: Int) throws -> [UInt8] {
        OpenSSLErrorQueue.clear()
        var out = [UInt8](repeating: 0, count: length)
        let labelBytes = Array(label.utf8)
        let ok = labelBytes.withUnsafeBufferPointer { label in
            label.withMemoryRebound(to: CChar.self) { label in
                if let context {
                    SSL_export_keying_material(ssl, &out, length, label.baseAddress, label.count, context, context.count, 1)
                } else {
                    SSL_export_keying_material(ssl, &out, length, label.baseAddress, label.count, nil, 0, 0)
                }
            }
        }
        guard ok == 1 else { throw TLSError.drainingQueue(.protocolError, "keying material export failed") }
        return out
    }

    // MARK: - Callbacks

    /// Checks the server's leaf certificate against the pinned fingerprints; remembers why it failed.
    func verifyPinnedPeer(_ leaf: OpaquePointer) -> Bool {
        guard case .client(.pinnedPublicKeys(let pins)) = context.configuration.role else { return false }
        let presented = TLSCertificate.publicKeyFingerprint(of: leaf)
        if pins.contains(presented) { return true }
        pinFailure = TLSError(
            .pinMismatch,
            "expected \(pins.map(\.description).joined(separator: " or ")), presented \(presented)"
        )
        return false
    }
}
