import CurbsideWire

/// The deterministic keys, parties and values the vectors are built from.
///
/// Every secret is SHA-256("curbside-vectors/" ‖ label), so another implementation can rebuild any of them.
struct Fixtures {
    /// 2026-01-01T00:00:00Z.
    static let now = Timestamp(millisecondsSince1970: 1_767_225_600_000)
    static let prekeyLifetimeSeconds: UInt64 = 30 * 24 * 3600

    static func secret(_ label: String) -> SecretBytes {
        SecretBytes(SHA256.hash(Array("curbside-vectors/\(label)".utf8)))
    }

    static func signingKey(_ label: String) -> SigningKey {
        try! SigningKey(seed: secret(label))
    }

    static func agreementKey(_ label: String) -> AgreementKey.Private {
        try! AgreementKey.Private(rawRepresentation: secret(label))
    }

    static func messageID(_ label: String) -> MessageID {
        try! MessageID(rawValue: Array(SHA256.hash(Array("curbside-vectors/\(label)".utf8))[0..<16]))
    }

    /// A provider of the vectors: identity, signed prekey 1, one-time prekeys 100 and 101.
    struct Provider {
        let signingKey: SigningKey
        let party: Party
        let signedPrekey: AgreementKey.Private
        let oneTimePrekeys: [UInt32: AgreementKey.Private]

        init(_ handle: String) {
            signingKey = Fixtures.signingKey("\(handle)/identity")
            party = Party(identityKey: signingKey.verifyingKey, handle: try! Handle(handle))
            signedPrekey = Fixtures.agreementKey("\(handle)/signed-prekey/1")
            oneTimePrekeys = [
                100: Fixtures.agreementKey("\(handle)/one-time-prekey/100"),
                101: Fixtures.agreementKey("\(handle)/one-time-prekey/101"),
            ]
        }

        func signedPrekeyRecord(signer: SigningKey? = nil) -> SignedPrekey {
            SignedPrekey(
                id: 1,
                publicKey: signedPrekey.publicKey,
                expiresAt: Fixtures.now.adding(seconds: Fixtures.prekeyLifetimeSeconds),
                signedBy: signer ?? signingKey
            )
        }

        func oneTimePrekeyRecord(_ id: UInt32, signer: SigningKey? = nil) -> OneTimePrekey {
            OneTimePrekey(id: id, publicKey: oneTimePrekeys[id]!.publicKey, signedBy: signer ?? signingKey)
        }

        func bundle(oneTime id: UInt32?) -> PrekeyBundle {
            PrekeyBundle(
                owner: party,
                signedPrekey: signedPrekeyRecord(),
                oneTimePrekey: id.map { oneTimePrekeyRecord($0) }
            )
        }

        var ring: PrekeyRing {
            PrekeyRing(signedPrekeys: [1: signedPrekey], oneTimePrekeys: oneTimePrekeys)
        }
    }

    let gp = Provider("amara.gp")
    let derm = Provider("osei.derm")
    let cardio = Provider("kofi.cardio")

    var consult: Consult {
        try! Consult(
            subject: "Pigmented lesion, left forearm",
            urgency: .urgent,
            specialty: "dermatology",
            question: "Does this need excision within two weeks?",
            clinicalSummary: "54-year-old, lesion grown over 3 months.\nIrregular border, 7 mm, no bleeding."
        )
    }

    func attachment(_ label: String, fileName: String) -> AttachmentDescriptor {
        try! AttachmentDescriptor(
            size: 48_213,
            sha256: SHA256.hash(Array("curbside-vectors/\(label)/ciphertext".utf8)),
            mediaType: "image/jpeg",
            fileName: fileName,
            ageIdentity: Fixtures.agreementKey("\(label)/age-identity")
        )
    }

    /// `consultMessage` sealed by amara.gp to osei.derm's one-time prekey 100, with the fixed ephemeral key material
    /// "ikm/consult-one-time": the envelope several files use.
    var consultEnvelope: [UInt8] {
        try! SealedEnvelope.seal(
            consultMessage,
            to: derm.bundle(oneTime: 100),
            signedBy: gp.signingKey,
            now: Fixtures.now,
            ephemeralKeyMaterial: Fixtures.secret("ikm/consult-one-time")
        ).encoded
    }

    /// The consult every envelope vector starts from.
    var consultMessage: Message {
        try! Message(
            sender: gp.party,
            recipient: derm.party,
            id: Fixtures.messageID("consult-1"),
            createdAt: Fixtures.now,
            content: .consult(consult),
            attachments: [attachment("image-1", fileName: "forearm.jpg")]
        )
    }
}

extension Party {
    var json: JSON {
        .object([("identity_key", .hex(identityKey.rawRepresentation)), ("handle", .string(handle.rawValue))])
    }
}

/// Byte surgery on encodings, for invalid vectors.
extension Array where Element == UInt8 {
    func replacing(at offset: Int, with bytes: [UInt8]) -> [UInt8] {
        var copy = self
        copy.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
        return copy
    }

    func flipping(at offset: Int) -> [UInt8] {
        var copy = self
        copy[offset] ^= 0x01
        return copy
    }
}
