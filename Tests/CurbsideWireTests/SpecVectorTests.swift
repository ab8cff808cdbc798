import CurbsideTestSupport
import CurbsideVectors
import Foundation
import Testing

@testable import CurbsideWire

/// A party as the vector files write it.
struct PartyJSON: Decodable, Sendable {
    let identity_key: Hex
    let handle: String

    func party() throws -> Party {
        // Decode through the wire form so bad keys and handles produce the decoder's codes.
        var writer = WireWriter()
        writer.writeBytes(identity_key.bytes)
        writer.writeBytes([UInt8(truncatingIfNeeded: handle.utf8.count)] + Array(handle.utf8))
        return try Party(decoding: writer.bytes)
    }
}

struct EncodingVector: Decodable, Sendable, CustomTestStringConvertible {
    let name: String
    let type: String
    let input: Hex
    let expect: VectorExpectation
    var testDescription: String { name }

    /// Decodes `input` as `type` and returns its re-encoding.
    func decodeAndReencode() throws -> [UInt8] {
        let bytes = input.bytes
        switch type {
        case "consult": return try Consult(decoding: bytes).encoded
        case "reply": return try Reply(decoding: bytes).encoded
        case "receipt": return try Receipt(decoding: bytes).encoded
        case "handle": return try Handle(decoding: bytes).encoded
        case "attachment": return try AttachmentDescriptor(decoding: bytes).encoded
        case "prekey_bundle": return try PrekeyBundle(decoding: bytes).encoded
        case "message": return try Message(decoding: bytes).encoded
        case "envelope": return try SealedEnvelope(decoding: bytes).encoded
        default:
            Issue.record("\(name): unknown type \(type)")
            return []
        }
    }
}

struct BundleVector: Decodable, Sendable, CustomTestStringConvertible {
    let name: String
    let bundle: Hex
    let now: UInt64
    let expected_owner: PartyJSON?
    let expect: VectorExpectation
    var testDescription: String { name }
}

struct EnvelopeVector: Decodable, Sendable, CustomTestStringConvertible {
    struct Prekey: Decodable, Sendable { let id: UInt32, private_key: Hex }
    struct Prekeys: Decodable, Sendable { let signed: [Prekey], one_time: [Prekey] }
    struct Seal: Decodable, Sendable {
        let sender_identity_seed: Hex
        let bundle: Hex
        let now: UInt64
        let ephemeral_ikm: Hex
    }

    let name: String
    let recipient: PartyJSON
    let prekeys: Prekeys
    let envelope: Hex
    let message: Hex?
    let seal: Seal?
    let expect: VectorExpectation
    var testDescription: String { name }

    func ring() throws -> PrekeyRing {
        func keys(_ list: [Prekey]) throws -> [UInt32: AgreementKey.Private] {
            try Dictionary(uniqueKeysWithValues: list.map {
                ($0.id, try AgreementKey.Private(rawRepresentation: SecretBytes($0.private_key.bytes)))
            })
        }
        return PrekeyRing(signedPrekeys: try keys(prekeys.signed), oneTimePrekeys: try keys(prekeys.one_time))
    }

    func open() throws -> OpenedEnvelope {
        try SealedEnvelope(decoding: envelope.bytes).open(as: recipient.party(), using: ring())
    }
}

struct RelayVector: Decodable, Sendable, CustomTestStringConvertible {
    struct FrameJSON: Decodable, Sendable { let type: UInt16, request_id: UInt32, body: Hex }
    let name: String
    let kind: String
    let maximum_length: Int?
    let stream: Hex?
    let frames: [FrameJSON]?
    let identity_seed: Hex?
    let handle: String?
    let challenge: Hex?
    let channel_binding: Hex?
    let registered_key: Hex?
    let login: Hex?
    let bound_login: Hex?
    let register: Hex?
    let expect: VectorExpectation
    var testDescription: String { name }

    /// Parses the stream (fed one byte at a time, to exercise the parser's buffering) and decodes every frame.
    func parseStream() throws -> [Frame] {
        var parser = FrameParser(maximumLength: try #require(maximum_length))
        var frames: [Frame] = []
        for byte in try #require(stream).bytes {
            parser.append([byte])
            while let frame = try parser.next() {
                _ = try RelayMessage(decoding: frame)
                frames.append(frame)
            }
        }
        try parser.finish()
        return frames
    }

