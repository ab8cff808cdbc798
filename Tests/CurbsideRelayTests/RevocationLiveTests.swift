import CurbsideTestSupport
import CurbsideWire
import Foundation
import Testing

@testable import CurbsideRelay

/// A running relay and an operator's command on the same store (spec/relay.md §Revocation): the revoked or replaced
/// key's open connection is told `login_failed` and closed, its new logins fail, and nobody else's connection is
/// touched.
@Suite("revocation, live", .timeLimit(.minutes(1)))
struct RevocationLiveTests {
    /// Checks every 50 ms, so the tests wait for the relay's next check and never for a fixed time.
    func relay() async throws -> FileRelay {
        try await FileRelay { $0.accountCheckInterval = .milliseconds(50) }
    }

    @Test func aRevokedKeysOpenConnectionIsClosedAndItsLoginsFail() async throws {
        try await withStopping(try await relay()) { relay in
            try await relay.session(relay.gp) { bystander in
                try await relay.session(relay.derm) { session in
                    // The operator's command: another store on the same file, as another process has.
                    #expect(try await relay.store.revoke(relay.derm.handle, droppingQueue: false, now: .now()) != nil)
                    // The relay's next check closes the connection after one error frame, request id 0.
                    let frames = try await session.drain()
                    #expect(frames.map(\.requestID) == [0])
                    guard case .error(let code, _) = try RelayMessage(decoding: try #require(frames.first)) else {
                        Issue.record("not an error frame: \(frames)")
                        return
                    }
                    #expect(code == RelayError.Code.loginFailed.rawValue)
                }
                // Someone else's connection goes on.
                #expect(try await bystander.request(.fetchNotices(after: 0)) == .notices([]))
            }
            let login = try await relay.exchange { challenge, binding in
                [.login(LoginRequest(handle: relay.derm.handle, challenge: challenge, channelBinding: binding, signedBy: relay.derm.key))]
            }
            guard case .error(let code, _) = login.first else {
                Issue.record("the revoked key logged in: \(login)")
                return
            }
            #expect(code == RelayError.Code.loginFailed.rawValue)
        }
    }

    @Test func aReplacedKeysConnectionIsClosedAndTheNewKeysIsNot() async throws {
        try await withStopping(try await relay()) { relay in
            let newKey = SigningKey()
            let directory = KeyDirectory(store: try relay.store)
            try await relay.session(relay.derm) { old in
                let (_, code) = try #require(try await directory.replace(relay.derm.handle, now: .now()))
                try await directory.register(relay.derm.handle, identityKey: newKey.verifyingKey, code: code, now: .now())
                try await relay.session((relay.derm.handle, newKey)) { new in
                    let frames = try await old.drain()
                    #expect(frames.count == 1 && frames.first?.requestID == 0)
                    // Checked again after the old one was closed: the new key's connection is served.
                    #expect(try await new.request(.fetchNotices(after: 0)) == .notices([]))
                }
            }
        }
    }
}
