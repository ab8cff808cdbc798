/// Hybrid Public Key Encryption (RFC 9180) on libsodium primitives.
///
/// One KEM, DHKEM(X25519, HKDF-SHA256); one KDF, HKDF-SHA256; the AEAD is ChaCha20-Poly1305 or export-only.
/// Base and auth modes. `Sender.seal` and `Recipient.open` are `mutating` because each advances the sequence number
/// that makes the nonce; a context must therefore not be copied and used twice. spec/hpke.md gives the profile.
public enum HPKE {
    /// The KEM, KDF and AEAD identifiers of a suite (RFC 9180 §7).
    public struct Ciphersuite: Sendable, Hashable {
        public enum AEAD: UInt16, Sendable {
            case chaCha20Poly1305 = 0x0003
            case exportOnly = 0xFFFF
        }

        /// DHKEM(X25519, HKDF-SHA256).
        public static let kemID: UInt16 = 0x0020
        /// HKDF-SHA256.
        public static let kdfID: UInt16 = 0x0001

        public let aead: AEAD

        public init(aead: AEAD) {
            self.aead = aead
        }

        /// The suite Curbside envelopes use: X25519, HKDF-SHA256, ChaCha20-Poly1305.
        public static let x25519SHA256ChaChaPoly = Ciphersuite(aead: .chaCha20Poly1305)
        /// The same KEM and KDF with the export-only AEAD.
        public static let x25519SHA256ExportOnly = Ciphersuite(aead: .exportOnly)

        /// "HPKE" ‖ kem_id ‖ kdf_id ‖ aead_id.
        var suiteID: [UInt8] {
            Array("HPKE".utf8) + Self.kemID.bigEndianBytes + Self.kdfID.bigEndianBytes + aead.rawValue.bigEndianBytes
        }
    }

    /// RFC 9180 §5 modes; PSK modes are not implemented.
    public enum Mode: UInt8, Sendable {
        case base = 0x00
        case auth = 0x02
    }

    /// The sending side of one HPKE context.
    public struct Sender: Sendable {
        /// `enc`: the encapsulated key to send with the ciphertexts.
        public let encapsulatedKey: [UInt8]
        private var context: Context

        /// Sets up a base-mode context to `recipientKey` with a fresh ephemeral key.
        ///
        /// - Throws: `CryptoError.weakPublicKey` if the recipient's key has small order.
        public init(
            recipientKey: AgreementKey.Public,
            ciphersuite: Ciphersuite,
            info: [UInt8]
        ) throws(CryptoError) {
            try self.init(
                recipientKey: recipientKey,
                ciphersuite: ciphersuite,
                info: info,
                senderKey: nil,
                ephemeralKeyMaterial: .random(count: AgreementKey.byteCount)
            )
        }

        /// Sets up an auth-mode context, which also proves possession of `senderKey` to the recipient.
        public init(
            recipientKey: AgreementKey.Public,
            ciphersuite: Ciphersuite,
            info: [UInt8],
            authenticatedBy senderKey: AgreementKey.Private
        ) throws(CryptoError) {
            try self.init(
                recipientKey: recipientKey,
                ciphersuite: ciphersuite,
                info: info,
                senderKey: senderKey,
                ephemeralKeyMaterial: .random(count: AgreementKey.byteCount)
            )
        }

        /// Deterministic set-up: the ephemeral key is DeriveKeyPair(`ephemeralKeyMaterial`). For test vectors only;
        /// reusing key material across messages destroys confidentiality.
        package init(
            recipientKey: AgreementKey.Public,
            ciphersuite: Ciphersuite,
            info: [UInt8],
            senderKey: AgreementKey.Private?,
            ephemeralKeyMaterial: SecretBytes
        ) throws(CryptoError) {
            let ephemeral = try DHKEM.deriveKeyPair(inputKeyMaterial: ephemeralKeyMaterial)
            let (sharedSecret, enc) = try DHKEM.encapsulate(
                to: recipientKey,
                ephemeral: ephemeral,
                sender: senderKey
            )
            encapsulatedKey = enc
            context = try Context(
                ciphersuite: ciphersuite,
                mode: senderKey == nil ? .base : .auth,
                sharedSecret: sharedSecret,
                info: info
            )
        }

