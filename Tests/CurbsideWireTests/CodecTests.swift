import CurbsideTestSupport
import Testing

@testable import CurbsideWire

@Suite("canonical encoding")
struct CodecTests {
    @Test func integersAreBigEndian() throws {
        var writer = WireWriter()
        writer.writeUInt8(0x01)
        writer.writeUInt16(0x0203)
        writer.writeUInt32(0x0405_0607)
        writer.writeUInt64(0x0809_0A0B_0C0D_0E0F)
        #expect(writer.bytes == Array(1...15))
        var reader = WireReader(writer.bytes)
        #expect(try reader.readUInt8("a") == 1)
        #expect(try reader.readUInt16("b") == 0x0203)
        #expect(try reader.readUInt32("c") == 0x0405_0607)
        #expect(try reader.readUInt64("d") == 0x0809_0A0B_0C0D_0E0F)
        try reader.finish("x")
    }

    @Test(arguments: [(0...255, 1), (1...256, 2), (0...65_535, 2), (0...65_536, 4), (1...(1 << 20), 4)])
    func prefixWidthFollowsTheDeclaredMaximum(_ bounds: ClosedRange<Int>, _ width: Int) {
        #expect(WireWriter.prefixWidth(for: bounds) == width)
    }

    @Test func errorsNameFieldAndOffset() throws {
        var reader = WireReader([0, 5, 1, 2])
        let truncated = #expect(throws: WireError.self) { try reader.readOpaque("consult.subject", bounds: 1...256) }
        #expect(truncated == WireError(.truncated, field: "consult.subject", offset: 0, detail: "length 5 but 2 bytes left"))
        #expect("\(truncated!)" == "consult.subject: length 5 but 2 bytes left at byte 0")

        // A length of 5 where the declared bound is 1...4 is refused at the prefix's offset.
        var five = WireReader([9, 9, 5, 1, 2, 3, 4, 5])
        _ = try five.readUInt16("pad")
        let outOfBounds = #expect(throws: WireError.self) { try five.readOpaque("f", bounds: 1...4) }
        #expect(outOfBounds == WireError(.lengthOutOfBounds, field: "f", offset: 2, detail: "length 5 exceeds 4"))

        var flag = WireReader([7])
        let badFlag = #expect(throws: WireError.self) { try flag.readOptional("opt") { (r) throws(WireError) in try r.readUInt8("v") } }
        #expect(badFlag?.code == .unknownEnumValue && badFlag?.offset == 0)

        let trailing = #expect(throws: WireError.self) { try Handle(decoding: [1, 0x61, 0x62]) }
        #expect(trailing == WireError(.trailingBytes, field: "handle", offset: 2, detail: "1 trailing bytes"))
    }

