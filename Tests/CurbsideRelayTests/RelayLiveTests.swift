import CurbsideTLS
import CurbsideTransport
import CurbsideTestSupport
import CurbsideWire
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import CurbsideRelay

@Suite("relay over TLS on loopback", .serialized)
struct RelayLiveTests {
    @Test func loginWithTheChannelBindingIsAccepted() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true)) { relay in
            let (channel, info) = try await relay.connect()
            try await channel.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
                let first = try #require(try await frames.next())
                guard case .challenge(let challenge) = try RelayMessage(decoding: first) else {
                    Issue.record("the first frame is not a challenge")
                    return
                }
                let login = LoginRequest(handle: relay.gp.handle, challenge: challenge, channelBinding: info.channelBinding, signedBy: relay.gp.key)
                try await outbound.write(RelayMessage.login(login).frame(requestID: 7))
                let reply = try #require(try await frames.next())
                #expect(reply.requestID == 7)
                #expect(try RelayMessage(decoding: reply) == .loginAccepted)
            }
        }
    }

    @Test func aLoginFromAnotherConnectionIsRefused() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true)) { relay in
            // The login made for connection 1 ...
            let (first, firstInfo) = try await relay.connect()
            let captured = try await first.executeThenClose { inbound, _ in
                var frames = inbound.makeAsyncIterator()
                guard case .challenge(let challenge) = try RelayMessage(decoding: try #require(try await frames.next())) else {
                    throw RelayError(.unexpectedFrame, "no challenge")
                }
                return LoginRequest(handle: relay.gp.handle, challenge: challenge, channelBinding: firstInfo.channelBinding, signedBy: relay.gp.key)
            }
            // ... replayed on connection 2.
            let (second, _) = try await relay.connect()
            try await second.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
                _ = try await frames.next()  // its own challenge
                try await outbound.write(RelayMessage.login(captured).frame(requestID: 1))
                let reply = try #require(try await frames.next())
                #expect(try RelayMessage(decoding: reply) == .error(code: 505, detail: "login of amara.gp did not verify"))
                #expect(reply.requestID == 1, "the error answers the login's request id")
                #expect(try await frames.next() == nil, "the relay closes after a failed login")
            }
        }
    }

    @Test func requestsBeforeLoginAreRefused() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true)) { relay in
            let (channel, _) = try await relay.connect()
            try await channel.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
                _ = try await frames.next()
                try await outbound.write(RelayMessage.loginAccepted.frame(requestID: 3))
                let reply = try RelayMessage(decoding: try #require(try await frames.next()))
                guard case .error(let code, _) = reply else {
                    Issue.record("expected an error frame, got \(reply)")
                    return
                }
                #expect(code == RelayError.Code.notLoggedIn.rawValue)
            }
        }
    }

    /// The acceptance check: `openssl s_client` sends a malformed frame and gets an error frame, and a
    /// well-behaved client on another connection is served normally afterwards.
    @Test func malformedFrameFromSClientGetsAnErrorFrameAndOthersCarryOn() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true)) { relay in
            let result = try await Task.detached {
                try relayShell(
                    "(printf '\\000\\000\\000\\001'; sleep 1) | timeout 10 openssl s_client -connect 127.0.0.1:\(relay.port) "
                        + "-tls1_3 -alpn curbside/1 -quiet 2>/dev/null | od -An -tx1 | tr -d ' \\n'"
                )
            }.value
            // The challenge (type 0002) first, then an error frame (type 0001, request 0) with code 501 (0x01f5).
            #expect(result.output.contains("000200000000"), "\(result.output)")
            #expect(result.output.contains("00010000000001f5"), "\(result.output)")

            let (channel, info) = try await relay.connect()
            try await channel.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
                guard case .challenge(let challenge) = try RelayMessage(decoding: try #require(try await frames.next())) else {
                    Issue.record("no challenge")
                    return
                }
                let login = LoginRequest(handle: relay.gp.handle, challenge: challenge, channelBinding: info.channelBinding, signedBy: relay.gp.key)
                try await outbound.write(RelayMessage.login(login).frame(requestID: 1))
                #expect(try RelayMessage(decoding: try #require(try await frames.next())) == .loginAccepted)
            }
        }
    }
}

