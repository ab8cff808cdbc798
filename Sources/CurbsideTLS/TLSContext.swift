internal import COpenSSL
internal import COpenSSLShims
import NIOCore

/// An OpenSSL `SSL_CTX` built from a `TLSConfiguration`, shared by every connection of one endpoint.
///
/// Building one may read files (CA bundles): do it once at start-up, never on an event loop.
public final class TLSContext: @unchecked Sendable {
    // Configured fully in init and only read afterwards; OpenSSL allows concurrent SSL_new on one SSL_CTX.
    private let context: OpaquePointer
    public let configuration: TLSConfiguration
    /// The ALPN list in wire form: each protocol prefixed by its length.
    let alpnWire: [UInt8]
    /// The key exchange groups both ends offer, in order of preference (spec/transport.md).
    public static let groups = "X25519:P-256:P-384"

    public init(configuration: TLSConfiguration) throws {
        _ = OpenSSLLibrary.ready
        OpenSSLErrorQueue.clear()
        self.configuration = configuration
        var wire: [UInt8] = []
        for name in configuration.applicationProtocols {
            let bytes = Array(name.utf8)
            guard (1...255).contains(bytes.count) else {
                throw TLSError(.invalidConfiguration, "ALPN protocol \"\(name)\" must be 1 to 255 bytes")
            }
            wire += [UInt8(bytes.count)] + bytes
        }
        alpnWire = wire

        let method: OpaquePointer?
        switch configuration.role {
        case .server: method = TLS_server_method()
        case .client: method = TLS_client_method()
        }
        guard let context = SSL_CTX_new(method) else {
            throw TLSError.drainingQueue(.invalidConfiguration, "SSL_CTX_new failed")
        }
        self.context = context

        let version = curbside_TLS1_3_VERSION()
        guard curbside_SSL_CTX_set_min_proto_version(context, version) == 1,
            curbside_SSL_CTX_set_max_proto_version(context, version) == 1
        else {
            throw TLSError.drainingQueue(.invalidConfiguration, "this OpenSSL cannot be limited to TLS 1.3")
        }
        // No session tickets: no resumption state to store or to leak.
        _ = SSL_CTX_set_options(context, curbside_SSL_OP_NO_TICKET())
        _ = SSL_CTX_set_num_tickets(context, 0)
        // An idle connection holds no record buffers: OpenSSL frees its read buffer once the records in it are
        // consumed and its write buffer once a write is out, and takes new ones when needed (nginx's default too).
        // The idle-connection bench's relay went from 55.4 to 45.7 KiB per connection; the bytes on the wire are
        // the same.
        _ = curbside_SSL_CTX_set_mode(context, Int(SSL_MODE_RELEASE_BUFFERS))
        // Key exchange groups as Mozilla's recommendations list them: X25519 first, then P-256 and P-384; not
        // OpenSSL's default X448, P-521 and finite-field groups, which only add handshake cost and attack surface.
        guard curbside_SSL_CTX_set1_groups_list(context, Self.groups) == 1 else {
            throw TLSError.drainingQueue(.invalidConfiguration, "this OpenSSL does not offer the groups \(Self.groups)")
        }

        switch configuration.role {
        case .server(let identity):
            let ok = identity.certificate.withPointer { SSL_CTX_use_certificate(context, $0) } == 1
                && identity.privateKey.withPointer { SSL_CTX_use_PrivateKey(context, $0) } == 1
                && SSL_CTX_check_private_key(context) == 1
            guard ok else {
                throw TLSError.drainingQueue(.invalidConfiguration, "the certificate and private key do not match")
            }
            SSL_CTX_set_alpn_select_cb(context, alpnSelectCallback, nil)
        case .client(let trust):
            guard wire.isEmpty || SSL_CTX_set_alpn_protos(context, wire, UInt32(wire.count)) == 0 else {
                throw TLSError.drainingQueue(.invalidConfiguration, "cannot set ALPN protocols")
            }
            switch trust {
            case .pinnedPublicKeys:
                // Chain building is replaced by the pin check in `TLSConnection.verifyPeer`.
                SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
                SSL_CTX_set_cert_verify_callback(context, pinVerifyCallback, nil)
            case .certificateAuthorities(let pemFile, _):
                guard SSL_CTX_load_verify_locations(context, pemFile, nil) == 1 else {
                    throw TLSError.drainingQueue(.invalidConfiguration, "cannot load CA certificates from \(pemFile)")
                }
                SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
            }
        }
    }

    deinit {
        SSL_CTX_free(context)
    }

    /// A new `SSL` for one connection; the caller owns it.
    func makeSSL() throws -> OpaquePointer {
        OpenSSLErrorQueue.clear()
        guard let ssl = SSL_new(context) else { throw TLSError.drainingQueue(.invalidConfiguration, "SSL_new failed") }
        return ssl
    }

    /// The server's ALPN choice: the first of its own protocols the client offered (server preference).
    func selectProtocol(offered: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
        var ours = alpnWire[...]
        while let length = ours.first.map(Int.init) {
            let name = ours.dropFirst().prefix(length)
            var theirs = 0
            while theirs < offered.count {
                let offeredLength = Int(offered[theirs])
                let range = (theirs + 1)..<min(theirs + 1 + offeredLength, offered.count)
                if range.count == length, offered[range].elementsEqual(name) { return range }
                theirs += 1 + offeredLength
            }
            ours = ours.dropFirst(1 + length)
        }
        return nil
    }
}

/// ALPN selection: forwards to the connection stored in the `SSL`'s app data. No logic here.
private func alpnSelectCallback(
    ssl: OpaquePointer?,
    out: UnsafeMutablePointer<UnsafePointer<UInt8>?>?,
    outLength: UnsafeMutablePointer<UInt8>?,
    offered: UnsafePointer<UInt8>?,
    offeredLength: UInt32,
    argument: UnsafeMutableRawPointer?
) -> Int32 {
    guard let ssl, let offered, let connection = TLSConnection.from(ssl) else { return SSL_TLSEXT_ERR_ALERT_FATAL }
    let buffer = UnsafeBufferPointer(start: offered, count: Int(offeredLength))
    guard let range = connection.context.selectProtocol(offered: buffer) else {
        return SSL_TLSEXT_ERR_ALERT_FATAL  // no_application_protocol: refuse clients that speak none of ours
    }
    out?.pointee = offered + range.lowerBound
    outLength?.pointee = UInt8(range.count)
    return SSL_TLSEXT_ERR_OK
}

/// Certificate verification for pinned keys: forwards to the connection. No logic here.
private func pinVerifyCallback(store: OpaquePointer?, argument: UnsafeMutableRawPointer?) -> Int32 {
    guard let store,
        let sslPointer = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()),
        let connection = TLSConnection.from(OpaquePointer(sslPointer)),
        let leaf = X509_STORE_CTX_get0_cert(store)
    else { return 0 }
    guard connection.verifyPinnedPeer(leaf) else {
        // The contract: the store's error must say why, so OpenSSL reports and alerts accordingly.
        X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION)
        return 0
    }
    return 1
}