    @Test func nestedErrorsReportAbsoluteOffsets() throws {
        let id = MessageID.random()
        var body = Receipt.read(id).encoded
        body[0] = 9  // unknown kind, inside the nested body
        var writer = WireWriter()
        writer.writeBytes([0xAA, 0xBB])
        writer.writeOpaque(body, bounds: 1...(1 << 20))
        var reader = WireReader(writer.bytes)
        _ = try reader.readUInt16("pad")
        let error = #expect(throws: WireError.self) {
            try reader.readNested("m.body", bounds: 1...(1 << 20)) { (r) throws(WireError) in try Receipt(from: &r, field: "m.body.receipt") }
        }
        #expect(error == WireError(.unknownEnumValue, field: "m.body.receipt.kind", offset: 6, detail: "unknown value 9"))
    }

    @Test func versionsOutsideTheSupportedSetAreRefused() {
        var reader = WireReader([2])
        let error = #expect(throws: WireError.self) { try reader.readVersion("bundle.version", supported: [1]) }
        #expect(error == WireError(.unsupportedVersion, field: "bundle.version", offset: 0, detail: "unsupported version 2"))
    }

    @Test(arguments: ["a", "osei.derm", "a-b_c.d", "0", String(repeating: "z", count: 64)])
    func validHandles(_ text: String) throws {
        #expect(try Handle(text).rawValue == text)
    }

    @Test(arguments: ["A", "osei derm", "-a", "a-", "a..b", "a._b", "é", "a/b"])
    func invalidHandles(_ text: String) {
        let error = #expect(throws: WireError.self) { try Handle(text) }
        #expect(error?.code == .invalidHandle)
    }

    @Test(arguments: ["", String(repeating: "z", count: 65)])
    func handlesOfTheWrongLength(_ text: String) {
        let error = #expect(throws: WireError.self) { try Handle(text) }
        #expect(error?.code == .lengthOutOfBounds)
    }

    @Test func receiptsCarryNoAttachments() throws {
        var rng = SplitMix64(seed: 1)
        let error = #expect(throws: WireError.self) {
            try Message(
                sender: Generators.party(using: &rng),
                recipient: Generators.party(using: &rng),
                content: .receipt(.read(.random())),
                attachments: [try Generators.attachment(using: &rng)]
            )
        }
        #expect(error?.code == .invalidValue && error?.field == "message.attachments")
    }

    @Test func textRulesApplyWhenBuildingValues() {
        let control = #expect(throws: WireError.self) {
            try Consult(subject: "a\u{7}b", urgency: .routine, specialty: "x", question: "q", clinicalSummary: "")
        }
        #expect(control?.code == .invalidText && control?.field == "consult.subject")
        let empty = #expect(throws: WireError.self) {
            try Consult(subject: "s", urgency: .routine, specialty: "", question: "q", clinicalSummary: "")
        }
        #expect(empty?.code == .lengthOutOfBounds && empty?.field == "consult.specialty")
        let long = #expect(throws: WireError.self) {
            try Reply(inReplyTo: .random(), text: String(repeating: "x", count: 65_536))
        }
        #expect(long?.code == .lengthOutOfBounds)
        #expect(throws: Never.self) {
            try Consult(subject: "tab\tand\nnewline", urgency: .routine, specialty: "x", question: "q", clinicalSummary: "")
        }
    }

    // MARK: - Properties

    /// decode(encode(x)) == x and the encoding is canonical, for random values of every structure.
    @Test func randomValuesRoundTrip() throws {
        var rng = SplitMix64.fromEnvironment()
        for iteration in 0..<300 {
            let message = try Generators.message(using: &rng)
            let bytes = message.encoded
            let decoded = try Message(decoding: bytes)
            #expect(decoded == message, "seed \(rng.seed), iteration \(iteration)")
            #expect(decoded.encoded == bytes, "seed \(rng.seed), iteration \(iteration)")
            let bundle = Generators.bundle(using: &rng)
            #expect(try PrekeyBundle(decoding: bundle.encoded) == bundle, "seed \(rng.seed)")
        }
    }

    /// Any bytes that decode re-encode to exactly the same bytes: mutate valid encodings at random and check.
    @Test func whateverDecodesIsCanonical() throws {
        var rng = SplitMix64.fromEnvironment()
        var decodedCount = 0, rejectedCount = 0
        for _ in 0..<3_000 {
            var bytes = try Generators.message(using: &rng).encoded
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                bytes[i] = UInt8.random(in: 0...255, using: &rng)
            }
            if let decoded = try? Message(decoding: bytes) {
                #expect(decoded.encoded == bytes, "seed \(rng.seed)")
                decodedCount += 1
            } else {
                rejectedCount += 1
            }
        }
        #expect(decodedCount > 0 && rejectedCount > 0, "seed \(rng.seed): both outcomes should occur")
    }

    /// Truncating any encoding anywhere is `truncated`; one extra byte is `trailingBytes`.
    @Test func everyTruncationIsRejected() throws {
        var rng = SplitMix64.fromEnvironment()
        let bytes = try Generators.message(using: &rng).encoded
        for length in 0..<bytes.count {
            let error = #expect(throws: WireError.self) { try Message(decoding: Array(bytes[0..<length])) }
            #expect(error?.code == .truncated, "seed \(rng.seed), length \(length)")
        }
        let error = #expect(throws: WireError.self) { try Message(decoding: bytes + [0]) }
        #expect(error == WireError(.trailingBytes, field: "message", offset: bytes.count, detail: "1 trailing bytes"))
    }
}

