/// A message sealed to one recipient: HPKE base mode over the signed message (spec/envelope.md §Envelope).
///
/// The header (version, suite, which prekey, HPKE `enc`) is the AEAD's associated data, so changing any header
/// byte makes `open` fail. `open` throws `EnvelopeError.decryptionFailed` for any AEAD failure without saying which
/// part failed, and `.badSignature` when the message decrypts but its sender's signature does not verify.
public struct SealedEnvelope: Sendable, Hashable, WireCodable {
    public static let wireName = "envelope"
    public static let version: UInt8 = 1
    static let ciphertextBounds = (ChaChaPoly.tagByteCount + 1)...(1 << 21)
    /// HPKE `info`: binds every key schedule to this protocol and version.
    static let hpkeInfo = Array("curbside/v1/envelope".utf8)

    /// The cipher suites of the `suite` field.
    public struct Suite: RawRepresentable, Sendable, Hashable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        /// HPKE DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, with Ed25519 signatures.
        public static let x25519ChaChaPolyEd25519 = Suite(rawValue: 0x0001)
    }

    /// Which of the recipient's prekeys the envelope was sealed to.
    public struct PrekeyReference: Sendable, Hashable, CustomStringConvertible {
        public enum Kind: UInt8, Sendable {
            case signed = 1
            case oneTime = 2
        }

        public let kind: Kind
        public let id: UInt32

        public init(kind: Kind, id: UInt32) {
            self.kind = kind
            self.id = id
        }

        public var description: String { "\(kind == .signed ? "signed" : "one-time") prekey \(id)" }
    }

    /// The public, authenticated part of the envelope.
    public struct Header: Sendable, Hashable, WireCodable {
        public static let wireName = "envelope.header"

        public let suite: Suite
        public let prekey: PrekeyReference
        /// HPKE's encapsulated key: the sender's ephemeral X25519 public key.
        public let encapsulatedKey: [UInt8]

        package init(suite: Suite, prekey: PrekeyReference, encapsulatedKey: [UInt8]) {
            self.suite = suite
            self.prekey = prekey
            self.encapsulatedKey = encapsulatedKey
        }

        public init(from reader: inout WireReader, field: String) throws(WireError) {
            _ = try reader.readVersion("\(field).version", supported: [SealedEnvelope.version])
            suite = Suite(rawValue: try reader.readUInt16("\(field).suite"))
            let kind = try reader.readEnum(PrekeyReference.Kind.self, "\(field).prekey_kind")
            prekey = PrekeyReference(kind: kind, id: try reader.readUInt32("\(field).prekey_id"))
            encapsulatedKey = try reader.readBytes(count: AgreementKey.byteCount, "\(field).enc")
        }

        public func encode(to writer: inout WireWriter) {
            writer.writeUInt8(SealedEnvelope.version)
            writer.writeUInt16(suite.rawValue)
            writer.writeEnum(prekey.kind)
            writer.writeUInt32(prekey.id)
            writer.writeBytes(encapsulatedKey)
        }
    }

    public let header: Header
    /// HPKE ciphertext of the signed message, tag included.
    public let ciphertext: [UInt8]

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        header = try Header(from: &reader, field: "\(field).header")
        ciphertext = try reader.readOpaque("\(field).ciphertext", bounds: Self.ciphertextBounds)
    }

    public func encode(to writer: inout WireWriter) {
        header.encode(to: &writer)
        writer.writeOpaque(ciphertext, bounds: Self.ciphertextBounds)
    }

    package init(header: Header, ciphertext: [UInt8]) {
        self.header = header
        self.ciphertext = ciphertext
    }
}

// MARK: - Sealing

extension SealedEnvelope {
    /// Signs `message` with `sender` and seals it to `bundle`: to its one-time prekey when there is one, otherwise to
    /// its signed prekey.
    ///
    /// The bundle is verified first against `now` and the message's recipient.
    /// - Throws: `BundleError` when the bundle fails verification; `EnvelopeError.senderKeyMismatch`,
    ///   `.recipientMismatch` or `.invalidPrekey`.
    public static func seal(
        _ message: Message,
        to bundle: PrekeyBundle,
        signedBy sender: SigningKey,
        now: Timestamp = .now()
    ) throws -> SealedEnvelope {
        try seal(
            message,
            to: bundle,
            signedBy: sender,
            now: now,
            ephemeralKeyMaterial: .random(count: AgreementKey.byteCount)
        )
    }

    /// Deterministic sealing for test vectors: the HPKE ephemeral key is DeriveKeyPair(`ephemeralKeyMaterial`).
    package static func seal(
        _ message: Message,
        to bundle: PrekeyBundle,
        signedBy sender: SigningKey,
        now: Timestamp,
        ephemeralKeyMaterial: SecretBytes
    ) throws -> SealedEnvelope {
        guard message.recipient == bundle.owner else {
            throw EnvelopeError(
                .recipientMismatch,
                "message is addressed to \(message.recipient.handle) but the bundle is \(bundle.owner.handle)'s"
            )
        }
        try bundle.verify(now: now)
        let signed = try SignedMessage(signing: message, with: sender)

        let reference: PrekeyReference
        let prekey: AgreementKey.Public
        if let oneTime = bundle.oneTimePrekey {
            reference = PrekeyReference(kind: .oneTime, id: oneTime.id)
            prekey = oneTime.publicKey
        } else {
            reference = PrekeyReference(kind: .signed, id: bundle.signedPrekey.id)
            prekey = bundle.signedPrekey.publicKey
        }

        do {
            return try seal(signed, to: prekey, as: reference, ephemeralKeyMaterial: ephemeralKeyMaterial)
        } catch {
            throw EnvelopeError(.invalidPrekey, "\(reference) of \(bundle.owner.handle): \(error)")
        }
    }

