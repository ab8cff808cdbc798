import CurbsideTestSupport
import Testing

@testable import CurbsideWire

@Suite("relay frames and login")
struct FrameTests {
    @Test func framesSurviveAnySplitOfTheStream() throws {
        var rng = SplitMix64.fromEnvironment()
        let frames = (0..<50).map { i in
            Frame(type: UInt16.random(in: 1...0x20, using: &rng), requestID: UInt32(i), body: rng.bytes(Int.random(in: 0...3000, using: &rng)))
        }
        let stream = frames.flatMap(\.encoded)
        var parser = FrameParser()
        var parsed: [Frame] = []
        var offset = 0
        while offset < stream.count {
            let step = Int.random(in: 1...5000, using: &rng)
            parser.append(stream[offset..<min(offset + step, stream.count)])
            offset += step
            while let frame = try parser.next() { parsed.append(frame) }
        }
        try parser.finish()
        #expect(parsed == frames, "seed \(rng.seed)")
    }

    @Test func oversizedFrameIsRefusedFromItsLengthAlone() throws {
        var parser = FrameParser(maximumLength: 1024)
        parser.append([0, 0, 0x04, 0x01])  // 1025, and no body at all yet
        let error = #expect(throws: RelayError.self) { try parser.next() }
        #expect(error?.code == .frameTooLarge)
        // The failure is sticky: nothing after it is read as a frame.
        parser.append(Frame(type: 4, requestID: 1, body: []).encoded)
        let again = #expect(throws: RelayError.self) { try parser.next() }
        #expect(again?.code == .frameTooLarge)
    }

    @Test func errorFramesRoundTripAndCapTheirDetail() throws {
        let message = RelayMessage.error(RelayError(.notLoggedIn, String(repeating: "x", count: 5000)))
        let frame = message.frame(requestID: 12)
        guard case .error(let code, let detail) = try RelayMessage(decoding: frame) else {
            Issue.record("not an error frame")
            return
        }
        #expect(code == 504 && detail.utf8.count == 1024)
    }

    @Test func loginVerifiesOnlyOnItsOwnConnection() throws {
        let key = SigningKey()
        let handle = try Handle("amara.gp")
        let challenge = LoginChallenge.random()
        let binding = secureRandomBytes(count: 32)
        let login = LoginRequest(handle: handle, challenge: challenge, channelBinding: binding, signedBy: key)
        try login.verify(identityKey: key.verifyingKey, challenge: challenge, channelBinding: binding)

        let otherConnection = #expect(throws: RelayError.self) {
            try login.verify(identityKey: key.verifyingKey, challenge: challenge, channelBinding: secureRandomBytes(count: 32))
        }
        #expect(otherConnection?.code == .loginFailed)
        let otherChallenge = #expect(throws: RelayError.self) {
            try login.verify(identityKey: key.verifyingKey, challenge: .random(), channelBinding: binding)
        }
        #expect(otherChallenge?.code == .loginFailed)
        let otherKey = #expect(throws: RelayError.self) {
            try login.verify(identityKey: SigningKey().verifyingKey, challenge: challenge, channelBinding: binding)
        }
        #expect(otherKey?.code == .loginFailed)
        // The same signature under another handle fails too: the handle is signed.
        let renamed = try LoginRequest(decoding: [8] + Array("amara.gq".utf8) + login.signature)
        #expect(throws: RelayError.self) {
            try renamed.verify(identityKey: key.verifyingKey, challenge: challenge, channelBinding: binding)
        }
    }
}
