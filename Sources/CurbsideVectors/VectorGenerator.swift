import CurbsideWire

/// Generates spec/vectors/*.json. Deterministic: the same source gives the same bytes, which a test checks.
package enum VectorGenerator {
    /// Every vector file, as (file name, JSON text).
    package static func files() -> [(name: String, contents: String)] {
        let fixtures = Fixtures()
        return [
            encodingVectors(fixtures),
            bundleVectors(fixtures),
            envelopeVectors(fixtures),
            safetyNumberVectors(fixtures),
            relayVectors(fixtures),
            ageVectors(),
        ].map { ($0.name, $0.json.rendered) }
    }

    // MARK: - encoding.json

    /// Raw consult bytes with no checks, so vectors can break one rule at a time.
    static func consultBytes(
        subject: [UInt8] = Array("Rash".utf8),
        urgency: UInt8 = 1,
        specialty: [UInt8] = Array("dermatology".utf8),
        question: [UInt8] = Array("Eczema or psoriasis?".utf8),
        summary: [UInt8] = []
    ) -> [UInt8] {
        var w = WireWriter()
        w.writeUInt16(UInt16(subject.count)); w.writeBytes(subject)
        w.writeUInt8(urgency)
        w.writeUInt8(UInt8(specialty.count)); w.writeBytes(specialty)
        w.writeUInt16(UInt16(question.count)); w.writeBytes(question)
        w.writeUInt16(UInt16(summary.count)); w.writeBytes(summary)
        return w.bytes
    }

    static func handleBytes(_ handle: [UInt8]) -> [UInt8] {
        [UInt8(handle.count)] + handle
    }

    static func encodingVectors(_ f: Fixtures) -> VectorFileBuilder {
        var file = VectorFileBuilder(
            name: "encoding.json",
            description: """
                Decoding of single structures (spec/encoding.md). `type` names the structure; `input` is its \
                encoding. valid: decodes, and re-encoding gives `input` exactly. Otherwise decoding fails with \
                the error `expect` names.
                """
        )
        func add(_ name: String, _ type: String, _ input: [UInt8], _ expect: String) {
            file.add(name, [("type", .string(type)), ("input", .hex(input))], expect: expect)
        }

        // Valid values of every structure.
        add("consult minimal", "consult", consultBytes(), "valid")
        add("consult full", "consult", f.consult.encoded, "valid")
        add(
            "consult with multi-byte text",
            "consult",
            consultBytes(subject: Array("Érythème, 2 cm → 4 cm".utf8), urgency: 3, summary: Array("T 38.5 °C\tHR 110".utf8)),
            "valid"
        )
        let reply = try! Reply(inReplyTo: Fixtures.messageID("consult-1"), text: "Excise within 2 weeks.")
        add("reply", "reply", reply.encoded, "valid")
        add("receipt delivered", "receipt", Receipt.delivered(Fixtures.messageID("consult-1")).encoded, "valid")
        add("receipt read", "receipt", Receipt.read(Fixtures.messageID("consult-1")).encoded, "valid")
        let failed = Receipt.failed(
            Fixtures.messageID("consult-1"),
            try! .init(reason: .attachmentCorrupt, detail: "attachment 0 hash mismatch")
        )
        add("receipt failed with reason", "receipt", failed.encoded, "valid")
        add("handle", "handle", Handle.encodedForVectors("osei.derm"), "valid")
        add("handle with every separator", "handle", Handle.encodedForVectors("a.b-c_d9"), "valid")
        add("attachment descriptor", "attachment", f.attachment("image-1", fileName: "forearm.jpg").encoded, "valid")
        add("prekey bundle with one-time prekey", "prekey_bundle", f.derm.bundle(oneTime: 100).encoded, "valid")
        add("prekey bundle without one-time prekey", "prekey_bundle", f.derm.bundle(oneTime: nil).encoded, "valid")
        add("message", "message", f.consultMessage.encoded, "valid")

        // Truncation and trailing bytes.
        let consult = consultBytes()
        add("consult truncated by one byte", "consult", Array(consult.dropLast()), "truncated")
        add("consult truncated inside a length prefix", "consult", Array(consult.prefix(1)), "truncated")
        add("consult with a trailing byte", "consult", consult + [0], "trailing_bytes")
        add("empty input", "consult", [], "truncated")

        // Lengths out of bounds.
        add("consult subject empty", "consult", consultBytes(subject: []), "length_out_of_bounds")
        add(
            "consult subject 257 bytes",
            "consult",
            consultBytes(subject: [UInt8](repeating: 0x61, count: 257)),
            "length_out_of_bounds"
        )
        add(
            "consult specialty 65 bytes",
            "consult",
            consultBytes(specialty: [UInt8](repeating: 0x61, count: 65)),
            "length_out_of_bounds"
        )
        add("handle 65 bytes", "handle", handleBytes([UInt8](repeating: 0x61, count: 65)), "length_out_of_bounds")

        // Enumerations.
        add("consult urgency 0", "consult", consultBytes(urgency: 0), "unknown_enum")
        add("consult urgency 4", "consult", consultBytes(urgency: 4), "unknown_enum")
        add("receipt kind 4", "receipt", [4] + Fixtures.messageID("consult-1").rawValue, "unknown_enum")
        add(
            "receipt failed with reason 0",
            "receipt",
            [3] + Fixtures.messageID("consult-1").rawValue + [0, 0, 0],
            "unknown_enum"
        )
        add(
            "receipt delivered followed by failure fields",
            "receipt",
            Receipt.delivered(Fixtures.messageID("consult-1")).encoded + [1, 0, 0],
            "trailing_bytes"
        )

        // Text.
        add("consult subject not utf-8", "consult", consultBytes(subject: [0xC3, 0x28]), "invalid_text")
        add("consult subject overlong utf-8", "consult", consultBytes(subject: [0xC0, 0x80]), "invalid_text")
        add("consult subject with NUL", "consult", consultBytes(subject: [0x61, 0x00]), "invalid_text")
        add("consult question with carriage return", "consult", consultBytes(question: Array("a\rb".utf8)), "invalid_text")

        // Handles.
        add("handle with capital letter", "handle", handleBytes(Array("Osei.derm".utf8)), "invalid_handle")
        add("handle with two separators", "handle", handleBytes(Array("osei..derm".utf8)), "invalid_handle")
        add("handle starting with separator", "handle", handleBytes(Array(".osei".utf8)), "invalid_handle")
        add("handle with space", "handle", handleBytes(Array("osei derm".utf8)), "invalid_handle")

        // Prekey bundles: versions, presence flags, keys.
        let bundle = f.derm.bundle(oneTime: 100).encoded
        add("prekey bundle version 2", "prekey_bundle", bundle.replacing(at: 0, with: [2]), "unsupported_version")
        add("prekey bundle version 0", "prekey_bundle", bundle.replacing(at: 0, with: [0]), "unsupported_version")
        let noOneTime = f.derm.bundle(oneTime: nil).encoded
        add(
            "prekey bundle presence flag 2",
            "prekey_bundle",
            noOneTime.replacing(at: noOneTime.count - 1, with: [2]),
            "unknown_enum"
        )
        let identityPoint: [UInt8] = [1] + [UInt8](repeating: 0, count: 31)
        add(
            "prekey bundle identity key of small order",
            "prekey_bundle",
            bundle.replacing(at: 1, with: identityPoint),
            "invalid_public_key"
        )

        // Attachments and messages.
        var zeroSize = f.attachment("image-1", fileName: "forearm.jpg").encoded
        zeroSize = zeroSize.replacing(at: 0, with: [UInt8](repeating: 0, count: 8))
        add("attachment of size 0", "attachment", zeroSize, "invalid_value")
        add(
            "attachment larger than 2^40",
            "attachment",
            zeroSize.replacing(at: 0, with: [0, 0, 1, 0, 0, 0, 0, 1]),
            "invalid_value"
        )
        let message = f.consultMessage.encoded
        let contentTypeOffset = Self.contentTypeOffset(f.consultMessage)
        add(
            "message content type 4",
            "message",
            message.replacing(at: contentTypeOffset, with: [4]),
            "unknown_enum"
        )
        add(
            "message content type says reply, body is a consult",
            "message",
            message.replacing(at: contentTypeOffset, with: [2]),
            "truncated"
        )
        let receiptMessage = try! Message(
            sender: f.derm.party,
            recipient: f.gp.party,
            id: Fixtures.messageID("receipt-2"),
            threadID: f.consultMessage.id,
            createdAt: Fixtures.now,
            content: .receipt(.read(f.consultMessage.id))
        )
        var padded = receiptMessage.encoded
        let bodyLengthOffset = Self.contentTypeOffset(receiptMessage) + 1
        let bodyEnd = Self.attachmentCountOffset(receiptMessage)
        padded.insert(0, at: bodyEnd)
        padded[bodyLengthOffset + 3] += 1
        add("message body longer than its content", "message", padded, "trailing_bytes")
        add(
            "message attachment count 17",
            "message",
            message.replacing(at: Self.attachmentCountOffset(f.consultMessage), with: [17]),
            "length_out_of_bounds"
        )
        var receiptWithAttachment = receiptMessage.encoded
        receiptWithAttachment[receiptWithAttachment.count - 1] = 1
        receiptWithAttachment += f.attachment("image-1", fileName: "forearm.jpg").encoded
        add("receipt carrying an attachment", "message", receiptWithAttachment, "invalid_value")
        let envelope = f.consultEnvelope
        add("envelope", "envelope", envelope, "valid")
        add("envelope with empty ciphertext", "envelope", Array(envelope.prefix(40)) + [0, 0, 0, 0], "length_out_of_bounds")
        add("message truncated inside the body", "message", Array(message.prefix(contentTypeOffset + 20)), "truncated")
        // Times (encoding.md §Times): created_at sits just before content_type.
        let createdAtOffset = contentTypeOffset - 8
        add("message created at the latest time", "message", message.replacing(at: createdAtOffset, with: [0, 0, 0xe6, 0x77, 0xd2, 0x1f, 0xdb, 0xff]), "valid")
        add(
            "message created a millisecond after the latest time",
            "message",
            message.replacing(at: createdAtOffset, with: [0, 0, 0xe6, 0x77, 0xd2, 0x1f, 0xdc, 0x00]),
            "invalid_value"
        )
        add("message created at 2^64 - 1", "message", message.replacing(at: createdAtOffset, with: [UInt8](repeating: 0xff, count: 8)), "invalid_value")
        return file
    }

    /// Where content_type sits in an encoded message: after two parties, two ids and the time.
    static func contentTypeOffset(_ message: Message) -> Int {
        message.sender.encoded.count + message.recipient.encoded.count + 16 + 16 + 8
    }

    /// Where the attachment count sits: after content_type, the 4-byte body length and the body.
    static func attachmentCountOffset(_ message: Message) -> Int {
        let start = contentTypeOffset(message)
        let encoded = message.encoded
        let bodyLength = encoded[(start + 1)..<(start + 5)].reduce(0) { $0 << 8 | Int($1) }
        return start + 5 + bodyLength
    }

    // MARK: - bundles.json

    static func bundleVectors(_ f: Fixtures) -> VectorFileBuilder {
        var file = VectorFileBuilder(
            name: "bundles.json",
            description: """
                Prekey bundle verification (spec/keys.md). Decode `bundle`, then verify it at time `now` \
                (milliseconds since 1970), against `expected_owner` when present. valid: verification passes; \
                otherwise it fails with the error `expect` names.
                """
        )
        let now = Fixtures.now
        func add(_ name: String, _ bundle: PrekeyBundle, now: Timestamp = now, expected: Party? = nil, _ expect: String) {
            var fields: [(String, JSON)] = [("bundle", .hex(bundle.encoded)), ("now", .number(now.millisecondsSince1970))]
            if let expected { fields.append(("expected_owner", expected.json)) }
            file.add(name, fields, expect: expect)
        }
        let derm = f.derm
        add("with one-time prekey", derm.bundle(oneTime: 100), "valid")
        add("without one-time prekey", derm.bundle(oneTime: nil), "valid")
        add("matches expected owner", derm.bundle(oneTime: 101), expected: derm.party, "valid")
        let expiry = derm.signedPrekeyRecord().expiresAt
        add(
            "one millisecond before expiry",
            derm.bundle(oneTime: nil),
            now: Timestamp(millisecondsSince1970: expiry.millisecondsSince1970 - 1),
            "valid"
        )
        add("at expiry", derm.bundle(oneTime: nil), now: expiry, "prekey_expired")
        add(
            "signed prekey signed by another identity",
            PrekeyBundle(owner: derm.party, signedPrekey: derm.signedPrekeyRecord(signer: f.cardio.signingKey), oneTimePrekey: nil),
            "bad_prekey_signature"
        )
        add(
            "one-time prekey signed by another identity",
            PrekeyBundle(
                owner: derm.party,
                signedPrekey: derm.signedPrekeyRecord(),
                oneTimePrekey: derm.oneTimePrekeyRecord(100, signer: f.cardio.signingKey)
            ),
            "bad_prekey_signature"
        )
        // The relay swaps in a key of its own but keeps the owner's signature.
        let relayKey = Fixtures.agreementKey("relay/substitute")
        let genuine = derm.signedPrekeyRecord()
        var swapped = genuine.encoded.replacing(at: 4, with: relayKey.publicKey.rawRepresentation)
        add(
            "signed prekey substituted",
            PrekeyBundle(owner: derm.party, signedPrekey: try! SignedPrekey(decoding: swapped), oneTimePrekey: nil),
            "bad_prekey_signature"
        )
        let genuineOneTime = derm.oneTimePrekeyRecord(100)
        swapped = genuineOneTime.encoded.replacing(at: 4, with: relayKey.publicKey.rawRepresentation)
        add(
            "one-time prekey substituted",
            PrekeyBundle(owner: derm.party, signedPrekey: genuine, oneTimePrekey: try! OneTimePrekey(decoding: swapped)),
            "bad_prekey_signature"
        )
        let extended = genuine.encoded.replacing(at: 36, with: (expiry.millisecondsSince1970 + 86_400_000).bigEndianBytesForVectors)
        add(
            "signed prekey expiry extended",
            PrekeyBundle(owner: derm.party, signedPrekey: try! SignedPrekey(decoding: extended), oneTimePrekey: nil),
            "bad_prekey_signature"
        )
        add(
            "signed prekey id changed",
            PrekeyBundle(
                owner: derm.party,
                signedPrekey: try! SignedPrekey(decoding: genuine.encoded.replacing(at: 0, with: [0, 0, 0, 2])),
                oneTimePrekey: nil
            ),
            "bad_prekey_signature"
        )
        add("owner is not the expected identity", derm.bundle(oneTime: 100), expected: f.cardio.party, "identity_mismatch")
        add(
            "owner key right, handle different",
            derm.bundle(oneTime: 100),
            expected: Party(identityKey: derm.party.identityKey, handle: try! Handle("osei.dermatology")),
            "identity_mismatch"
        )
        add(
            "bundle of another identity under the expected handle",
            PrekeyBundle(
                owner: Party(identityKey: f.cardio.party.identityKey, handle: derm.party.handle),
                signedPrekey: f.cardio.signedPrekeyRecord(),
                oneTimePrekey: nil
            ),
            expected: derm.party,
            "identity_mismatch"
        )
        return file
    }

    // MARK: - envelopes.json

    static func envelopeVectors(_ f: Fixtures) -> VectorFileBuilder {
        var file = VectorFileBuilder(
            name: "envelopes.json",
            description: """
                Sealing and opening envelopes (spec/envelope.md). Open `envelope` as `recipient` holding the private \
                prekeys in `prekeys`. valid: it opens, and the encoded message equals `message`. Otherwise decoding \
                or opening fails with the error `expect` names. When `seal` is present, sealing `message` with the \
                sender's identity seed to `seal.bundle` at `seal.now`, with HPKE ephemeral key material \
                `seal.ephemeral_ikm`, gives `envelope` exactly.
                """
        )
        func prekeysJSON(_ ring: PrekeyRing) -> JSON {
            func list(_ keys: [UInt32: AgreementKey.Private]) -> JSON {
                .array(keys.keys.sorted().map { id in
                    .object([("id", .number(UInt64(id))), ("private_key", .hex(keys[id]!.rawRepresentation.copiedBytes))])
                })
            }
            return .object([("signed", list(ring.signedPrekeys)), ("one_time", list(ring.oneTimePrekeys))])
        }
        func add(
            _ name: String,
            recipient: Fixtures.Provider,
            ring: PrekeyRing? = nil,
            envelope: [UInt8],
            message: Message? = nil,
            seal: (sender: Fixtures.Provider, bundle: PrekeyBundle, ikm: SecretBytes)? = nil,
            _ expect: String
        ) {
            var fields: [(String, JSON)] = [
                ("recipient", recipient.party.json),
                ("prekeys", prekeysJSON(ring ?? recipient.ring)),
                ("envelope", .hex(envelope)),
            ]
            if let message { fields.append(("message", .hex(message.encoded))) }
            if let seal {
                fields.append((
                    "seal",
                    .object([
                        ("sender_identity_seed", .hex(seal.sender.signingKey.seed.copiedBytes)),
                        ("bundle", .hex(seal.bundle.encoded)),
                        ("now", .number(Fixtures.now.millisecondsSince1970)),
                        ("ephemeral_ikm", .hex(seal.ikm.copiedBytes)),
                    ])
                ))
            }
            file.add(name, fields, expect: expect)
        }
        func sealed(_ message: Message, from sender: Fixtures.Provider, to bundle: PrekeyBundle, ikm: SecretBytes)
            -> [UInt8]
        {
            try! SealedEnvelope.seal(
                message,
                to: bundle,
                signedBy: sender.signingKey,
                now: Fixtures.now,
                ephemeralKeyMaterial: ikm
            ).encoded
        }

        // Valid envelopes, each reproducible from its `seal` inputs.
        let consult = f.consultMessage
        var ikm = Fixtures.secret("ikm/consult-one-time")
        var bundle = f.derm.bundle(oneTime: 100)
        let consultEnvelope = sealed(consult, from: f.gp, to: bundle, ikm: ikm)
        add("consult to a one-time prekey", recipient: f.derm, envelope: consultEnvelope, message: consult, seal: (f.gp, bundle, ikm), "valid")

        ikm = Fixtures.secret("ikm/consult-signed")
        bundle = f.derm.bundle(oneTime: nil)
        let toSigned = sealed(consult, from: f.gp, to: bundle, ikm: ikm)
        add("consult to the signed prekey", recipient: f.derm, envelope: toSigned, message: consult, seal: (f.gp, bundle, ikm), "valid")

        let twoImages = try! Message(
            sender: f.gp.party,
            recipient: f.derm.party,
            id: Fixtures.messageID("consult-2"),
            createdAt: Fixtures.now,
            content: .consult(
                try! Consult(
                    subject: "Retinal image, diabetic, 2 views",
                    urgency: .routine,
                    specialty: "ophthalmology",
                    question: "Refer for laser?",
                    clinicalSummary: ""
                )
            ),
            attachments: [
                f.attachment("image-2", fileName: "left-eye.jpg"), f.attachment("image-3", fileName: "right-eye.jpg"),
            ]
        )
        ikm = Fixtures.secret("ikm/consult-two-attachments")
        bundle = f.derm.bundle(oneTime: 101)
        add(
            "consult with two attachments",
            recipient: f.derm,
            envelope: sealed(twoImages, from: f.gp, to: bundle, ikm: ikm),
            message: twoImages,
            seal: (f.gp, bundle, ikm),
            "valid"
        )

        let reply = try! Message(
            sender: f.derm.party,
            recipient: f.gp.party,
            id: Fixtures.messageID("reply-1"),
            threadID: consult.id,
            createdAt: Timestamp(millisecondsSince1970: Fixtures.now.millisecondsSince1970 + 1_800_000),
            content: .reply(try! Reply(inReplyTo: consult.id, text: "Dysplastic naevus likely; excise within 2 weeks."))
        )
        ikm = Fixtures.secret("ikm/reply")
        bundle = f.gp.bundle(oneTime: 100)
        add("reply", recipient: f.gp, envelope: sealed(reply, from: f.derm, to: bundle, ikm: ikm), message: reply, seal: (f.derm, bundle, ikm), "valid")

        let receipt = try! Message(
            sender: f.derm.party,
            recipient: f.gp.party,
            id: Fixtures.messageID("receipt-1"),
            threadID: consult.id,
            createdAt: Fixtures.now,
            content: .receipt(.failed(consult.id, try! .init(reason: .attachmentUnavailable, detail: "attachment 0 expired")))
        )
        ikm = Fixtures.secret("ikm/receipt")
        bundle = f.gp.bundle(oneTime: nil)
        add(
            "failure receipt",
            recipient: f.gp,
            envelope: sealed(receipt, from: f.derm, to: bundle, ikm: ikm),
            message: receipt,
            seal: (f.derm, bundle, ikm),
            "valid"
        )

        // Tampering: header offsets are version 0, suite 1-2, prekey_kind 3, prekey_id 4-7, enc 8-39,
        // ciphertext length 40-43, ciphertext from 44.
        add("version changed to 2", recipient: f.derm, envelope: consultEnvelope.replacing(at: 0, with: [2]), "unsupported_version")
        add("suite changed", recipient: f.derm, envelope: consultEnvelope.replacing(at: 1, with: [0, 2]), "unsupported_suite")
        add("prekey kind 3", recipient: f.derm, envelope: consultEnvelope.replacing(at: 3, with: [3]), "unknown_enum")
        add(
            "prekey id changed to one not held",
            recipient: f.derm,
            envelope: consultEnvelope.replacing(at: 4, with: [0, 0, 0, 99]),
            "unknown_prekey"
        )
        add(
            "prekey id changed to another held one-time prekey",
            recipient: f.derm,
            envelope: consultEnvelope.replacing(at: 4, with: [0, 0, 0, 101]),
            "decryption_failed"
        )
        add(
            "prekey kind changed to signed prekey 1",
            recipient: f.derm,
            envelope: consultEnvelope.replacing(at: 3, with: [1, 0, 0, 0, 1]),
            "decryption_failed"
        )
        add("enc byte flipped", recipient: f.derm, envelope: consultEnvelope.flipping(at: 8), "decryption_failed")
        add("first ciphertext byte flipped", recipient: f.derm, envelope: consultEnvelope.flipping(at: 44), "decryption_failed")
        add(
            "tag byte flipped",
            recipient: f.derm,
            envelope: consultEnvelope.flipping(at: consultEnvelope.count - 1),
            "decryption_failed"
        )
        add("truncated", recipient: f.derm, envelope: Array(consultEnvelope.dropLast()), "truncated")
        add("trailing byte", recipient: f.derm, envelope: consultEnvelope + [0], "trailing_bytes")
        add(
            "ciphertext shorter than a tag",
            recipient: f.derm,
            envelope: Array(consultEnvelope.prefix(40)) + [0, 0, 0, 16] + [UInt8](repeating: 0, count: 16),
            "length_out_of_bounds"
        )
        var ring = f.derm.ring
        ring.oneTimePrekeys[100] = nil
        add("one-time prekey already used", recipient: f.derm, ring: ring, envelope: consultEnvelope, "unknown_prekey")
        add("opened by another provider", recipient: f.cardio, envelope: toSigned, "decryption_failed")

        // Forgeries a correct sender never makes, sealed with the bare HPKE step.
        func sealRaw(_ plaintext: [UInt8], to provider: Fixtures.Provider, label: String) -> [UInt8] {
            try! SealedEnvelope.seal(
                plaintext: plaintext,
                to: provider.signedPrekey.publicKey,
                as: .init(kind: .signed, id: 1),
                ephemeralKeyMaterial: Fixtures.secret("ikm/\(label)")
            ).encoded
        }
        let signed = try! SignedMessage(signing: consult, with: f.gp.signingKey)
        // osei.derm re-seals amara.gp's consult, signed for osei.derm, to kofi.cardio.
        add(
            "forwarded to another recipient",
            recipient: f.cardio,
            envelope: sealRaw(signed.encoded, to: f.cardio, label: "forwarded"),
            "wrong_recipient"
        )
        add(
            "signature byte flipped",
            recipient: f.derm,
            envelope: sealRaw(SignedMessage(message: consult, signature: signed.signature.flipping(at: 0)).encoded, to: f.derm, label: "bad-signature"),
            "bad_signature"
        )
        let impostor = SignedMessage(message: consult, signature: f.cardio.signingKey.signature(for: consult.signedBytes))
        add(
            "signed by someone other than the named sender",
            recipient: f.derm,
            envelope: sealRaw(impostor.encoded, to: f.derm, label: "impostor"),
            "bad_signature"
        )
        add(
            "plaintext is not a signed message",
            recipient: f.derm,
            envelope: sealRaw(Array("not a message".utf8), to: f.derm, label: "garbage"),
            "malformed_content"
        )
        add(
            "plaintext with a trailing byte",
            recipient: f.derm,
            envelope: sealRaw(signed.encoded + [0], to: f.derm, label: "trailing"),
            "malformed_content"
        )
        // A sender's signed time past encoding.md §Times' bound: refused on decoding, whatever the signature says.
        var lateBytes = consult.encoded
        let createdAt = Self.contentTypeOffset(consult) - 8
        lateBytes.replaceSubrange(createdAt..<(createdAt + 8), with: [UInt8](repeating: 0xff, count: 8))
        add(
            "signed message created at 2^64 - 1",
            recipient: f.derm,
            envelope: sealRaw(lateBytes + f.gp.signingKey.signature(for: Array("curbside/v1/message\0".utf8) + lateBytes), to: f.derm, label: "late"),
            "malformed_content"
        )
        return file
    }

    // MARK: - safety-numbers.json

    static func safetyNumberVectors(_ f: Fixtures) -> VectorFileBuilder {
        var file = VectorFileBuilder(
            name: "safety-numbers.json",
            description: """
                Safety numbers (spec/safety-number.md). valid: the safety number of parties `a` and `b` is \
                `safety_number` (60 digits), whichever order they are given in. Otherwise reading a party fails \
                with the error `expect` names.
                """
        )
        func add(_ name: String, _ a: JSON, _ b: JSON, number: SafetyNumber?, _ expect: String) {
            var fields: [(String, JSON)] = [("a", a), ("b", b)]
            if let number { fields.append(("safety_number", .string(number.digits))) }
            file.add(name, fields, expect: expect)
        }
        let gp = f.gp.party, derm = f.derm.party, cardio = f.cardio.party
        add("two providers", gp.json, derm.json, number: SafetyNumber(gp, derm), "valid")
        add("two providers, other order", derm.json, gp.json, number: SafetyNumber(derm, gp), "valid")
        add("another pair", gp.json, cardio.json, number: SafetyNumber(gp, cardio), "valid")
        let renamed = Party(identityKey: derm.identityKey, handle: try! Handle("osei.dermatology"))
        add("same key under another handle", gp.json, renamed.json, number: SafetyNumber(gp, renamed), "valid")
        let badHandle = JSON.object([("identity_key", .hex(derm.identityKey.rawRepresentation)), ("handle", .string("Osei.Derm"))])
        add("handle with capitals", gp.json, badHandle, number: nil, "invalid_handle")
        let badKey = JSON.object([("identity_key", .hex([1] + [UInt8](repeating: 0, count: 31))), ("handle", .string("osei.derm"))])
        add("identity key of small order", gp.json, badKey, number: nil, "invalid_public_key")
        return file
    }
}

extension Handle {
    static func encodedForVectors(_ text: String) -> [UInt8] {
        try! Handle(text).encoded
    }
}

extension UInt64 {
    var bigEndianBytesForVectors: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: self >> (8 * (7 - UInt64($0)))) }
    }
}
