import CurbsideTLS
import CurbsideTestSupport
import CurbsideWire
import Foundation
import Testing

@testable import CurbsideClient
@testable import CurbsideRelay

/// The client's bound login (spec/relay.md §Bound login): used by default, and against a relay that refuses it, the
/// fallback to the challenge login and the profile's memory of the refusal.
@Suite("bound login from the client", .serialized)
struct BoundLoginClientTests {
    @Test func aConnectionOpenedWithABoundLoginIsLoggedIn() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true)) { relay in
            let login = BoundLogin(handle: relay.gp.handle, identity: relay.gp.key)
            let connection = try await RelayConnection.open(host: "127.0.0.1", port: relay.port, tls: try RelayConnectionTests.clientTLS(), loggingIn: login)
            #expect(try await connection.request(.fetchNotices(after: 0)) == .notices([]))
            await connection.close()
            // With another key: the relay's refusal, typed.
            let wrong = BoundLogin(handle: relay.gp.handle, identity: SigningKey())
            let error = await #expect(throws: RelayClientError.self) {
                _ = try await RelayConnection.open(host: "127.0.0.1", port: relay.port, tls: try RelayConnectionTests.clientTLS(), loggingIn: wrong)
            }
            #expect(error?.relayCode == .loginFailed)
        }
    }

    @Test func aRelayWithoutTheBoundLoginAnswersUnknownFrameType() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true) { $0._testOnly_refusesBoundLogin = true }) { relay in
            let login = BoundLogin(handle: relay.gp.handle, identity: relay.gp.key)
            let error = await #expect(throws: RelayClientError.self) {
                try await RelayConnection.withConnection(host: "127.0.0.1", port: relay.port, tls: try RelayConnectionTests.clientTLS(), loggingIn: login) { _ in }
            }
            #expect(error?.relayCode == .unknownFrameType)
        }
    }

    @Test func aClientUsesTheBoundLoginAndRemembersNothingWhenTheRelayTakesIt() async throws {
        try await withStopping(try await Providers.start(inMemory: true)) { providers in
            let gp = try await providers.create("amara.gp")
            _ = try await gp.sync()
            #expect(try await gp.database.setting(BoundLoginRefusal.settingKey) == nil)
            #expect(await gp.relayTakesBoundLogin())
        }
    }

    /// Against a relay that refuses the bound login, a sync still works (a second connection, with the challenge),
    /// the refusal is kept in the profile, later connections go straight to the challenge login, and the bound login
    /// is tried again after `boundLoginRetryInterval`.
    @Test func aRelayThatRefusesTheBoundLoginIsRememberedAndAskedAgainLater() async throws {
        try await withStopping(try await Providers.start(inMemory: true) { $0._testOnly_refusesBoundLogin = true }) { providers in
            let gp = try await providers.create("amara.gp")
            #expect(await gp.relayTakesBoundLogin())
            _ = try await gp.sync()
            #expect(!(await gp.relayTakesBoundLogin()))
            _ = try await gp.sync()

            let reopened = try await Client.open(home: gp.home, passphrase: Providers.passphrase)
            #expect(!(await reopened.relayTakesBoundLogin()), "the refusal is kept in the profile")
            let later = Timestamp.now().adding(seconds: Client.boundLoginRetryInterval + 60)
            #expect(await reopened.relayTakesBoundLogin(now: later), "asked again after the retry interval")
            _ = try await reopened.sync()
        }
    }

    @Test func aRefusalIsForTheRelayItCameFrom() throws {
        let relay = RelayEndpoint(host: "relay.example", port: 4433, fingerprint: String(repeating: "ab", count: 32))
        let moved = RelayEndpoint(host: "relay2.example", port: 4433, fingerprint: relay.fingerprint)
        let refusal = BoundLoginRefusal(relay: relay, refusedAt: 1_000_000)
        let interval = Client.boundLoginRetryInterval
        #expect(!refusal.allowsBoundLogin(to: relay, now: Timestamp(millisecondsSince1970: 1_000_000), interval: interval))
        #expect(!refusal.allowsBoundLogin(to: relay, now: Timestamp(millisecondsSince1970: 1_000_000 + interval * 1000 - 1), interval: interval))
        #expect(refusal.allowsBoundLogin(to: relay, now: Timestamp(millisecondsSince1970: 1_000_000 + interval * 1000), interval: interval))
        #expect(refusal.allowsBoundLogin(to: moved, now: Timestamp(millisecondsSince1970: 1_000_000), interval: interval))
    }
}
