import CurbsideWire

extension VectorGenerator {
    static func relayVectors(_ f: Fixtures) -> VectorFileBuilder {
        var file = VectorFileBuilder(
            name: "relay.json",
            description: """
                Relay frames and logins (spec/relay.md). kind "frames": parse `stream` with a maximum frame length \
                of `maximum_length`; valid: it gives exactly `frames`, each body decoding as its type. kind "login": \
                the login body `login` for `handle` is the signature of `identity_seed` over `challenge` and \
                `channel_binding`; valid: a relay holding `registered_key` accepts it. Otherwise `expect` names the \
                error.
                """
        )
        let maximum = UInt64(Frame.protocolMaximumLength)
        func frameJSON(_ frame: Frame) -> JSON {
            .object([
                ("type", .number(UInt64(frame.type))),
                ("request_id", .number(UInt64(frame.requestID))),
                ("body", .hex(frame.body)),
            ])
        }
        func addStream(_ name: String, _ stream: [UInt8], frames: [Frame] = [], maximum: UInt64 = maximum, _ expect: String) {
            file.add(
                name,
                [
                    ("kind", .string("frames")),
                    ("maximum_length", .number(maximum)),
                    ("stream", .hex(stream)),
                    ("frames", .array(frames.map(frameJSON))),
                ],
                expect: expect
            )
        }

        let challenge = LoginChallenge(nonce: Array(SHA256.hash(Array("curbside-vectors/challenge/1".utf8))))
        let binding = Array(SHA256.hash(Array("curbside-vectors/channel-binding/1".utf8)))
        let login = LoginRequest(handle: f.gp.party.handle, challenge: challenge, channelBinding: binding, signedBy: f.gp.signingKey)
        let challengeFrame = RelayMessage.challenge(challenge).frame(requestID: 0)
        let loginFrame = RelayMessage.login(login).frame(requestID: 1)
        let accepted = RelayMessage.loginAccepted.frame(requestID: 1)
        let error = RelayMessage.error(RelayError(.notLoggedIn, "log in first")).frame(requestID: 9)

        addStream("one challenge", challengeFrame.encoded, frames: [challengeFrame], "valid")
        addStream(
            "three frames in one stream",
            loginFrame.encoded + accepted.encoded + error.encoded,
            frames: [loginFrame, accepted, error],
            "valid"
        )
        addStream("empty body", accepted.encoded, frames: [accepted], "valid")
        addStream("stream ends inside a frame", Array(loginFrame.encoded.dropLast()), "malformed_frame")
        addStream("stream ends inside a length", [0, 0], "malformed_frame")
        addStream("length below 6", [0, 0, 0, 5, 0, 4, 0, 0, 0], "malformed_frame")
        addStream("length above the maximum", [0, 0x40, 0, 1] + [0, 4, 0, 0, 0, 0], "frame_too_large")
        addStream(
            "length above a smaller maximum",
            loginFrame.encoded,
            maximum: UInt64(loginFrame.encoded.count - 5),
            "frame_too_large"
        )
        addStream("unknown frame type", Frame(type: 0x7777, requestID: 3, body: []).encoded, "unknown_frame_type")
        addStream(
            "login body with a trailing byte",
            Frame(type: 3, requestID: 1, body: loginFrame.body + [0]).encoded,
            "malformed_frame"
        )
        addStream("login body truncated", Frame(type: 3, requestID: 1, body: Array(loginFrame.body.dropLast())).encoded, "malformed_frame")
        addStream(
            "challenge of version 2",
            Frame(type: 2, requestID: 0, body: [2] + challenge.nonce).encoded,
            "malformed_frame"
        )
        addStream("login accepted with a body", Frame(type: 4, requestID: 1, body: [0]).encoded, "malformed_frame")
        addStream(
            "error detail not utf-8",
            Frame(type: 1, requestID: 0, body: [0x01, 0xF5, 0x00, 0x02, 0xC3, 0x28]).encoded,
            "malformed_frame"
        )

        func addLogin(
            _ name: String,
            signer: Fixtures.Provider,
            handle: Handle,
            registered: Fixtures.Provider,
            challenge signedChallenge: LoginChallenge = challenge,
            binding signedBinding: [UInt8] = binding,
            _ expect: String
        ) {
            let request = LoginRequest(handle: handle, challenge: signedChallenge, channelBinding: signedBinding, signedBy: signer.signingKey)
            file.add(
                name,
                [
                    ("kind", .string("login")),
                    ("identity_seed", .hex(signer.signingKey.seed.copiedBytes)),
                    ("handle", .string(handle.rawValue)),
                    ("challenge", .hex(challenge.encoded)),
                    ("channel_binding", .hex(binding)),
                    ("registered_key", .hex(registered.party.identityKey.rawRepresentation)),
                    ("login", .hex(RelayMessage.login(request).frame(requestID: 1).body)),
                ],
                expect: expect
            )
        }
        addLogin("login", signer: f.gp, handle: f.gp.party.handle, registered: f.gp, "valid")
        addLogin("login by another identity", signer: f.cardio, handle: f.gp.party.handle, registered: f.gp, "login_failed")
        addLogin(
            "login signed on another connection",
            signer: f.gp,
            handle: f.gp.party.handle,
            registered: f.gp,
            binding: Array(SHA256.hash(Array("curbside-vectors/channel-binding/2".utf8))),
            "login_failed"
        )
        addLogin(
            "login signed for an older challenge",
            signer: f.gp,
            handle: f.gp.party.handle,
            registered: f.gp,
            challenge: LoginChallenge(nonce: Array(SHA256.hash(Array("curbside-vectors/challenge/0".utf8)))),
            "login_failed"
        )
        return file
    }
}