    func checkRegister() throws {
        let key = try SigningKey(seed: SecretBytes(try #require(identity_seed).bytes))
        let challenge = try LoginChallenge(decoding: try #require(self.challenge).bytes)
        let binding = try #require(channel_binding).bytes
        guard case .register(let request) = try RelayMessage(decoding: Frame(type: 0x10, requestID: 1, body: try #require(register).bytes)) else {
            Issue.record("\(name): not a register body")
            return
        }
        #expect(request.handle.rawValue == handle)
        if expect == .valid {
            let made = RegisterRequest(
                handle: request.handle,
                enrollmentCode: request.enrollmentCode,
                challenge: challenge,
                channelBinding: binding,
                signedBy: key
            )
            #expect(made == request, "\(name): the signature is not the client's deterministic one")
        }
        try request.verify(challenge: challenge, channelBinding: binding)
    }

    func checkLogin() throws {
        let key = try SigningKey(seed: SecretBytes(try #require(identity_seed).bytes))
        let handle = try Handle(try #require(self.handle))
        let challenge = try LoginChallenge(decoding: try #require(self.challenge).bytes)
        let binding = try #require(channel_binding).bytes
        guard case .login(let request) = try RelayMessage(decoding: Frame(type: 3, requestID: 1, body: try #require(login).bytes)) else {
            Issue.record("\(name): not a login body")
            return
        }
        if expect == .valid {
            // Ed25519 is deterministic: the listed login is exactly what the client makes.
            let made = LoginRequest(handle: handle, challenge: challenge, channelBinding: binding, signedBy: key)
            #expect(made == request, "\(name): the signature is not the client's deterministic one")
        }
        try request.verify(
            identityKey: VerifyingKey(rawRepresentation: try #require(registered_key).bytes),
            challenge: challenge,
            channelBinding: binding
        )
    }
}

extension RelayVector {
    func checkBoundLogin() throws {
        let key = try SigningKey(seed: SecretBytes(try #require(identity_seed).bytes))
        let handle = try Handle(try #require(self.handle))
        let binding = try #require(channel_binding).bytes
        guard case .boundLogin(let request) = try RelayMessage(decoding: Frame(type: 0x2E, requestID: 1, body: try #require(bound_login).bytes)) else {
            Issue.record("\(name): not a bound login body")
            return
        }
        #expect(request.handle == handle)
        if expect == .valid {
            // Ed25519 is deterministic: the listed bound login is exactly what the client makes.
            let made = BoundLoginRequest(handle: handle, channelBinding: binding, signedBy: key)
            #expect(made == request, "\(name): the signature is not the client's deterministic one")
        }
        try request.verify(identityKey: VerifyingKey(rawRepresentation: try #require(registered_key).bytes), channelBinding: binding)
    }
}

struct AgeVector: Decodable, Sendable, CustomTestStringConvertible {
    let name: String
    let identity: String
    let file: Hex
    let plaintext: Hex?
    let file_key: Hex?
    let ephemeral_secret: Hex?
    let payload_nonce: Hex?
    let expect: VectorExpectation
    var testDescription: String { name }
}

struct SafetyNumberVector: Decodable, Sendable, CustomTestStringConvertible {
    let name: String
    let a: PartyJSON
    let b: PartyJSON
    let safety_number: String?
    let expect: VectorExpectation
    var testDescription: String { name }
}

/// Checks an outcome against `expect`: the body must succeed for `valid` and throw exactly the named code otherwise.
func check(_ expect: VectorExpectation, _ name: String, _ body: () throws -> Void) {
    do {
        try body()
        #expect(expect == .valid, "\(name): succeeded, expected \(expect)")
    } catch {
        #expect(expect == .error(errorIdentifier(error)), "\(name): \(error) (\(errorIdentifier(error))), expected \(expect)")
    }
}

@Suite("spec/vectors")
struct SpecVectorTests {
    @Test(arguments: try VectorFile<EncodingVector>.load("encoding.json").cases)
    func encoding(_ v: EncodingVector) {
        check(v.expect, v.name) {
            let reencoded = try v.decodeAndReencode()
            #expect(reencoded == v.input.bytes, "\(v.name): not canonical")
        }
    }

    @Test(arguments: try VectorFile<BundleVector>.load("bundles.json").cases)
    func bundle(_ v: BundleVector) {
        check(v.expect, v.name) {
            let bundle = try PrekeyBundle(decoding: v.bundle.bytes)
            try bundle.verify(now: Timestamp(millisecondsSince1970: v.now), expecting: v.expected_owner?.party())
        }
    }

    @Test(arguments: try VectorFile<EnvelopeVector>.load("envelopes.json").cases)
    func envelope(_ v: EnvelopeVector) throws {
        check(v.expect, v.name) {
            let opened = try v.open()
            let expected = try #require(v.message, "\(v.name): a valid case needs `message`")
            #expect(opened.message.encoded == expected.bytes)
        }
        if let seal = v.seal {
            let message = try Message(decoding: try #require(v.message).bytes)
            let sealed = try SealedEnvelope.seal(
                message,
                to: PrekeyBundle(decoding: seal.bundle.bytes),
                signedBy: SigningKey(seed: SecretBytes(seal.sender_identity_seed.bytes)),
                now: Timestamp(millisecondsSince1970: seal.now),
                ephemeralKeyMaterial: SecretBytes(seal.ephemeral_ikm.bytes)
            )
            #expect(sealed.encoded == v.envelope.bytes, "\(v.name): sealing is not reproducible")
        }
    }

    @Test(arguments: try VectorFile<SafetyNumberVector>.load("safety-numbers.json").cases)
    func safetyNumber(_ v: SafetyNumberVector) {
        check(v.expect, v.name) {
            let a = try v.a.party(), b = try v.b.party()
            #expect(SafetyNumber(a, b).digits == v.safety_number)
            #expect(SafetyNumber(b, a).digits == v.safety_number)
        }
    }

    @Test(arguments: try VectorFile<RelayVector>.load("relay.json").cases)
    func relay(_ v: RelayVector) {
        check(v.expect, v.name) {
            switch v.kind {
            case "frames":
                let frames = try v.parseStream()
                let expected = try #require(v.frames)
                #expect(frames.map(\.type) == expected.map(\.type))
                #expect(frames.map(\.requestID) == expected.map(\.request_id))
                #expect(frames.map(\.body) == expected.map(\.body.bytes))
                #expect(frames.map(\.encoded).joined().elementsEqual(try #require(v.stream).bytes))
            case "login":
                try v.checkLogin()
            case "bound_login":
                try v.checkBoundLogin()
            case "register":
                try v.checkRegister()
            default:
                Issue.record("\(v.name): unknown kind \(v.kind)")
            }
        }
    }

    @Test(arguments: try VectorFile<AgeVector>.load("age.json").cases)
    func age(_ v: AgeVector) {
        check(v.expect, v.name) {
            let identity = try AgeKeys.identity(v.identity)
            var decryptor = AgeDecryptor(identity: identity)
            let plaintext = try decryptor.update(v.file.bytes) + decryptor.finish()
            #expect(plaintext == v.plaintext?.bytes, "\(v.name): plaintext")
            if let fileKey = v.file_key, let ephemeral = v.ephemeral_secret, let nonce = v.payload_nonce {
                var encryptor = try AgeEncryptor(
                    recipient: identity.publicKey,
                    fileKey: SecretBytes(fileKey.bytes),
                    ephemeral: try AgreementKey.Private(rawRepresentation: SecretBytes(ephemeral.bytes)),
                    nonce: nonce.bytes
                )
                let remade = encryptor.header + (try encryptor.update(plaintext)) + (try encryptor.finish())
                #expect(remade == v.file.bytes, "\(v.name): encryption is not reproduced")
            }
        }
    }

    /// Every file in spec/vectors is loaded, is not empty, and is run by a test above.
    @Test func everyVectorFileIsKnownAndCounted() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Repository.vectors.path)
            .filter { $0.hasSuffix(".json") }.sorted()
        #expect(names == ["age.json", "bundles.json", "encoding.json", "envelopes.json", "relay.json", "safety-numbers.json"])
        let counts = [
            try VectorFile<EncodingVector>.load("encoding.json").cases.map(\.expect),
            try VectorFile<BundleVector>.load("bundles.json").cases.map(\.expect),
            try VectorFile<EnvelopeVector>.load("envelopes.json").cases.map(\.expect),
            try VectorFile<SafetyNumberVector>.load("safety-numbers.json").cases.map(\.expect),
            try VectorFile<RelayVector>.load("relay.json").cases.map(\.expect),
            try VectorFile<AgeVector>.load("age.json").cases.map(\.expect),
        ].joined()
        let invalid = counts.filter { $0 != .valid }.count
        print("spec/vectors: \(counts.count) cases, \(invalid) of them invalid inputs")
        #expect(counts.count >= 40)
        #expect(invalid * 3 >= counts.count)
    }

    /// The files are exactly what the generator writes: nobody edited them by hand, and a change to the wire
    /// format that forgot `make vectors` fails here.
    @Test func vectorFilesMatchTheGenerator() throws {
        for file in VectorGenerator.files() {
            let onDisk = try String(contentsOf: Repository.vectors.appendingPathComponent(file.name), encoding: .utf8)
            #expect(onDisk == file.contents, "\(file.name) differs from the generator's output; run `make vectors`")
        }
    }

    /// The loader refuses an empty file and a file whose count is wrong.
    @Test func loaderRefusesEmptyAndMiscountedFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-vectors-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let empty = directory.appendingPathComponent("empty.json")
        try Data(#"{"description": "x", "count": 0, "cases": []}"#.utf8).write(to: empty)
        #expect(throws: VectorFile<SafetyNumberVector>.LoadError.self) { try VectorFile<SafetyNumberVector>.load(from: empty) }
        let miscounted = directory.appendingPathComponent("miscounted.json")
        let one = #"{"name": "n", "a": {"identity_key": "00", "handle": "a"}, "b": {"identity_key": "00", "handle": "b"}, "expect": "valid"}"#
        try Data(#"{"description": "x", "count": 2, "cases": [\#(one)]}"#.utf8).write(to: miscounted)
        #expect(throws: VectorFile<SafetyNumberVector>.LoadError.self) { try VectorFile<SafetyNumberVector>.load(from: miscounted) }
        let unknown = directory.appendingPathComponent("unknown.json")
        try Data(#"{"description": "x", "count": 1, "cases": [\#(one.replacingOccurrences(of: "valid", with: "mystery"))]}"#.utf8)
            .write(to: unknown)
        #expect(throws: DecodingError.self) { try VectorFile<SafetyNumberVector>.load(from: unknown) }
    }
}
