extension HPKE {
    /// LabeledExtract and LabeledExpand (RFC 9180 §4) under one suite_id.
    struct LabeledKDF {
        let suiteID: [UInt8]
        private static let version = Array("HPKE-v1".utf8)

        func extract(salt: KeyMaterial = .bytes([]), label: String, inputKeyMaterial: KeyMaterial) -> SecretBytes {
            HKDF.extract(
                salt: salt,
                inputKeyMaterialParts: [.bytes(Self.version + suiteID + Array(label.utf8)), inputKeyMaterial]
            )
        }

        func expand(
            pseudoRandomKey: SecretBytes,
            label: String,
            info: [UInt8],
            outputByteCount: Int
        ) throws(CryptoError) -> SecretBytes {
            guard outputByteCount >= 0, outputByteCount <= Int(UInt16.max) else {
                throw CryptoError(.limitExceeded, "hpke labeled expand of \(outputByteCount) bytes")
            }
            let prefix = UInt16(outputByteCount).bigEndianBytes + Self.version + suiteID + Array(label.utf8)
            return try HKDF.expand(
                pseudoRandomKey: pseudoRandomKey,
                infoParts: [.bytes(prefix), .bytes(info)],
                outputByteCount: outputByteCount
            )
        }
    }

    /// DHKEM(X25519, HKDF-SHA256), RFC 9180 §4.1 and §7.1.
    enum DHKEM {
        static let kdf = LabeledKDF(suiteID: Array("KEM".utf8) + Ciphersuite.kemID.bigEndianBytes)

        /// DeriveKeyPair(ikm) for X25519: sk = LabeledExpand(LabeledExtract("", "dkp_prk", ikm), "sk", "", 32).
        static func deriveKeyPair(inputKeyMaterial: SecretBytes) throws(CryptoError) -> AgreementKey.Private {
            let prk = kdf.extract(label: "dkp_prk", inputKeyMaterial: .secret(inputKeyMaterial))
            let scalar = try kdf.expand(pseudoRandomKey: prk, label: "sk", info: [], outputByteCount: 32)
            return try AgreementKey.Private(rawRepresentation: scalar)
        }

        static func encapsulate(
            to recipient: AgreementKey.Public,
            ephemeral: AgreementKey.Private,
            sender: AgreementKey.Private?
        ) throws(CryptoError) -> (sharedSecret: SecretBytes, enc: [UInt8]) {
            let enc = ephemeral.publicKey.rawRepresentation
            var dh: [KeyMaterial] = [.secret(try ephemeral.sharedSecret(with: recipient))]
            var kemContext = enc + recipient.rawRepresentation
            if let sender {
                dh.append(.secret(try sender.sharedSecret(with: recipient)))
                kemContext += sender.publicKey.rawRepresentation
            }
            return (try extractAndExpand(dh: dh, kemContext: kemContext), enc)
        }

        static func decapsulate(
            _ enc: [UInt8],
            recipient: AgreementKey.Private,
            sender: AgreementKey.Public?
        ) throws(CryptoError) -> SecretBytes {
            let ephemeral = try AgreementKey.Public(rawRepresentation: enc)
            var dh: [KeyMaterial] = [.secret(try recipient.sharedSecret(with: ephemeral))]
            var kemContext = enc + recipient.publicKey.rawRepresentation
            if let sender {
                dh.append(.secret(try recipient.sharedSecret(with: sender)))
                kemContext += sender.rawRepresentation
            }
            return try extractAndExpand(dh: dh, kemContext: kemContext)
        }

        private static func extractAndExpand(dh: [KeyMaterial], kemContext: [UInt8]) throws(CryptoError)
            -> SecretBytes
        {
            let prk = HKDF.extract(
                salt: [],
                inputKeyMaterialParts: [.bytes(Array("HPKE-v1".utf8) + kdf.suiteID + Array("eae_prk".utf8))] + dh
            )
            return try kdf.expand(pseudoRandomKey: prk, label: "shared_secret", info: kemContext, outputByteCount: 32)
        }
    }

    /// The encryption context both sides hold after the key schedule (RFC 9180 §5.1–5.3).
    struct Context: Sendable {
        static let keyByteCount = 32
        static let nonceByteCount = 12

        let ciphersuite: Ciphersuite
        private let key: SymmetricKey?
        private let baseNonce: SecretBytes?
        private let exporterSecret: SecretBytes
        private var sequenceNumber: UInt64 = 0

        init(ciphersuite: Ciphersuite, mode: Mode, sharedSecret: SecretBytes, info: [UInt8]) throws(CryptoError) {
            let kdf = LabeledKDF(suiteID: ciphersuite.suiteID)
            let pskIDHash = kdf.extract(label: "psk_id_hash", inputKeyMaterial: .bytes([]))
            let infoHash = kdf.extract(label: "info_hash", inputKeyMaterial: .bytes(info))
            let keyScheduleContext = [mode.rawValue] + pskIDHash.copiedBytes + infoHash.copiedBytes
            let secret = kdf.extract(salt: .secret(sharedSecret), label: "secret", inputKeyMaterial: .bytes([]))
            self.ciphersuite = ciphersuite
            switch ciphersuite.aead {
            case .chaCha20Poly1305:
                key = SymmetricKey(
                    try kdf.expand(
                        pseudoRandomKey: secret,
                        label: "key",
                        info: keyScheduleContext,
                        outputByteCount: Self.keyByteCount
                    )
                )
                baseNonce = try kdf.expand(
                    pseudoRandomKey: secret,
                    label: "base_nonce",
                    info: keyScheduleContext,
                    outputByteCount: Self.nonceByteCount
                )
            case .exportOnly:
                key = nil
                baseNonce = nil
            }
            exporterSecret = try kdf.expand(
                pseudoRandomKey: secret,
                label: "exp",
                info: keyScheduleContext,
                outputByteCount: SHA256.byteCount
            )
        }

        mutating func seal(_ plaintext: [UInt8], authenticating aad: [UInt8]) throws(CryptoError) -> [UInt8] {
            let (key, nonce) = try nextKeyAndNonce()
            return try ChaChaPoly.seal(plaintext, using: key, nonce: nonce, authenticating: aad)
        }

        mutating func open(_ ciphertext: [UInt8], authenticating aad: [UInt8]) throws(CryptoError) -> [UInt8] {
            let (key, nonce) = try nextKeyAndNonce()
            return try ChaChaPoly.open(ciphertext, using: key, nonce: nonce, authenticating: aad)
        }

        /// base_nonce XOR I2OSP(seq, 12), then seq += 1. The sequence number is 64 bits here, far below the RFC's
        /// 2^96 bound; it refuses to wrap rather than reuse a nonce.
        private mutating func nextKeyAndNonce() throws(CryptoError) -> (SymmetricKey, [UInt8]) {
            guard let key, let baseNonce else {
                throw CryptoError(.unsupported, "hpke export-only suite cannot seal or open")
            }
            guard sequenceNumber < UInt64.max else {
                throw CryptoError(.limitExceeded, "hpke sequence number")
            }
            var nonce = baseNonce.copiedBytes
            let seq = sequenceNumber.bigEndianBytes
            for i in 0..<seq.count { nonce[nonce.count - seq.count + i] ^= seq[i] }
            sequenceNumber += 1
            return (key, nonce)
        }

        func exportSecret(context: [UInt8], outputByteCount: Int) throws(CryptoError) -> SecretBytes {
            try LabeledKDF(suiteID: ciphersuite.suiteID).expand(
                pseudoRandomKey: exporterSecret,
                label: "sec",
                info: context,
                outputByteCount: outputByteCount
            )
        }
    }
}
