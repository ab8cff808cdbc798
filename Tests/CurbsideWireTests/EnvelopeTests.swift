import CurbsideTestSupport
import Testing

@testable import CurbsideWire

@Suite("envelopes")
struct EnvelopeTests {
    let gp = ProviderKeys("amara.gp")
    let derm = ProviderKeys("osei.derm")

    func consult(attachments: Int = 1) throws -> Message {
        var rng = SplitMix64(seed: 7)
        return try Message(
            sender: gp.party,
            recipient: derm.party,
            createdAt: ProviderKeys.now,
            content: .consult(
                try Consult(subject: "Rash", urgency: .emergency, specialty: "derm", question: "What is it?", clinicalSummary: "")
            ),
            attachments: try (0..<attachments).map { _ in try Generators.attachment(using: &rng) }
        )
    }

    func seal(_ message: Message, to bundle: PrekeyBundle? = nil) throws -> SealedEnvelope {
        try SealedEnvelope.seal(message, to: bundle ?? derm.bundle, signedBy: gp.key, now: ProviderKeys.now)
    }

    func expectOpenFails(_ bytes: [UInt8], as code: String, _ comment: Comment? = nil, by provider: ProviderKeys? = nil) {
        let recipient = provider ?? derm
        do {
            _ = try SealedEnvelope(decoding: bytes).open(as: recipient.party, using: recipient.ring)
            Issue.record("opened, expected \(code): \(comment.map { "\($0)" } ?? "")")
        } catch {
            #expect(errorIdentifier(error) == code, comment)
        }
    }

    @Test func sealsToTheOneTimePrekeyAndOpens() throws {
        let message = try consult()
        let sealed = try seal(message)
        #expect(sealed.header.prekey == .init(kind: .oneTime, id: 7))
        let opened = try SealedEnvelope(decoding: sealed.encoded).open(as: derm.party, using: derm.ring)
        #expect(opened.message == message)
        #expect(opened.prekey.kind == .oneTime)
        #expect(gp.key.verifyingKey.isValidSignature(opened.signature, for: message.signedBytes))
    }

    @Test func fallsBackToTheSignedPrekey() throws {
        let noOneTime = ProviderKeys("osei.derm", oneTime: false)
        let message = try Message(sender: gp.party, recipient: noOneTime.party, content: .receipt(.read(.random())))
        let sealed = try SealedEnvelope.seal(message, to: noOneTime.bundle, signedBy: gp.key, now: ProviderKeys.now)
        #expect(sealed.header.prekey == .init(kind: .signed, id: 1))
        #expect(try sealed.open(as: noOneTime.party, using: noOneTime.ring).message == message)
    }

    @Test func randomMessagesRoundTrip() throws {
        var rng = SplitMix64.fromEnvironment()
        for _ in 0..<50 {
            let message = try Generators.message(using: &rng, sender: gp.party, recipient: derm.party)
            let bytes = try seal(message).encoded
            let opened = try SealedEnvelope(decoding: bytes).open(as: derm.party, using: derm.ring)
            #expect(opened.message == message, "seed \(rng.seed)")
        }
    }

    @Test func sealingIsRandomized() throws {
        let message = try consult()
        #expect(try seal(message).encoded != seal(message).encoded)
    }

    /// Every single-byte change, at every position and with three different masks, is rejected.
    @Test func everySingleByteChangeIsRejected() throws {
        let bytes = try seal(try consult()).encoded
        var tried = 0
        for position in 0..<bytes.count {
            for mask: UInt8 in [0x01, 0x80, 0xFF] {
                var changed = bytes
                changed[position] ^= mask
                do {
                    _ = try SealedEnvelope(decoding: changed).open(as: derm.party, using: derm.ring)
                    Issue.record("a change at byte \(position) (mask \(mask)) was accepted")
                } catch {
                    let code = errorIdentifier(error)
                    let allowed: Set<String> = [
                        "unsupported_version", "unsupported_suite", "unknown_enum", "unknown_prekey", "decryption_failed",
                        "truncated", "trailing_bytes", "length_out_of_bounds",
                    ]
                    #expect(allowed.contains(code), "byte \(position): \(error)")
                }
                tried += 1
            }
        }
        #expect(tried == bytes.count * 3)
    }