extension RelayLiveTests {
    /// Failed handshakes (TLS 1.2, no ALPN) are closed and leave the relay serving everyone else.
    @Test func failedHandshakesLeaveTheRelayServing() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true)) { relay in
            for options in ["-tls1_2", "-tls1_3"] {  // the second offers no ALPN at all
                let result = try await Task.detached {
                    try relayShell("timeout 10 openssl s_client -connect 127.0.0.1:\(relay.port) \(options) </dev/null 2>&1")
                }.value
                #expect(result.output.contains("alert") || result.output.contains("errno") || result.output.contains("error"), "\(result.output)")
            }
            let (channel, _) = try await relay.connect()
            try await channel.executeThenClose { inbound, _ in
                var frames = inbound.makeAsyncIterator()
                guard case .challenge = try RelayMessage(decoding: try #require(try await frames.next())) else {
                    Issue.record("no challenge")
                    return
                }
            }
        }
    }
}

extension RelayLiveTests {
    /// A real peer that completes the handshake without ALPN is refused with close_notify, an orderly close
    /// (transport.md §Closing), not a cut connection; one that offers only another protocol gets the handshake's
    /// no_application_protocol alert (issue 14 item 14).
    @Test func aHandshakeWithoutALPNEndsWithCloseNotify() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true)) { relay in
            let none = try await Task.detached {
                try relayShell("(sleep 6) | timeout 20 openssl s_client -connect 127.0.0.1:\(relay.port) -tls1_3 -msg 2>&1")
            }.value
            #expect(none.output.contains("<<< TLS 1.3, Alert [length 0002], warning close_notify"), "\(none.output)")
            let other = try await Task.detached {
                try relayShell("(sleep 6) | timeout 20 openssl s_client -connect 127.0.0.1:\(relay.port) -tls1_3 -alpn h2 -msg 2>&1")
            }.value
            #expect(other.output.contains("alert no application protocol"), "\(other.output)")
        }
    }
}

