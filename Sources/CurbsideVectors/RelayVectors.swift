import CurbsideWire

extension VectorGenerator {
    static func relayVectors(_ f: Fixtures) -> VectorFileBuilder {
        var file = VectorFileBuilder(
            name: "relay.json",
            description: """
                Relay frames and logins (spec/relay.md). kind "frames": parse `stream` with a maximum frame length \
                of `maximum_length`; valid: it gives exactly `frames`, each body decoding as its type. kind "login": \
                the login body `login` for `handle` is the signature of `identity_seed` over `challenge` and \
                `channel_binding`; valid: a relay holding `registered_key` accepts it. kind "bound_login": the same for the \
                bound login body `bound_login`, signed over `channel_binding` alone. kind "register": the register \
                body `register`. Otherwise `expect` names the error.
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
        // A relay on PostgreSQL during a failover (errors.md: 522): the answer to a send, the connection kept.
        let unavailable = RelayMessage.error(RelayError(.storeUnavailable, "no database server accepts writes now")).frame(requestID: 5)
        addStream("store_unavailable answering a send", unavailable.encoded, frames: [unavailable], "valid")
        let code = Array("WXYT7DZYRJD9C7DM0903".utf8)
        let register = RelayMessage.register(
            RegisterRequest(handle: f.derm.party.handle, enrollmentCode: code, challenge: challenge, channelBinding: binding, signedBy: f.derm.signingKey)
        ).frame(requestID: 1)
        let upload = RelayMessage.publishPrekeys(
            try! PrekeyUpload(
                signedPrekey: f.derm.signedPrekeyRecord(),
                oneTimePrekeys: [f.derm.oneTimePrekeyRecord(100), f.derm.oneTimePrekeyRecord(101)]
            )
        ).frame(requestID: 2)
        let published = RelayMessage.prekeysPublished(oneTimePrekeysHeld: 2).frame(requestID: 2)
        let fetch = RelayMessage.fetchBundle(f.derm.party.handle).frame(requestID: 3)
        let bundle = RelayMessage.bundle(f.derm.bundle(oneTime: 100)).frame(requestID: 3)
        addStream(
            "registration and key directory frames",
            [register, RelayMessage.registered.frame(requestID: 1), upload, published, fetch, bundle].flatMap(\.encoded),
            frames: [register, RelayMessage.registered.frame(requestID: 1), upload, published, fetch, bundle],
            "valid"
        )
        // Before registering: would the relay take this code for this handle? (spec/relay.md §Checking an enrollment code)
        let check = RelayMessage.checkEnrollment(EnrollmentCheck(handle: f.derm.party.handle, enrollmentCode: EnrollmentCode("WXYT7DZYRJD9C7DM0903")!))
            .frame(requestID: 1)
        let usable = RelayMessage.enrollmentUsable.frame(requestID: 1)
        addStream("enrollment check frames", (check.encoded + usable.encoded), frames: [check, usable], "valid")
        addStream(
            "enrollment check with a 19-character code",
            Frame(type: 0x2A, requestID: 1, body: Array(check.body.dropLast())).encoded,
            "malformed_frame"
        )
        let envelopeBytes = f.consultEnvelope
        let envelopeID = SHA256.hash(envelopeBytes)
        let delivered = DeliveredEnvelope(
            sequence: 1,
            envelopeID: envelopeID,
            sender: f.gp.party.handle,
            storedAt: Fixtures.now,
            envelope: envelopeBytes
        )
        let notice = DeliveryNotice(
            sequence: 4,
            kind: .deliveredToDevice,
            envelopeID: envelopeID,
            recipient: f.derm.party.handle,
            at: Fixtures.now
        )
        let rejected = DeliveryNotice(
            sequence: 5,
            kind: .rejected,
            envelopeID: envelopeID,
            recipient: f.derm.party.handle,
            at: Fixtures.now,
            reason: .undecryptable
        )
        let storeAndForward: [Frame] = [
            RelayMessage.send(try! SendRequest(recipient: f.derm.party.handle, envelope: envelopeBytes)).frame(requestID: 5),
            RelayMessage.stored(StoredReceipt(envelopeID: envelopeID, storedAt: Fixtures.now, expiresAt: Fixtures.now.adding(seconds: 14 * 86_400))).frame(requestID: 5),
            RelayMessage.pushEnvelope(delivered).frame(requestID: 0),
            RelayMessage.fetch(after: 0, limit: 10).frame(requestID: 6),
            RelayMessage.envelopes([delivered]).frame(requestID: 6),
            RelayMessage.acknowledge([envelopeID]).frame(requestID: 7),
            RelayMessage.acknowledged(count: 1).frame(requestID: 7),
            RelayMessage.pushNotice(notice).frame(requestID: 0),
            RelayMessage.fetchNotices(after: 0).frame(requestID: 8),
            RelayMessage.notices([notice]).frame(requestID: 8),
            RelayMessage.acknowledgeNotices(through: 4).frame(requestID: 9),
            RelayMessage.noticesAcknowledged.frame(requestID: 9),
            RelayMessage.prekeysLow(oneTimePrekeysHeld: 3).frame(requestID: 0),
            RelayMessage.reject([Rejection(envelopeID: envelopeID, reason: .undecryptable)]).frame(requestID: 10),
            RelayMessage.acknowledged(count: 1).frame(requestID: 10),
            RelayMessage.pushNotice(rejected).frame(requestID: 0),
        ]
        addStream("store and forward frames", storeAndForward.flatMap(\.encoded), frames: storeAndForward, "valid")
        // Attachments: the consult's image uploaded in two chunks, committed, named by the send, downloaded by range.
        let image = f.attachment("image-1", fileName: "forearm.jpg")
        let imageID = image.sha256
        let firstChunk = [UInt8](repeating: 0xA5, count: 32)
        let rest = [UInt8](repeating: 0x5A, count: 16)
        let declared: UInt64 = 48
        let uploadExpiry = Fixtures.now.adding(seconds: 7 * 86_400)
        let attachmentFrames: [Frame] = [
            RelayMessage.openUpload(OpenUpload(attachmentID: imageID, size: declared)).frame(requestID: 10),
            RelayMessage.uploadStatus(UploadStatus(size: declared, held: 0, state: .uploading, expiresAt: uploadExpiry)).frame(requestID: 10),
            RelayMessage.uploadChunk(try! UploadChunk(attachmentID: imageID, offset: 0, data: firstChunk)).frame(requestID: 11),
            RelayMessage.uploadStatus(UploadStatus(size: declared, held: 32, state: .uploading, expiresAt: uploadExpiry)).frame(requestID: 11),
            RelayMessage.uploadChunk(try! UploadChunk(attachmentID: imageID, offset: 32, data: rest)).frame(requestID: 12),
            RelayMessage.uploadStatus(UploadStatus(size: declared, held: 48, state: .uploading, expiresAt: uploadExpiry)).frame(requestID: 12),
            RelayMessage.commitUpload(attachmentID: imageID).frame(requestID: 13),
            RelayMessage.uploadStatus(UploadStatus(size: declared, held: 48, state: .complete, expiresAt: uploadExpiry)).frame(requestID: 13),
            RelayMessage.send(try! SendRequest(recipient: f.derm.party.handle, envelope: envelopeBytes, attachments: [imageID])).frame(requestID: 14),
            RelayMessage.download(DownloadRequest(attachmentID: imageID, offset: 40, length: 1 << 20)).frame(requestID: 15),
            RelayMessage.attachmentData(AttachmentData(size: declared, offset: 40, data: Array(rest.suffix(8)))).frame(requestID: 15),
            RelayMessage.download(DownloadRequest(attachmentID: imageID, offset: 48, length: 1)).frame(requestID: 16),
            RelayMessage.attachmentData(AttachmentData(size: declared, offset: 48, data: [])).frame(requestID: 16),
        ]
        addStream("attachment frames", attachmentFrames.flatMap(\.encoded), frames: attachmentFrames, "valid")
        // The same image uploaded while it was encrypted: opened under a provisional id with the most it could
        // hold, then named by its SHA-256 (spec/relay.md §Attachments, commit_upload_as).
        let provisionalID = Array(SHA256.hash(Array("curbside-vectors/provisional-upload/1".utf8)))
        let bound: UInt64 = 64
        let provisionalFrames: [Frame] = [
            RelayMessage.openUpload(OpenUpload(attachmentID: provisionalID, size: bound)).frame(requestID: 20),
            RelayMessage.uploadStatus(UploadStatus(size: bound, held: 0, state: .uploading, expiresAt: uploadExpiry)).frame(requestID: 20),
            RelayMessage.uploadChunk(try! UploadChunk(attachmentID: provisionalID, offset: 0, data: firstChunk + rest)).frame(requestID: 21),
            RelayMessage.uploadStatus(UploadStatus(size: bound, held: 48, state: .uploading, expiresAt: uploadExpiry)).frame(requestID: 21),
            RelayMessage.commitUploadAs(CommitUploadAs(uploadID: provisionalID, attachmentID: imageID, size: declared)).frame(requestID: 22),
            RelayMessage.uploadStatus(UploadStatus(size: declared, held: 48, state: .complete, expiresAt: uploadExpiry)).frame(requestID: 22),
        ]
        addStream("upload committed under its hash", provisionalFrames.flatMap(\.encoded), frames: provisionalFrames, "valid")
        let commitAsBody = provisionalFrames[4].body
        addStream(
            "commit upload as of size 0",
            Frame(type: 0x2F, requestID: 22, body: Array(commitAsBody.prefix(64)) + [0, 0, 0, 0, 0, 0, 0, 0]).encoded,
            "malformed_frame"
        )
        addStream(
            "commit upload as without its size",
            Frame(type: 0x2F, requestID: 22, body: Array(commitAsBody.prefix(64))).encoded,
            "malformed_frame"
        )
        // A consult cancelled after its image was uploaded: the sender abandons the upload (spec/relay.md §Attachments).
        let abandoned = [
            RelayMessage.abandonUpload(attachmentID: imageID).frame(requestID: 17),
            RelayMessage.uploadAbandoned.frame(requestID: 17),
        ]
        addStream("abandoned upload frames", abandoned.flatMap(\.encoded), frames: abandoned, "valid")
        addStream(
            "abandon upload with a short id",
            Frame(type: 0x2C, requestID: 17, body: Array(imageID.prefix(31))).encoded,
            "malformed_frame"
        )
        let uploadStatusBody = attachmentFrames[1].body
        addStream(
            "upload status holding more than its size",
            Frame(type: 0x24, requestID: 10, body: uploadStatusBody.replacing(at: 15, with: [49])).encoded,
            "malformed_frame"
        )
        addStream(
            "upload status in state 3",
            Frame(type: 0x24, requestID: 10, body: uploadStatusBody.replacing(at: 16, with: [3])).encoded,
            "malformed_frame"
        )
        addStream(
            "open upload of size 0",
            Frame(type: 0x23, requestID: 10, body: imageID + [0, 0, 0, 0, 0, 0, 0, 0]).encoded,
            "malformed_frame"
        )
        addStream(
            "upload chunk without data",
            Frame(type: 0x25, requestID: 11, body: imageID + [0, 0, 0, 0, 0, 0, 0, 0] + [0, 0, 0, 0]).encoded,
            "malformed_frame"
        )
        addStream(
            "download of length 0",
            Frame(type: 0x27, requestID: 15, body: imageID + [0, 0, 0, 0, 0, 0, 0, 0] + [0, 0, 0, 0]).encoded,
            "malformed_frame"
        )
        addStream(
            "attachment data ending past the size",
            Frame(type: 0x28, requestID: 15, body: [0, 0, 0, 0, 0, 0, 0, 48] + [0, 0, 0, 0, 0, 0, 0, 41] + [0, 0, 0, 8] + rest.suffix(8)).encoded,
            "malformed_frame"
        )
        let sendBody = attachmentFrames[8].body
        addStream(
            "send naming an attachment twice",
            Frame(type: 0x16, requestID: 14, body: Array(sendBody.dropLast(33)) + [2] + imageID + imageID).encoded,
            "malformed_frame"
        )
        addStream(
            "send naming 17 attachments",
            Frame(type: 0x16, requestID: 14, body: Array(sendBody.dropLast(33)) + [17] + (0..<17).flatMap { n in [UInt8](repeating: UInt8(n), count: 32) }).encoded,
            "malformed_frame"
        )
        addStream("fetch with limit 0", Frame(type: 0x18, requestID: 6, body: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).encoded, "malformed_frame")
        addStream("acknowledge nothing", Frame(type: 0x1A, requestID: 7, body: [0, 0]).encoded, "malformed_frame")
        addStream("reject nothing", Frame(type: 0x29, requestID: 10, body: [0, 0]).encoded, "malformed_frame")
        addStream(
            "reject with reason 0",
            Frame(type: 0x29, requestID: 10, body: [0, 1] + envelopeID + [0]).encoded,
            "malformed_frame"
        )
        addStream(
            "rejected notice without its reason",
            Frame(type: 0x21, requestID: 0, body: Array(rejected.encoded.dropLast())).encoded,
            "malformed_frame"
        )
        addStream(
            "delivered notice carrying a reason",
            Frame(type: 0x21, requestID: 0, body: notice.encoded + [1]).encoded,
            "malformed_frame"
        )
        // Times (encoding.md §Times): the last millisecond of 9999 is valid, the next one is not, nor is 2^64 - 1.
        let storedBody = RelayMessage.stored(StoredReceipt(envelopeID: envelopeID, storedAt: Fixtures.now, expiresAt: Fixtures.now)).frame(requestID: 5).body
        let latest: [UInt8] = [0, 0, 0xe6, 0x77, 0xd2, 0x1f, 0xdb, 0xff]
        addStream(
            "stored at the latest time",
            Frame(type: 0x17, requestID: 5, body: storedBody.replacing(at: 32, with: latest)).encoded,
            frames: [Frame(type: 0x17, requestID: 5, body: storedBody.replacing(at: 32, with: latest))],
            "valid"
        )
        addStream(
            "stored a millisecond after the latest time",
            Frame(type: 0x17, requestID: 5, body: storedBody.replacing(at: 32, with: [0, 0, 0xe6, 0x77, 0xd2, 0x1f, 0xdc, 0x00])).encoded,
            "malformed_frame"
        )
        addStream(
            "pushed envelope stored at 2^64 - 1",
            Frame(type: 0x20, requestID: 0, body: delivered.encoded.replacing(at: 8 + 32 + 1 + f.gp.party.handle.rawValue.utf8.count, with: [UInt8](repeating: 0xff, count: 8))).encoded,
            "malformed_frame"
        )
        addStream(
            "notice at 2^64 - 1",
            Frame(type: 0x21, requestID: 0, body: Array(notice.encoded.dropLast(8)) + [UInt8](repeating: 0xff, count: 8)).encoded,
            "malformed_frame"
        )
        addStream(
            "notice of kind 4",
            Frame(type: 0x21, requestID: 0, body: notice.encoded.replacing(at: 8, with: [4])).encoded,
            "malformed_frame"
        )
        addStream("send of an empty envelope", Frame(type: 0x16, requestID: 5, body: [9] + Array("osei.derm".utf8) + [0, 0, 0, 0, 0]).encoded, "malformed_frame")
        addStream(
            "publish with 101 one-time prekeys",
            Frame(type: 0x12, requestID: 2, body: [0, 101]).encoded,
            "malformed_frame"
        )
        addStream(
            "fetch bundle for an invalid handle",
            Frame(type: 0x14, requestID: 3, body: [4] + Array("Osei".utf8)).encoded,
            "malformed_frame"
        )
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
        // The bound login (spec/relay.md §Bound login): sent before the challenge is read, answered after it.
        let boundLogin = BoundLoginRequest(handle: f.gp.party.handle, channelBinding: binding, signedBy: f.gp.signingKey)
        let boundLoginFrame = RelayMessage.boundLogin(boundLogin).frame(requestID: 1)
        addStream("bound login frame", boundLoginFrame.encoded, frames: [boundLoginFrame], "valid")
        addStream(
            "challenge then the answer to a bound login",
            challengeFrame.encoded + accepted.encoded,
            frames: [challengeFrame, accepted],
            "valid"
        )
        addStream(
            "bound login body with a trailing byte",
            Frame(type: 0x2E, requestID: 1, body: boundLoginFrame.body + [0]).encoded,
            "malformed_frame"
        )
        addStream(
            "bound login body truncated",
            Frame(type: 0x2E, requestID: 1, body: Array(boundLoginFrame.body.dropLast())).encoded,
            "malformed_frame"
        )
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
        func addBoundLogin(
            _ name: String,
            signer: Fixtures.Provider,
            registered: Fixtures.Provider,
            binding signedBinding: [UInt8] = binding,
            body: (([UInt8]) -> [UInt8])? = nil,
            _ expect: String
        ) {
            let handle = f.gp.party.handle
            let request = BoundLoginRequest(handle: handle, channelBinding: signedBinding, signedBy: signer.signingKey)
            let signed = RelayMessage.boundLogin(request).frame(requestID: 1).body
            file.add(
                name,
                [
                    ("kind", .string("bound_login")),
                    ("identity_seed", .hex(signer.signingKey.seed.copiedBytes)),
                    ("handle", .string(handle.rawValue)),
                    ("channel_binding", .hex(binding)),
                    ("registered_key", .hex(registered.party.identityKey.rawRepresentation)),
                    ("bound_login", .hex(body?(signed) ?? signed)),
                ],
                expect: expect
            )
        }
        addBoundLogin("bound login", signer: f.gp, registered: f.gp, "valid")
        addBoundLogin("bound login by another identity", signer: f.cardio, registered: f.gp, "login_failed")
        addBoundLogin(
            "bound login signed on another connection",
            signer: f.gp,
            registered: f.gp,
            binding: Array(SHA256.hash(Array("curbside-vectors/channel-binding/2".utf8))),
            "login_failed"
        )
        addBoundLogin(
            "bound login with a changed signature byte",
            signer: f.gp,
            registered: f.gp,
            body: { $0.replacing(at: $0.count - 64, with: [$0[$0.count - 64] ^ 0x01]) },
            "login_failed"
        )
        // The challenge login's signature on this connection, sent as a bound login: the labels keep them apart.
        addBoundLogin(
            "bound login carrying the challenge login's signature",
            signer: f.gp,
            registered: f.gp,
            body: { _ in RelayMessage.login(login).frame(requestID: 1).body },
            "login_failed"
        )
        func addRegister(_ name: String, signer: Fixtures.Provider, claimed: Fixtures.Provider, signedBinding: [UInt8] = binding, _ expect: String) {
            var request = RegisterRequest(
                handle: claimed.party.handle,
                enrollmentCode: code,
                challenge: challenge,
                channelBinding: signedBinding,
                signedBy: signer.signingKey
            )
            if signer.party.identityKey != claimed.party.identityKey {
                // Claims claimed's key but is signed by signer: rebuild with the claimed key and the wrong signature.
                var bytes = request.encoded
                let keyOffset = 1 + claimed.party.handle.rawValue.utf8.count
                bytes.replaceSubrange(keyOffset..<(keyOffset + 32), with: claimed.party.identityKey.rawRepresentation)
                request = try! RegisterRequest(decoding: bytes)
            }
            file.add(
                name,
                [
                    ("kind", .string("register")),
                    ("identity_seed", .hex(signer.signingKey.seed.copiedBytes)),
                    ("handle", .string(claimed.party.handle.rawValue)),
                    ("challenge", .hex(challenge.encoded)),
                    ("channel_binding", .hex(binding)),
                    ("register", .hex(RelayMessage.register(request).frame(requestID: 1).body)),
                ],
                expect: expect
            )
        }
        addRegister("register", signer: f.derm, claimed: f.derm, "valid")
        addRegister("register signed on another connection", signer: f.derm, claimed: f.derm, signedBinding: Array(SHA256.hash(Array("curbside-vectors/channel-binding/2".utf8))), "login_failed")
        addRegister("register claiming a key it does not hold", signer: f.cardio, claimed: f.derm, "login_failed")
        return file
    }
}