    @Test func everyTruncationIsRejected() throws {
        let bytes = try seal(try consult()).encoded
        for length in 0..<bytes.count {
            let error = #expect(throws: WireError.self) { try SealedEnvelope(decoding: Array(bytes[0..<length])) }
            #expect(error?.code == .truncated, "length \(length)")
        }
    }

    // MARK: - Negative tests, one per error

    @Test func unknownVersion() throws {
        var bytes = try seal(try consult()).encoded
        bytes[0] = 2
        expectOpenFails(bytes, as: "unsupported_version")
    }

    @Test func unknownSuite() throws {
        var bytes = try seal(try consult()).encoded
        bytes[2] = 9
        expectOpenFails(bytes, as: "unsupported_suite")
    }

    @Test func tamperedHeaderAndCiphertext() throws {
        let bytes = try seal(try consult()).encoded
        expectOpenFails(bytes.flipped(at: 20), as: "decryption_failed", "enc")
        expectOpenFails(bytes.flipped(at: 50), as: "decryption_failed", "ciphertext")
        expectOpenFails(bytes.flipped(at: bytes.count - 1), as: "decryption_failed", "tag")
    }

    @Test func usedOneTimePrekeyIsUnknown() throws {
        let sealed = try seal(try consult())
        var ring = derm.ring
        ring.oneTimePrekeys[7] = nil
        let error = #expect(throws: EnvelopeError.self) { try sealed.open(as: derm.party, using: ring) }
        #expect(error?.code == .unknownPrekey)
    }

    @Test func wrongKeysCannotDecrypt() throws {
        let sealed = try seal(try consult())
        let other = ProviderKeys("osei.derm")  // same handle and prekey ids, different keys
        let error = #expect(throws: EnvelopeError.self) { try sealed.open(as: derm.party, using: other.ring) }
        #expect(error?.code == .decryptionFailed)
    }

    @Test func forwardedMessageIsWrongRecipient() throws {
        // osei.derm re-seals a consult amara.gp signed for it to kofi.cardio.
        let cardio = ProviderKeys("kofi.cardio")
        let signed = try SignedMessage(signing: try consult(), with: gp.key)
        let forwarded = try SealedEnvelope.seal(
            plaintext: signed.encoded,
            to: cardio.bundle.oneTimePrekey!.publicKey,
            as: .init(kind: .oneTime, id: 7),
            ephemeralKeyMaterial: .random(count: 32)
        )
        expectOpenFails(forwarded.encoded, as: "wrong_recipient", by: cardio)
    }

    @Test func forgedSignatureIsRejected() throws {
        let message = try consult()
        let forged = SignedMessage(message: message, signature: ProviderKeys("mallory").key.signature(for: message.signedBytes))
        let sealed = try SealedEnvelope.seal(
            plaintext: forged.encoded,
            to: derm.bundle.oneTimePrekey!.publicKey,
            as: .init(kind: .oneTime, id: 7),
            ephemeralKeyMaterial: .random(count: 32)
        )
        expectOpenFails(sealed.encoded, as: "bad_signature")
    }

    @Test func malformedPlaintextIsRejected() throws {
        let sealed = try SealedEnvelope.seal(
            plaintext: [1, 2, 3],
            to: derm.bundle.signedPrekey.publicKey,
            as: .init(kind: .signed, id: 1),
            ephemeralKeyMaterial: .random(count: 32)
        )
        expectOpenFails(sealed.encoded, as: "malformed_content")
    }