@Suite("relay registration and key directory", .serialized)
struct RelayDirectoryLiveTests {
    @Test func registerPublishAndFetchABundle() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true)) { relay in
            let derm = try Handle("osei.derm")
            let dermKey = SigningKey()
            let code = try await KeyDirectory(store: try relay.store).enroll(derm, now: .now())
            let codeBytes = Array(code.characters.utf8)
            let signedPrekey = AgreementKey.Private(), oneTime = AgreementKey.Private()
            let expiry = Timestamp.now().adding(seconds: 86_400)

            // osei.derm registers and publishes on one connection ...
            let replies = try await relay.exchange { challenge, binding in
                [
                    .register(RegisterRequest(handle: derm, enrollmentCode: codeBytes, challenge: challenge, channelBinding: binding, signedBy: dermKey)),
                    .publishPrekeys(
                        try! PrekeyUpload(
                            signedPrekey: SignedPrekey(id: 1, publicKey: signedPrekey.publicKey, expiresAt: expiry, signedBy: dermKey),
                            oneTimePrekeys: [OneTimePrekey(id: 9, publicKey: oneTime.publicKey, signedBy: dermKey)]
                        )
                    ),
                    // A prekey signed by someone else is refused, and the connection carries on.
                    .publishPrekeys(
                        try! PrekeyUpload(
                            signedPrekey: nil,
                            oneTimePrekeys: [OneTimePrekey(id: 10, publicKey: oneTime.publicKey, signedBy: SigningKey())]
                        )
                    ),
                    .fetchBundle(derm),
                ]
            }
            #expect(replies.count == 4)
            #expect(replies[0] == .registered)
            #expect(replies[1] == .prekeysPublished(oneTimePrekeysHeld: 1))
            guard case .error(let code, _) = replies[2] else {
                Issue.record("expected prekey_rejected, got \(replies[2])")
                return
            }
            #expect(code == RelayError.Code.prekeyRejected.rawValue)
            guard case .bundle(let bundle) = replies[3] else {
                Issue.record("expected a bundle, got \(replies[3])")
                return
            }
            try bundle.verify(now: .now(), expecting: Party(identityKey: dermKey.verifyingKey, handle: derm))
            #expect(bundle.oneTimePrekey?.id == 9)

            // ... and amara.gp, logged in elsewhere, gets a bundle without it: the one-time prekey went out once.
            let gpReplies = try await relay.exchange { challenge, binding in
                [
                    .login(LoginRequest(handle: relay.gp.handle, challenge: challenge, channelBinding: binding, signedBy: relay.gp.key)),
                    .fetchBundle(derm),
                    .fetchBundle(try! Handle("nobody")),
                ]
            }
            #expect(gpReplies.first == .loginAccepted)
            guard case .bundle(let second) = gpReplies[1] else {
                Issue.record("expected a bundle, got \(gpReplies[1])")
                return
            }
            #expect(second.oneTimePrekey == nil && second.signedPrekey.id == 1)
            guard case .error(let unknown, _) = gpReplies[2] else {
                Issue.record("expected unknown_handle, got \(gpReplies[2])")
                return
            }
            #expect(unknown == RelayError.Code.unknownHandle.rawValue)
        }
    }

    @Test func theOwnerHearsWhenItsOneTimePrekeysRunLow() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true)) { relay in
            let derm = try Handle("osei.derm")
            let dermKey = SigningKey()
            let code = try await KeyDirectory(store: try relay.store).enroll(derm, now: .now())
            let (channel, info) = try await relay.connect()
            try await channel.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
                guard case .challenge(let challenge) = try RelayMessage(decoding: try #require(try await frames.next())) else { return }
                try await outbound.write(
                    RelayMessage.register(
                        RegisterRequest(handle: derm, enrollmentCode: Array(code.characters.utf8), challenge: challenge, channelBinding: info.channelBinding, signedBy: dermKey)
                    ).frame(requestID: 1)
                )
                #expect(try RelayMessage(decoding: try #require(try await frames.next())) == .registered)
                let upload = try PrekeyUpload(
                    signedPrekey: SignedPrekey(id: 1, publicKey: AgreementKey.Private().publicKey, expiresAt: .now().adding(seconds: 3600), signedBy: dermKey),
                    oneTimePrekeys: (0..<3).map { OneTimePrekey(id: $0, publicKey: AgreementKey.Private().publicKey, signedBy: dermKey) }
                )
                try await outbound.write(RelayMessage.publishPrekeys(upload).frame(requestID: 2))
                #expect(try RelayMessage(decoding: try #require(try await frames.next())) == .prekeysPublished(oneTimePrekeysHeld: 3))
                // Someone else fetches a bundle: osei.derm, still connected, is told it has 2 left.
                _ = try await relay.exchange { challenge, binding in
                    [
                        .login(LoginRequest(handle: relay.gp.handle, challenge: challenge, channelBinding: binding, signedBy: relay.gp.key)),
                        .fetchBundle(derm),
                    ]
                }
                let push = try #require(try await frames.next())
                #expect(push.requestID == 0)
                #expect(try RelayMessage(decoding: push) == .prekeysLow(oneTimePrekeysHeld: 2))
            }
        }
    }

    @Test func registrationIsRefusedWithAWrongCodeOrATakenHandle() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true)) { relay in
            let wrongCode = try await relay.exchange { challenge, binding in
                [.register(RegisterRequest(handle: try! Handle("osei.derm"), enrollmentCode: Array("00000000000000000000".utf8), challenge: challenge, channelBinding: binding, signedBy: SigningKey()))]
            }
            #expect(wrongCode.count == 1)
            if case .error(let code, _) = wrongCode.first { #expect(code == RelayError.Code.enrollmentInvalid.rawValue) } else {
                Issue.record("expected enrollment_invalid, got \(wrongCode)")
            }
            let code = try await KeyDirectory(store: try relay.store).enroll(relay.gp.handle, now: .now())
            let taken = try await relay.exchange { challenge, binding in
                [.register(RegisterRequest(handle: relay.gp.handle, enrollmentCode: Array(code.characters.utf8), challenge: challenge, channelBinding: binding, signedBy: SigningKey()))]
            }
            if case .error(let code, _) = taken.first { #expect(code == RelayError.Code.handleTaken.rawValue) } else {
                Issue.record("expected handle_taken, got \(taken)")
            }
        }
    }
}

