import CurbsideTLS
import CurbsideTestSupport
import CurbsideWire
import Foundation
import NIOCore
import Testing

@testable import CurbsideRelay

/// The bound login against the real relay (spec/relay.md §Bound login): sent before the challenge is read, checked
/// as a login is, and refused as a login is.
@Suite("bound login on loopback", .serialized)
struct BoundLoginLiveTests {
    /// Connects, sends `make(channel binding)` as the first frame without reading anything, and returns every frame
    /// the relay sends until it closes (each use expects a refusal, after which the relay closes).
    private func firstFlight(_ relay: FileRelay, _ make: ([UInt8]) -> RelayMessage) async throws -> [Frame] {
        let (channel, info) = try await relay.connect()
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(make(info.channelBinding).frame(requestID: 7))
            var received: [Frame] = []
            for try await frame in inbound { received.append(frame) }
            return received
        }
    }

    private func boundLogin(_ who: (handle: Handle, key: SigningKey), _ binding: [UInt8]) -> RelayMessage {
        .boundLogin(BoundLoginRequest(handle: who.handle, channelBinding: binding, signedBy: who.key))
    }

    @Test func aBoundLoginSentBeforeTheChallengeIsAcceptedAfterIt() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true)) { relay in
            let (channel, info) = try await relay.connect()
            try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(boundLogin(relay.gp, info.channelBinding).frame(requestID: 7))
                var frames = inbound.makeAsyncIterator()
                guard case .challenge = try RelayMessage(decoding: try #require(try await frames.next())) else {
                    Issue.record("the first frame is not the challenge")
                    return
                }
                let accepted = try #require(try await frames.next())
                #expect(accepted.requestID == 7)
                #expect(try RelayMessage(decoding: accepted) == .loginAccepted)
                // Logged in: a request is served.
                try await outbound.write(RelayMessage.fetchNotices(after: 0).frame(requestID: 8))
                let notices = try #require(try await frames.next())
                #expect(notices.requestID == 8)
                #expect(try RelayMessage(decoding: notices) == .notices([]))
            }
        }
    }

    /// The failures of spec/relay.md §Bound login: each is `login_failed` answering the frame's request id, then the
    /// relay closes.
    @Test(arguments: ["another connection's binding", "another key", "a changed signature byte", "a revoked account", "the challenge login's signature"])
    func aBoundLoginThatDoesNotVerifyIsRefusedAndClosed(_ failure: String) async throws {
        try await withStopping(try await FileRelay(accounts: .all, inMemory: true)) { relay in
            let captured: RelayMessage?
            if failure == "another connection's binding" {
                // Signed on connection 1, replayed on connection 2.
                let (first, firstInfo) = try await relay.connect()
                try await first.executeThenClose { _, _ in }
                captured = boundLogin(relay.gp, firstInfo.channelBinding)
            } else {
                captured = nil
            }
            if failure == "a revoked account" {
                #expect(try await relay.store.revoke(relay.derm.handle, droppingQueue: false, now: .now()) != nil)
            }
            let frames = try await firstFlight(relay) { binding in
                switch failure {
                case "another key": return boundLogin((relay.gp.handle, relay.cardio.key), binding)
                case "a revoked account": return boundLogin(relay.derm, binding)
                case "a changed signature byte":
                    let login = BoundLoginRequest(handle: relay.gp.handle, channelBinding: binding, signedBy: relay.gp.key)
                    var body = login.encoded
                    body[body.count - 1] ^= 0x80
                    return .boundLogin(try! BoundLoginRequest(decoding: body))
                case "the challenge login's signature":
                    // What a classic login on this connection signs with an all-zero nonce; the labels differ.
                    let login = LoginRequest(
                        handle: relay.gp.handle,
                        challenge: LoginChallenge(nonce: [UInt8](repeating: 0, count: 32)),
                        channelBinding: binding,
                        signedBy: relay.gp.key
                    )
                    return .boundLogin(try! BoundLoginRequest(decoding: login.encoded))
                default: return captured!
                }
            }
            try #require(frames.count == 2, "\(failure): the challenge, the refusal, then the close")
            guard case .challenge = try RelayMessage(decoding: frames[0]) else {
                Issue.record("\(failure): the first frame is not the challenge")
                return
            }
            #expect(frames[1].requestID == 7, "\(failure)")
            guard case .error(let code, _) = try RelayMessage(decoding: frames[1]) else {
                Issue.record("\(failure): not an error frame")
                return
            }
            #expect(code == RelayError.Code.loginFailed.rawValue, "\(failure)")
        }
    }

    @Test func aBoundLoginAfterALoginIsUnexpected() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true)) { relay in
            // A second login on the logged-in connection: refused, and the connection closes.
            let (channel, info) = try await relay.connect()
            try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(boundLogin(relay.gp, info.channelBinding).frame(requestID: 1))
                try await outbound.write(boundLogin(relay.gp, info.channelBinding).frame(requestID: 2))
                var frames = inbound.makeAsyncIterator()
                _ = try await frames.next()  // the challenge
                #expect(try RelayMessage(decoding: try #require(try await frames.next())) == .loginAccepted)
                let refused = try #require(try await frames.next())
                #expect(refused.requestID == 2)
                guard case .error(let code, _) = try RelayMessage(decoding: refused) else {
                    Issue.record("not an error frame")
                    return
                }
                #expect(code == RelayError.Code.unexpectedFrame.rawValue)
                #expect(try await frames.next() == nil, "the relay closes after unexpected_frame")
            }
        }
    }

    /// Failed bound logins count for the rate limit as failed logins do: past the limit the answer is `rate_limited`,
    /// for a classic login as well.
    @Test func failedBoundLoginsCountForTheRateLimit() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true) { $0.maximumLoginFailures = 2 }) { relay in
            for _ in 0..<2 {
                let frames = try await firstFlight(relay) { boundLogin((relay.gp.handle, SigningKey()), $0) }
                #expect(try RelayMessage(decoding: frames[1]).errorCode == RelayError.Code.loginFailed.rawValue)
            }
            let frames = try await firstFlight(relay) { boundLogin(relay.gp, $0) }
            #expect(try RelayMessage(decoding: frames[1]).errorCode == RelayError.Code.rateLimited.rawValue)
        }
    }

    /// A relay older than the bound login, as the test switch makes this one: `unknown_frame_type` with the frame's
    /// request id, then the connection closes (spec/relay.md §Frame types), while the challenge login still works.
    @Test func aRelayWithoutTheBoundLoginRefusesItAsUnknown() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true) { $0._testOnly_refusesBoundLogin = true }) { relay in
            let frames = try await firstFlight(relay) { boundLogin(relay.gp, $0) }
            #expect(frames.count == 2)
            #expect(frames.last?.requestID == 7)
            #expect(try frames.last.map { try RelayMessage(decoding: $0).errorCode } == RelayError.Code.unknownFrameType.rawValue)
            try await relay.session(relay.gp) { _ in }
        }
    }
}

extension RelayMessage {
    /// The code of an error frame; nil for any other message.
    fileprivate var errorCode: UInt16? {
        if case .error(let code, _) = self { code } else { nil }
    }
}