        /// Encrypts the next message; ciphertext includes the 16-byte tag.
        ///
        /// - Throws: `CryptoError.unsupported` for the export-only suite; `.limitExceeded` when the sequence number
        ///   would wrap.
        public mutating func seal(_ plaintext: [UInt8], authenticating associatedData: [UInt8] = []) throws(CryptoError)
            -> [UInt8]
        {
            try context.seal(plaintext, authenticating: associatedData)
        }

        /// Export(exporter_context, L): a secret both sides can derive (RFC 9180 §5.3).
        public func exportSecret(context exporterContext: [UInt8], outputByteCount: Int) throws(CryptoError)
            -> SecretBytes
        {
            try context.exportSecret(context: exporterContext, outputByteCount: outputByteCount)
        }
    }

    /// The receiving side of one HPKE context.
    public struct Recipient: Sendable {
        private var context: Context

        /// Sets up a base-mode context from the sender's `enc`.
        ///
        /// - Throws: `CryptoError.invalidLength` for an `enc` that is not 32 bytes; `.weakPublicKey` for a
        ///   small-order one.
        public init(
            privateKey: AgreementKey.Private,
            ciphersuite: Ciphersuite,
            info: [UInt8],
            encapsulatedKey: [UInt8]
        ) throws(CryptoError) {
            try self.init(
                privateKey: privateKey,
                ciphersuite: ciphersuite,
                info: info,
                encapsulatedKey: encapsulatedKey,
                senderKey: nil
            )
        }

        /// Sets up an auth-mode context that only opens what the holder of `senderKey` sealed.
        public init(
            privateKey: AgreementKey.Private,
            ciphersuite: Ciphersuite,
            info: [UInt8],
            encapsulatedKey: [UInt8],
            authenticatedBy senderKey: AgreementKey.Public
        ) throws(CryptoError) {
            try self.init(
                privateKey: privateKey,
                ciphersuite: ciphersuite,
                info: info,
                encapsulatedKey: encapsulatedKey,
                senderKey: Optional(senderKey)
            )
        }

        private init(
            privateKey: AgreementKey.Private,
            ciphersuite: Ciphersuite,
            info: [UInt8],
            encapsulatedKey: [UInt8],
            senderKey: AgreementKey.Public?
        ) throws(CryptoError) {
            let sharedSecret = try DHKEM.decapsulate(
                encapsulatedKey,
                recipient: privateKey,
                sender: senderKey
            )
            context = try Context(
                ciphersuite: ciphersuite,
                mode: senderKey == nil ? .base : .auth,
                sharedSecret: sharedSecret,
                info: info
            )
        }

        /// Decrypts the next message.
        ///
        /// - Throws: `CryptoError.authenticationFailure` for any change to ciphertext, associated data or order.
        public mutating func open(_ ciphertext: [UInt8], authenticating associatedData: [UInt8] = []) throws(CryptoError)
            -> [UInt8]
        {
            try context.open(ciphertext, authenticating: associatedData)
        }

        /// Export(exporter_context, L), equal to the sender's.
        public func exportSecret(context exporterContext: [UInt8], outputByteCount: Int) throws(CryptoError)
            -> SecretBytes
        {
            try context.exportSecret(context: exporterContext, outputByteCount: outputByteCount)
        }
    }
}

extension FixedWidthInteger {
    /// The big-endian bytes of the value (I2OSP).
    var bigEndianBytes: [UInt8] {
        withUnsafeBytes(of: self.bigEndian) { Array($0) }
    }
}