    /// The HPKE step alone: seals already-encoded plaintext to one prekey, with no checks on what it holds.
    /// Vectors use it to build envelopes a correct sender would never make.
    package static func seal(
        plaintext: [UInt8],
        to prekey: AgreementKey.Public,
        as reference: PrekeyReference,
        suite: Suite = .x25519ChaChaPolyEd25519,
        ephemeralKeyMaterial: SecretBytes
    ) throws(CryptoError) -> SealedEnvelope {
        var context = try HPKE.Sender(
            recipientKey: prekey,
            ciphersuite: .x25519SHA256ChaChaPoly,
            info: hpkeInfo,
            senderKey: nil,
            ephemeralKeyMaterial: ephemeralKeyMaterial
        )
        let header = Header(suite: suite, prekey: reference, encapsulatedKey: context.encapsulatedKey)
        let ciphertext = try context.seal(plaintext, authenticating: header.encoded)
        return SealedEnvelope(header: header, ciphertext: ciphertext)
    }

    static func seal(
        _ signed: SignedMessage,
        to prekey: AgreementKey.Public,
        as reference: PrekeyReference,
        ephemeralKeyMaterial: SecretBytes
    ) throws(CryptoError) -> SealedEnvelope {
        // The plaintext holds patient data and attachment keys: wipe it once sealed.
        var plaintext = signed.encoded
        defer { secureZero(&plaintext) }
        return try seal(plaintext: plaintext, to: prekey, as: reference, ephemeralKeyMaterial: ephemeralKeyMaterial)
    }
}

// MARK: - Opening

/// Where the recipient's private prekeys are looked up while opening an envelope.
public protocol PrekeyLookup {
    /// The private key of the referenced prekey, or nil when it is not held (never was, used, or rotated away).
    func privateKey(for reference: SealedEnvelope.PrekeyReference) -> AgreementKey.Private?
}

/// An envelope that decrypted, verified and was addressed to the one who opened it.
public struct OpenedEnvelope: Sendable, Hashable {
    public let message: Message
    /// The sender's signature over `message.signedBytes`, kept for non-repudiation.
    public let signature: [UInt8]
    /// The prekey it was sealed to; a one-time prekey must now be deleted.
    public let prekey: SealedEnvelope.PrekeyReference
}

extension SealedEnvelope {
    /// Decrypts, verifies the sender's signature and checks the message is addressed to `recipient`.
    ///
    /// Checks, in order: suite (`unsupportedSuite`), prekey (`unknownPrekey`), AEAD (`decryptionFailed`), plaintext
    /// encoding (`malformedContent`), signature (`badSignature`), recipient (`wrongRecipient`). The sender's identity
    /// is only proven to hold the key the message names; whether that key is the sender's pinned one is the
    /// caller's check.
    public func open(as recipient: Party, using prekeys: some PrekeyLookup) throws(EnvelopeError) -> OpenedEnvelope {
        guard header.suite == .x25519ChaChaPolyEd25519 else {
            throw EnvelopeError(.unsupportedSuite, "suite 0x\(String(header.suite.rawValue, radix: 16)) is not supported")
        }
        guard let privateKey = prekeys.privateKey(for: header.prekey) else {
            throw EnvelopeError(.unknownPrekey, "\(header.prekey) is not held by \(recipient.handle)")
        }
        var plaintext: [UInt8]
        do {
            var context = try HPKE.Recipient(
                privateKey: privateKey,
                ciphersuite: .x25519SHA256ChaChaPoly,
                info: Self.hpkeInfo,
                encapsulatedKey: header.encapsulatedKey
            )
            plaintext = try context.open(ciphertext, authenticating: header.encoded)
        } catch {
            throw EnvelopeError(.decryptionFailed, "could not decrypt with \(header.prekey)")
        }
        let signed: SignedMessage
        do {
            defer { secureZero(&plaintext) }
            signed = try SignedMessage(decoding: plaintext)
        } catch {
            throw EnvelopeError(.malformedContent, "decrypted message is malformed: \(error)")
        }
        guard signed.isSignatureValid else {
            throw EnvelopeError(.badSignature, "signature of \(signed.message.sender.handle) does not verify")
        }
        guard signed.message.recipient == recipient else {
            throw EnvelopeError(
                .wrongRecipient,
                "message \(signed.message.id) was signed for \(signed.message.recipient.handle), not \(recipient.handle)"
            )
        }
        return OpenedEnvelope(message: signed.message, signature: signed.signature, prekey: header.prekey)
    }
}

/// The private prekeys one identity holds, by id.
public struct PrekeyRing: PrekeyLookup, Sendable {
    public var signedPrekeys: [UInt32: AgreementKey.Private]
    public var oneTimePrekeys: [UInt32: AgreementKey.Private]

    public init(
        signedPrekeys: [UInt32: AgreementKey.Private] = [:],
        oneTimePrekeys: [UInt32: AgreementKey.Private] = [:]
    ) {
        self.signedPrekeys = signedPrekeys
        self.oneTimePrekeys = oneTimePrekeys
    }

    public func privateKey(for reference: SealedEnvelope.PrekeyReference) -> AgreementKey.Private? {
        switch reference.kind {
        case .signed: signedPrekeys[reference.id]
        case .oneTime: oneTimePrekeys[reference.id]
        }
    }
}
