/// A medium-term X25519 prekey signed by its owner's identity key (spec/keys.md §Signed prekey).
public struct SignedPrekey: Sendable, Hashable, WireCodable {
    public static let wireName = "signed_prekey"
    static let signatureLabel = Array("curbside/v1/signed-prekey\0".utf8)

    public let id: UInt32
    public let publicKey: AgreementKey.Public
    /// After this time senders must not encrypt to it.
    public let expiresAt: Timestamp
    public let signature: [UInt8]

    /// Signs `publicKey` as prekey `id` of `identity`, valid until `expiresAt`.
    public init(id: UInt32, publicKey: AgreementKey.Public, expiresAt: Timestamp, signedBy identity: SigningKey) {
        self.id = id
        self.publicKey = publicKey
        self.expiresAt = expiresAt
        signature = identity.signature(
            for: Self.signedBytes(identityKey: identity.verifyingKey, id: id, publicKey: publicKey, expiresAt: expiresAt)
        )
    }

    /// The bytes the signature covers: label ‖ identity_key ‖ id ‖ public_key ‖ expires_at.
    static func signedBytes(
        identityKey: VerifyingKey,
        id: UInt32,
        publicKey: AgreementKey.Public,
        expiresAt: Timestamp
    ) -> [UInt8] {
        var writer = WireWriter()
        writer.writeBytes(signatureLabel)
        writer.writeBytes(identityKey.rawRepresentation)
        writer.writeUInt32(id)
        writer.writeBytes(publicKey.rawRepresentation)
        writer.writeUInt64(expiresAt.millisecondsSince1970)
        return writer.bytes
    }

    /// Whether the signature is `identityKey`'s over this prekey.
    public func isSigned(by identityKey: VerifyingKey) -> Bool {
        identityKey.isValidSignature(
            signature,
            for: Self.signedBytes(identityKey: identityKey, id: id, publicKey: publicKey, expiresAt: expiresAt)
        )
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        id = try reader.readUInt32("\(field).id")
        publicKey = try AgreementKey.Public(from: &reader, field: "\(field).public_key")
        expiresAt = try Timestamp(from: &reader, field: "\(field).expires_at")
        signature = try reader.readBytes(count: VerifyingKey.signatureByteCount, "\(field).signature")
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeUInt32(id)
        writer.writeBytes(publicKey.rawRepresentation)
        writer.writeUInt64(expiresAt.millisecondsSince1970)
        writer.writeBytes(signature)
    }
}

/// A single-use X25519 prekey, also signed, so the relay cannot substitute a key of its own (spec/keys.md
/// §One-time prekey).
public struct OneTimePrekey: Sendable, Hashable, WireCodable {
    public static let wireName = "one_time_prekey"
    static let signatureLabel = Array("curbside/v1/one-time-prekey\0".utf8)

    public let id: UInt32
    public let publicKey: AgreementKey.Public
    public let signature: [UInt8]

    /// Signs `publicKey` as one-time prekey `id` of `identity`.
    public init(id: UInt32, publicKey: AgreementKey.Public, signedBy identity: SigningKey) {
        self.id = id
        self.publicKey = publicKey
        signature = identity.signature(
            for: Self.signedBytes(identityKey: identity.verifyingKey, id: id, publicKey: publicKey)
        )
    }

    /// The bytes the signature covers: label ‖ identity_key ‖ id ‖ public_key.
    static func signedBytes(identityKey: VerifyingKey, id: UInt32, publicKey: AgreementKey.Public) -> [UInt8] {
        var writer = WireWriter()
        writer.writeBytes(signatureLabel)
        writer.writeBytes(identityKey.rawRepresentation)
        writer.writeUInt32(id)
        writer.writeBytes(publicKey.rawRepresentation)
        return writer.bytes
    }

    /// Whether the signature is `identityKey`'s over this prekey.
    public func isSigned(by identityKey: VerifyingKey) -> Bool {
        identityKey.isValidSignature(
            signature,
            for: Self.signedBytes(identityKey: identityKey, id: id, publicKey: publicKey)
        )
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        id = try reader.readUInt32("\(field).id")
        publicKey = try AgreementKey.Public(from: &reader, field: "\(field).public_key")
        signature = try reader.readBytes(count: VerifyingKey.signatureByteCount, "\(field).signature")
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeUInt32(id)
        writer.writeBytes(publicKey.rawRepresentation)
        writer.writeBytes(signature)
    }
}

/// What a sender fetches to encrypt to a recipient it has never talked to (spec/keys.md §Prekey bundle).
///
/// Decoding checks only the encoding; call `verify(now:expecting:)` before sealing to it.
public struct PrekeyBundle: Sendable, Hashable, WireCodable {
    public static let wireName = "prekey_bundle"
    public static let version: UInt8 = 1

    public let owner: Party
    public let signedPrekey: SignedPrekey
    public let oneTimePrekey: OneTimePrekey?

    public init(owner: Party, signedPrekey: SignedPrekey, oneTimePrekey: OneTimePrekey?) {
        self.owner = owner
        self.signedPrekey = signedPrekey
        self.oneTimePrekey = oneTimePrekey
    }

    /// Checks the bundle before a sender encrypts to it, in this order:
    /// the owner is `expected` when given (`identityMismatch`), the signed prekey's signature (`badSignature`), its
    /// expiry against `now` (`prekeyExpired`), and the one-time prekey's signature (`badSignature`).
    public func verify(now: Timestamp, expecting expected: Party? = nil) throws(BundleError) {
        if let expected, expected != owner {
            throw BundleError(
                .identityMismatch,
                "expected \(expected.handle) with key \(expected.identityKey), got \(owner.handle) with key \(owner.identityKey)"
            )
        }
        guard signedPrekey.isSigned(by: owner.identityKey) else {
            throw BundleError(.badSignature, "signed prekey \(signedPrekey.id) is not signed by \(owner.handle)'s identity key")
        }
        guard now < signedPrekey.expiresAt else {
            throw BundleError(
                .prekeyExpired,
                "signed prekey \(signedPrekey.id) expired at \(signedPrekey.expiresAt), now is \(now)"
            )
        }
        if let oneTimePrekey, !oneTimePrekey.isSigned(by: owner.identityKey) {
            throw BundleError(.badSignature, "one-time prekey \(oneTimePrekey.id) is not signed by \(owner.handle)'s identity key")
        }
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        _ = try reader.readVersion("\(field).version", supported: [Self.version])
        owner = try Party(from: &reader, field: "\(field).owner")
        signedPrekey = try SignedPrekey(from: &reader, field: "\(field).signed_prekey")
        oneTimePrekey = try reader.readOptional("\(field).one_time_prekey") { (reader) throws(WireError) in
            try OneTimePrekey(from: &reader, field: "\(field).one_time_prekey")
        }
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeUInt8(Self.version)
        owner.encode(to: &writer)
        signedPrekey.encode(to: &writer)
        writer.writeOptional(oneTimePrekey) { $1.encode(to: &$0) }
    }
}
