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
        guard channelBinding.count == Self.channelBindingByteCount,
            identityKey.isValidSignature(
                signature,
                for: Self.signedBytes(challenge: challenge, channelBinding: channelBinding, handle: handle)
            )
        else {
            throw RelayError(.loginFailed, "login of \(handle) did not verify")
        }
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        handle = try Handle(from: &reader, field: "\(field).handle")
        signature = try reader.readBytes(count: VerifyingKey.signatureByteCount, "\(field).signature")
    }

    public func encode(to writer: inout WireWriter) {
        handle.encode(to: &writer)
        writer.writeBytes(signature)
    }
}