    @Test func sealingChecksSenderRecipientAndBundle() throws {
        let message = try consult()
        let wrongSigner = #expect(throws: EnvelopeError.self) {
            try SealedEnvelope.seal(message, to: derm.bundle, signedBy: derm.key, now: ProviderKeys.now)
        }
        #expect(wrongSigner?.code == .senderKeyMismatch)
        let wrongBundle = #expect(throws: EnvelopeError.self) {
            try SealedEnvelope.seal(message, to: ProviderKeys("kofi.cardio").bundle, signedBy: gp.key, now: ProviderKeys.now)
        }
        #expect(wrongBundle?.code == .recipientMismatch)
        let expired = #expect(throws: BundleError.self) {
            try SealedEnvelope.seal(message, to: derm.bundle, signedBy: gp.key, now: ProviderKeys.now.adding(seconds: 3600))
        }
        #expect(expired?.code == .prekeyExpired)
    }

    @Test func smallOrderPrekeyCannotBeSealedTo() throws {
        // The owner signed a small-order key (a broken client): sealing must refuse rather than use a zero secret.
        let zero = try AgreementKey.Public(rawRepresentation: [UInt8](repeating: 0, count: 32))
        let bundle = PrekeyBundle(
            owner: derm.party,
            signedPrekey: SignedPrekey(id: 1, publicKey: zero, expiresAt: ProviderKeys.now.adding(seconds: 60), signedBy: derm.key),
            oneTimePrekey: nil
        )
        let error = #expect(throws: EnvelopeError.self) { try seal(try consult(), to: bundle) }
        #expect(error?.code == .invalidPrekey)
    }

    @Test func errorsNeverContainPlaintext() throws {
        let message = try Message(
            sender: gp.party,
            recipient: derm.party,
            content: .consult(try Consult(subject: "SECRET-SUBJECT", urgency: .routine, specialty: "x", question: "q", clinicalSummary: ""))
        )
        let cardio = ProviderKeys("kofi.cardio")
        let signed = try SignedMessage(signing: message, with: gp.key)
        let forwarded = try SealedEnvelope.seal(
            plaintext: signed.encoded,
            to: cardio.bundle.signedPrekey.publicKey,
            as: .init(kind: .signed, id: 1),
            ephemeralKeyMaterial: .random(count: 32)
        )
        let error = #expect(throws: EnvelopeError.self) { try forwarded.open(as: cardio.party, using: cardio.ring) }
        #expect(error?.code == .wrongRecipient)
        #expect(!"\(error!)".contains("SECRET"))
    }
}

@Suite("prekey bundles")
struct BundleTests {
    @Test func verifiesAndRejects() throws {
        let derm = ProviderKeys("osei.derm")
        try derm.bundle.verify(now: ProviderKeys.now, expecting: derm.party)
        let other = ProviderKeys("osei.derm")
        let mismatch = #expect(throws: BundleError.self) { try derm.bundle.verify(now: ProviderKeys.now, expecting: other.party) }
        #expect(mismatch?.code == .identityMismatch)
        let forged = PrekeyBundle(owner: derm.party, signedPrekey: other.bundle.signedPrekey, oneTimePrekey: nil)
        let bad = #expect(throws: BundleError.self) { try forged.verify(now: ProviderKeys.now) }
        #expect(bad?.code == .badSignature)
        let expired = #expect(throws: BundleError.self) { try derm.bundle.verify(now: ProviderKeys.now.adding(seconds: 3600)) }
        #expect(expired?.code == .prekeyExpired)
    }
}

@Suite("safety numbers")
struct SafetyNumberTests {
    @Test func sameForBothSidesAndWellFormed() {
        let a = ProviderKeys("amara.gp").party, b = ProviderKeys("osei.derm").party
        let number = SafetyNumber(a, b)
        #expect(number == SafetyNumber(b, a))
        #expect(number.digits.count == 60 && number.digits.allSatisfy(\.isNumber))
        #expect(number.groups.count == 12 && number.groups.allSatisfy { $0.count == 5 })
        #expect(number.displayLines.count == 3)
        #expect(number.description.split(separator: " ").count == 12)
    }

    @Test func changesWhenEitherKeyOrHandleChanges() throws {
        let a = ProviderKeys("amara.gp").party, b = ProviderKeys("osei.derm").party
        let newKey = Party(identityKey: SigningKey().verifyingKey, handle: b.handle)
        let newHandle = Party(identityKey: b.identityKey, handle: try Handle("osei.derm2"))
        #expect(SafetyNumber(a, b) != SafetyNumber(a, newKey))
        #expect(SafetyNumber(a, b) != SafetyNumber(a, newHandle))
        // Each half belongs to one party: a's half is in both numbers.
        let aHalf = SafetyNumber.partyDigits(a)
        #expect(SafetyNumber(a, b).digits.contains(aHalf) && SafetyNumber(a, newKey).digits.contains(aHalf))
    }
}