/// Random values of the wire structures, from a seeded generator.
enum Generators {
    static func handle(using rng: inout SplitMix64) -> Handle {
        let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        let length = Int.random(in: 1...20, using: &rng)
        var text = String((0..<length).map { _ in letters.randomElement(using: &rng)! })
        if length > 2, Bool.random(using: &rng) {
            let i = text.index(text.startIndex, offsetBy: length / 2)
            text.replaceSubrange(i...i, with: [".", "-", "_"].randomElement(using: &rng)!)
        }
        return try! Handle(text)
    }

    static func signingKey(using rng: inout SplitMix64) -> SigningKey {
        try! SigningKey(seed: SecretBytes(rng.bytes(32)))
    }

    static func party(using rng: inout SplitMix64) -> Party {
        Party(identityKey: signingKey(using: &rng).verifyingKey, handle: handle(using: &rng))
    }

    static func messageID(using rng: inout SplitMix64) -> MessageID {
        try! MessageID(rawValue: rng.bytes(16))
    }

    static func content(using rng: inout SplitMix64) throws -> Content {
        switch Int.random(in: 0..<3, using: &rng) {
        case 0:
            return .consult(
                try Consult(
                    subject: rng.text(count: Int.random(in: 1...60, using: &rng)),
                    urgency: Consult.Urgency.allCases.randomElement(using: &rng)!,
                    specialty: rng.text(count: Int.random(in: 1...20, using: &rng)),
                    question: rng.text(count: Int.random(in: 1...200, using: &rng)),
                    clinicalSummary: rng.text(count: Int.random(in: 0...400, using: &rng))
                )
            )
        case 1:
            return .reply(try Reply(inReplyTo: messageID(using: &rng), text: rng.text(count: Int.random(in: 1...300, using: &rng))))
        default:
            let id = messageID(using: &rng)
            switch Receipt.Kind.allCases.randomElement(using: &rng)! {
            case .delivered: return .receipt(.delivered(id))
            case .read: return .receipt(.read(id))
            case .failed:
                return .receipt(
                    .failed(
                        id,
                        try .init(
                            reason: Receipt.FailureReason.allCases.randomElement(using: &rng)!,
                            detail: rng.text(count: Int.random(in: 0...40, using: &rng))
                        )
                    )
                )
            }
        }
    }

    static func attachment(using rng: inout SplitMix64) throws -> AttachmentDescriptor {
        try AttachmentDescriptor(
            size: UInt64.random(in: 1...AttachmentDescriptor.maximumSize, using: &rng),
            sha256: rng.bytes(32),
            mediaType: ["image/jpeg", "image/png", "application/dicom"].randomElement(using: &rng)!,
            fileName: rng.text(count: Int.random(in: 0...30, using: &rng)),
            ageIdentity: AgreementKey.Private(rawRepresentation: SecretBytes(rng.bytes(32)))
        )
    }

    static func message(using rng: inout SplitMix64, sender: Party? = nil, recipient: Party? = nil) throws -> Message {
        let content = try content(using: &rng)
        let attachmentCount = if case .receipt = content { 0 } else { Int.random(in: 0...3, using: &rng) }
        return try Message(
            sender: sender ?? party(using: &rng),
            recipient: recipient ?? party(using: &rng),
            id: messageID(using: &rng),
            threadID: messageID(using: &rng),
            createdAt: Timestamp(millisecondsSince1970: UInt64.random(in: 0...UInt64.max, using: &rng)),
            content: content,
            attachments: try (0..<attachmentCount).map { _ in try attachment(using: &rng) }
        )
    }

    static func bundle(using rng: inout SplitMix64) -> PrekeyBundle {
        let owner = signingKey(using: &rng)
        let prekey = try! AgreementKey.Private(rawRepresentation: SecretBytes(rng.bytes(32)))
        return PrekeyBundle(
            owner: Party(identityKey: owner.verifyingKey, handle: handle(using: &rng)),
            signedPrekey: SignedPrekey(
                id: UInt32.random(in: 0...UInt32.max, using: &rng),
                publicKey: prekey.publicKey,
                expiresAt: Timestamp(millisecondsSince1970: UInt64.random(in: 0...UInt64.max, using: &rng)),
                signedBy: owner
            ),
            oneTimePrekey: Bool.random(using: &rng)
                ? OneTimePrekey(id: UInt32.random(in: 0...UInt32.max, using: &rng), publicKey: prekey.publicKey, signedBy: owner)
                : nil
        )
    }
}
