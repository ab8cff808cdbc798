/// Registration: binds a handle to an identity key with an operator's enrollment code, proving possession of the
/// key on this TLS connection (spec/relay.md §Registration). A successful registration also logs the connection in.
public struct RegisterRequest: Sendable, Hashable, WireCodable {
    public static let wireName = "register"
    static let signatureLabel = Array("curbside/v1/relay-register\0".utf8)
    /// An enrollment code on the wire: its 20 characters, upper case, no separators.
    public static let codeByteCount = 20

    public let handle: Handle
    public let identityKey: VerifyingKey
    public let enrollmentCode: [UInt8]
    public let signature: [UInt8]

    /// Signs a registration of `handle` for `identity` with `enrollmentCode` (20 ASCII bytes) on the connection with
    /// `channelBinding`.
    public init(
        handle: Handle,
        enrollmentCode: [UInt8],
        challenge: LoginChallenge,
        channelBinding: [UInt8],
        signedBy identity: SigningKey
    ) {
        precondition(enrollmentCode.count == Self.codeByteCount, "internal error: an enrollment code is 20 bytes")
        self.handle = handle
        self.identityKey = identity.verifyingKey
        self.enrollmentCode = enrollmentCode
        signature = identity.signature(
            for: Self.signedBytes(
                challenge: challenge,
                channelBinding: channelBinding,
                handle: handle,
                identityKey: identity.verifyingKey,
                enrollmentCode: enrollmentCode
            )
        )
    }

    /// label ‖ nonce (32) ‖ channel binding (32) ‖ handle with its 1-byte length ‖ identity key (32) ‖ code (20).
    static func signedBytes(
        challenge: LoginChallenge,
        channelBinding: [UInt8],
        handle: Handle,
        identityKey: VerifyingKey,
        enrollmentCode: [UInt8]
    ) -> [UInt8] {
        var writer = WireWriter()
        writer.writeBytes(signatureLabel)
        writer.writeBytes(challenge.nonce)
        writer.writeBytes(channelBinding)
        handle.encode(to: &writer)
        writer.writeBytes(identityKey.rawRepresentation)
        writer.writeBytes(enrollmentCode)
        return writer.bytes
    }

    /// Checks that the holder of `identityKey` signed this registration on this connection.
    ///
    /// - Throws: `RelayError.loginFailed` when the signature does not verify.
    public func verify(challenge: LoginChallenge, channelBinding: [UInt8]) throws(RelayError) {
        let signed = Self.signedBytes(
            challenge: challenge,
            channelBinding: channelBinding,
            handle: handle,
            identityKey: identityKey,
            enrollmentCode: enrollmentCode
        )
        guard channelBinding.count == LoginRequest.channelBindingByteCount,
            identityKey.isValidSignature(signature, for: signed)
        else {
            throw RelayError(.loginFailed, "registration of \(handle) did not verify")
        }
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        handle = try Handle(from: &reader, field: "\(field).handle")
        identityKey = try VerifyingKey(from: &reader, field: "\(field).identity_key")
        enrollmentCode = try reader.readBytes(count: Self.codeByteCount, "\(field).enrollment_code")
        signature = try reader.readBytes(count: VerifyingKey.signatureByteCount, "\(field).signature")
    }

    public func encode(to writer: inout WireWriter) {
        handle.encode(to: &writer)
        writer.writeBytes(identityKey.rawRepresentation)
        writer.writeBytes(enrollmentCode)
        writer.writeBytes(signature)
    }
}

/// A question asked before registering (spec/relay.md §Checking an enrollment code): would a `register` of `handle`
/// with this code be accepted? Nothing is signed and nothing changes; the relay answers `enrollment_usable` or the
/// error a registration would get.
public struct EnrollmentCheck: Sendable, Hashable, WireCodable {
    public static let wireName = "check_enrollment"

    public let handle: Handle
    /// The code's 20 characters, upper case, no separators, as in `register`.
    public let enrollmentCode: [UInt8]

    public init(handle: Handle, enrollmentCode: EnrollmentCode) {
        self.handle = handle
        self.enrollmentCode = Array(enrollmentCode.characters.utf8)
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        handle = try Handle(from: &reader, field: "\(field).handle")
        enrollmentCode = try reader.readBytes(count: RegisterRequest.codeByteCount, "\(field).enrollment_code")
    }

    public func encode(to writer: inout WireWriter) {
        handle.encode(to: &writer)
        writer.writeBytes(enrollmentCode)
    }
}

/// Prekeys uploaded by their owner (spec/relay.md §Key directory).
public struct PrekeyUpload: Sendable, Hashable, WireCodable {
    public static let wireName = "publish_prekeys"
    static let oneTimeCountBounds = 0...100

    public let signedPrekey: SignedPrekey?
    public let oneTimePrekeys: [OneTimePrekey]

    /// - Throws: `WireError.lengthOutOfBounds` for more than 100 one-time prekeys.
    public init(signedPrekey: SignedPrekey?, oneTimePrekeys: [OneTimePrekey]) throws(WireError) {
        guard Self.oneTimeCountBounds.contains(oneTimePrekeys.count) else {
            throw WireError(.lengthOutOfBounds, field: "publish_prekeys.one_time_prekeys", offset: nil, detail: "at most 100 per upload")
        }
        self.signedPrekey = signedPrekey
        self.oneTimePrekeys = oneTimePrekeys
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        signedPrekey = try reader.readOptional("\(field).signed_prekey") { (reader) throws(WireError) in
            try SignedPrekey(from: &reader, field: "\(field).signed_prekey")
        }
        oneTimePrekeys = try reader.readList("\(field).one_time_prekeys", count: Self.oneTimeCountBounds) {
            (reader, index) throws(WireError) in
            try OneTimePrekey(from: &reader, field: "\(field).one_time_prekeys[\(index)]")
        }
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeOptional(signedPrekey) { $1.encode(to: &$0) }
        writer.writeList(oneTimePrekeys, count: Self.oneTimeCountBounds) { $1.encode(to: &$0) }
    }
}