extension RelayDirectoryLiveTests {
    /// A frame type from a newer client is answered with unknown_frame_type and the connection goes on.
    @Test func unknownTypesAfterLoginAreAnsweredNotFatal() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true)) { relay in
            let (channel, info) = try await relay.connect()
            try await channel.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
                guard case .challenge(let challenge) = try RelayMessage(decoding: try #require(try await frames.next())) else { return }
                let login = LoginRequest(handle: relay.gp.handle, challenge: challenge, channelBinding: info.channelBinding, signedBy: relay.gp.key)
                try await outbound.write(RelayMessage.login(login).frame(requestID: 1))
                #expect(try RelayMessage(decoding: try #require(try await frames.next())) == .loginAccepted)
                try await outbound.write(Frame(type: 0x7777, requestID: 2, body: [1, 2, 3]))
                let refused = try #require(try await frames.next())
                #expect(refused.requestID == 2)
                guard case .error(let code, _) = try RelayMessage(decoding: refused) else { return }
                #expect(code == RelayError.Code.unknownFrameType.rawValue)
                try await outbound.write(RelayMessage.fetch(after: 0, limit: 1).frame(requestID: 3))
                let next = try #require(try await frames.next())
                #expect(next.requestID == 3)
                #expect(try RelayMessage(decoding: next) == .envelopes([]))
            }
        }
    }
}

@Suite("relay limits", .serialized)
struct RelayLimitTests {
    /// Reads the challenge, then waits for what the relay sends next and whether it closes.
    func nextAfterChallenge(_ channel: NIOAsyncChannel<Frame, Frame>, send: Frame? = nil) async throws -> (RelayMessage?, closed: Bool) {
        try await channel.executeThenClose { inbound, outbound in
            var frames = inbound.makeAsyncIterator()
            _ = try await frames.next()
            if let send { try await outbound.write(send) }
            let next = try await frames.next().map { try RelayMessage(decoding: $0) }
            let after = try? await frames.next()
            return (next, after == nil)
        }
    }

    @Test func noLoginInTimeIsATimeout() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true) { $0.loginTimeout = .seconds(1) }) { relay in
            let (channel, _) = try await relay.connect()
            // Everything the relay sends until it closes: the challenge (unless the timeout beat the session to it on a
            // busy machine), then the timeout error.
            let messages = try await channel.executeThenClose { inbound, _ in
                var all: [RelayMessage] = []
                for try await frame in inbound { all.append(try RelayMessage(decoding: frame)) }
                return all
            }
            #expect(messages.last == .error(code: RelayError.Code.timeout.rawValue, detail: "no login within 1 s"))
        }
    }

    @Test func anIdleConnectionIsClosedEvenAfterLogin() async throws {
        // 10 s: long enough that a busy machine still logs in before it (at 4 s, three loaded full runs in one day had
        // the timeout reach the connection before its challenge did).
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true) { $0.idleTimeout = .seconds(10) }) { relay in
            let (channel, info) = try await relay.connect()
            let outcome: (RelayMessage?, Bool) = try await channel.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
                guard case .challenge(let challenge) = try RelayMessage(decoding: try #require(try await frames.next())) else {
                    throw RelayError(.unexpectedFrame, "no challenge")
                }
                let login = LoginRequest(handle: relay.gp.handle, challenge: challenge, channelBinding: info.channelBinding, signedBy: relay.gp.key)
                try await outbound.write(RelayMessage.login(login).frame(requestID: 1))
                #expect(try RelayMessage(decoding: try #require(try await frames.next())) == .loginAccepted)
                let next = try await frames.next().map { try RelayMessage(decoding: $0) }
                return (next, (try? await frames.next()) == nil)
            }
            guard case .error(let code, _) = outcome.0 else {
                Issue.record("expected an error frame, got \(String(describing: outcome.0))")
                return
            }
            #expect(code == RelayError.Code.timeout.rawValue)
            #expect(outcome.1)
        }
    }

    @Test func connectionsPerAddressAreCapped() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true) { $0.maximumConnectionsPerAddress = 2 }) { relay in
            let first = try await relay.connect()
            let second = try await relay.connect()
            // The third is closed before its TLS handshake completes.
            await #expect(throws: (any Error).self) { _ = try await relay.connect() }
            try await first.0.executeThenClose { _, _ in }
            try await second.0.executeThenClose { _, _ in }
            // Once they are gone, a new one is served.
            var served = false
            for _ in 0..<50 where !served {
                if let (channel, _) = try? await relay.connect() {
                    served = true
                    try await channel.executeThenClose { _, _ in }
                } else {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            #expect(served)
        }
    }
}

func relayShell(_ command: String) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
}
