/// The relay's challenge, sent first on every connection (spec/relay.md §Login).
public struct LoginChallenge: Sendable, Hashable, WireCodable {
    public static let wireName = "challenge"
    public static let version: UInt8 = 1
    public static let nonceByteCount = 32

    /// 32 fresh random bytes.
    public let nonce: [UInt8]

    public init(nonce: [UInt8]) {
        precondition(nonce.count == Self.nonceByteCount, "internal error: a challenge is 32 bytes")
        self.nonce = nonce
    }

    /// A fresh challenge.
    public static func random() -> LoginChallenge {
        LoginChallenge(nonce: secureRandomBytes(count: nonceByteCount))
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        _ = try reader.readVersion("\(field).version", supported: [Self.version])
        nonce = try reader.readBytes(count: Self.nonceByteCount, "\(field).nonce")
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeUInt8(Self.version)
        writer.writeBytes(nonce)
    }
}

/// The client's login: its handle and its identity key's signature over the challenge, bound to this TLS
/// connection by the channel binding (spec/relay.md §Login).
public struct LoginRequest: Sendable, Hashable, WireCodable {
    public static let wireName = "login"
    static let signatureLabel = Array("curbside/v1/relay-login\0".utf8)
    public static let channelBindingByteCount = 32

    public let handle: Handle
    public let signature: [UInt8]

    /// Signs the login for `handle` on the connection with `channelBinding`.
    public init(handle: Handle, challenge: LoginChallenge, channelBinding: [UInt8], signedBy identity: SigningKey) {
        self.handle = handle
        signature = identity.signature(
            for: Self.signedBytes(challenge: challenge, channelBinding: channelBinding, handle: handle)
        )
    }

    /// label ‖ challenge nonce (32) ‖ channel binding (32) ‖ handle with its 1-byte length.
    static func signedBytes(challenge: LoginChallenge, channelBinding: [UInt8], handle: Handle) -> [UInt8] {
        var writer = WireWriter()
        writer.writeBytes(signatureLabel)
        writer.writeBytes(challenge.nonce)
        writer.writeBytes(channelBinding)
        handle.encode(to: &writer)
        return writer.bytes
    }

    /// Checks the login against the identity key registered for `handle`, the challenge this connection sent and
    /// this connection's channel binding.
    ///
    /// - Throws: `RelayError.loginFailed` if the signature does not verify: another key, another challenge, or a
    ///   login captured on another connection.
    public func verify(identityKey: VerifyingKey, challenge: LoginChallenge, channelBinding: [UInt8]) throws(RelayError) {
        try Self.check(signature, of: handle, by: identityKey, channelBinding: channelBinding) {
            Self.signedBytes(challenge: challenge, channelBinding: channelBinding, handle: handle)
        }
    }

    /// Throws `login_failed` unless `channelBinding` has its 32 bytes and `signature` verifies over `signedBytes()`
    /// with `identityKey`: one check for `login` and `bound_login`, one error for every cause.
    static func check(
        _ signature: [UInt8],
        of handle: Handle,
        by identityKey: VerifyingKey,
        channelBinding: [UInt8],
        over signedBytes: () -> [UInt8]
    ) throws(RelayError) {
        guard channelBinding.count == channelBindingByteCount,
            identityKey.isValidSignature(signature, for: signedBytes())
        else {
            throw RelayError(.loginFailed, "login of \(handle) did not verify")
        }
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        (handle, signature) = try reader.readHandleAndSignature(field)
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeHandleAndSignature(handle, signature)
    }
}

/// The client's login sent as soon as its side of the TLS handshake completes, without waiting for the challenge:
/// its handle and its identity key's signature over this connection's channel binding alone (spec/relay.md §Bound
/// login).
///
/// The channel binding is fresh on every connection (transport.md §Session resumption: no resumption), so it does
/// what the challenge's nonce does for `LoginRequest`; the distinct label keeps the two signatures apart.
public struct BoundLoginRequest: Sendable, Hashable, WireCodable {
    public static let wireName = "bound_login"
    static let signatureLabel = Array("curbside/v1/relay-login-bound\0".utf8)

    public let handle: Handle
    public let signature: [UInt8]

    /// Signs the bound login for `handle` on the connection with `channelBinding`.
    public init(handle: Handle, channelBinding: [UInt8], signedBy identity: SigningKey) {
        self.handle = handle
        signature = identity.signature(for: Self.signedBytes(channelBinding: channelBinding, handle: handle))
    }

    /// label ‖ channel binding (32) ‖ handle with its 1-byte length.
    static func signedBytes(channelBinding: [UInt8], handle: Handle) -> [UInt8] {
        var writer = WireWriter()
        writer.writeBytes(signatureLabel)
        writer.writeBytes(channelBinding)
        handle.encode(to: &writer)
        return writer.bytes
    }

    /// Checks the bound login against the identity key registered for `handle` and this connection's channel binding.
    ///
    /// - Throws: `RelayError.loginFailed` if the signature does not verify: another key, or a login captured on
    ///   another connection.
    public func verify(identityKey: VerifyingKey, channelBinding: [UInt8]) throws(RelayError) {
        try LoginRequest.check(signature, of: handle, by: identityKey, channelBinding: channelBinding) {
            Self.signedBytes(channelBinding: channelBinding, handle: handle)
        }
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        (handle, signature) = try reader.readHandleAndSignature(field)
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeHandleAndSignature(handle, signature)
    }
}

extension WireWriter {
    /// The body `login` and `bound_login` share.
    mutating func writeHandleAndSignature(_ handle: Handle, _ signature: [UInt8]) {
        handle.encode(to: &self)
        writeBytes(signature)
    }
}

extension WireReader {
    /// The body `login` and `bound_login` share: a handle, then a 64-byte Ed25519 signature.
    mutating func readHandleAndSignature(_ field: String) throws(WireError) -> (Handle, [UInt8]) {
        let handle = try Handle(from: &self, field: "\(field).handle")
        return (handle, try readBytes(count: VerifyingKey.signatureByteCount, "\(field).signature"))
    }
}
