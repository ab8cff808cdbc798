import CurbsideTestSupport
import CurbsideWire
import Foundation
import GRDB
import Testing

@testable import CurbsideRelay

private let now = Timestamp(millisecondsSince1970: 1_800_000_000_000)

/// What operators do to accounts (spec/relay.md §Revocation), on both stores: list them, see their last login, and
/// revoke one, its queue kept or dropped.
@Suite("accounts and revocation")
struct AccountRevocationTests {
    let gp = try! Handle("amara.gp"), derm = try! Handle("osei.derm"), cardio = try! Handle("kofi.cardio")

    @Test(arguments: StoreKind.allCases) func accountsListKeysQueuesAndLastLogins(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        _ = try await store.enqueue([1, 2, 3], from: gp, to: derm, now: now, expiresAt: now.adding(seconds: 60))
        _ = try await store.enqueue([4, 5], from: cardio, to: derm, now: now, expiresAt: now.adding(seconds: 60))
        var accounts = try await store.accounts()
        #expect(accounts.map(\.handle) == [gp, cardio, derm])
        let dermAccount = try #require(accounts.last)
        #expect(dermAccount.identityKey == (try await store.identityKey(for: derm)))
        #expect(dermAccount.queuedEnvelopes == 2 && dermAccount.queuedBytes == 5)
        #expect(dermAccount.lastSeenAt == nil && accounts[0].queuedEnvelopes == 0)
        // What a login reads, in one read: the key and the last login (none yet); nothing for an unknown handle.
        #expect(try await store.loginKey(for: derm)?.key == dermAccount.identityKey)
        #expect(try await store.loginKey(for: derm)?.lastSeenAt == nil)
        #expect(try await store.loginKey(for: try Handle("nobody.here")) == nil)

        try await store.recordLogin(derm, at: now)
        #expect(try await store.loginKey(for: derm)?.lastSeenAt == now)
        // Kept to the minute: a login 59 s later writes nothing, one a minute after the recorded one does.
        try await store.recordLogin(derm, at: now.adding(seconds: 59))
        accounts = try await store.accounts()
        #expect(accounts.last?.lastSeenAt == now)
        try await store.recordLogin(derm, at: now.adding(seconds: 60))
        #expect(try await store.accounts().last?.lastSeenAt == now.adding(seconds: 60))
        // Someone else's login, or an unknown handle's, changes nothing of osei.derm's.
        try await store.recordLogin(try Handle("nobody.here"), at: now.adding(seconds: 600))
        #expect(try await store.accounts().last?.lastSeenAt == now.adding(seconds: 60))
    }

    /// Codes not used and not expired, by handle; never the code.
    @Test(arguments: StoreKind.allCases) func pendingEnrollmentsAreTheUnusedUnexpiredCodes(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore()
        for (handle, code, lifetime) in [(derm, "b", 120), (gp, "a", 60), (derm, "c", 30), (cardio, "d", 10)] {
            try await store.addEnrollment(handle: handle, codeHash: SHA256.hash(Array(code.utf8)), expiresAt: now.adding(seconds: UInt64(lifetime)))
        }
        try await store.register(handle: gp, identityKey: SigningKey().verifyingKey, codeHash: SHA256.hash(Array("a".utf8)), now: now)
        let pending = try await store.pendingEnrollments(at: now.adding(seconds: 10))
        #expect(pending == [PendingEnrollment(handle: derm, expiresAt: now.adding(seconds: 30)), PendingEnrollment(handle: derm, expiresAt: now.adding(seconds: 120))])
    }

    /// `KeyDirectory.replace`: the old key is revoked with its queue kept, and the code it returns registers a new key.
    @Test(arguments: StoreKind.allCases) func replacingAKeyRevokesItAndEnrollsTheHandleAgain(_ kind: StoreKind) async throws {
        let directory = KeyDirectory(store: try await kind.makeStore().withProviders())
        let old = try #require(try await directory.store.identityKey(for: derm))
        _ = try await directory.store.enqueue([1], from: gp, to: derm, now: now, expiresAt: now.adding(seconds: 60))
        #expect(try await directory.replace(try Handle("nobody.here"), now: now) == nil)
        let (revocation, code) = try #require(try await directory.replace(derm, now: now))
        #expect(revocation.identityKey == old && revocation.keptEnvelopes == 1)
        #expect(try await directory.store.identityKey(for: derm) == nil)
        let new = SigningKey().verifyingKey
        try await directory.register(derm, identityKey: new, code: code, now: now)
        #expect(try await directory.store.identityKey(for: derm) == new)
    }

    @Test(arguments: StoreKind.allCases) func revokingKeepsTheQueueWhenAsked(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        let key = try #require(try await store.identityKey(for: derm))
        let owner = SigningKey()
        try await store.storePrekeys(
            for: derm,
            signedPrekey: SignedPrekey(id: 1, publicKey: AgreementKey.Private().publicKey, expiresAt: now.adding(seconds: 86_400), signedBy: owner),
            oneTimePrekeys: []
        )
        _ = try await store.enqueue([1, 2, 3], from: gp, to: derm, now: now, expiresAt: now.adding(seconds: 60))

        // A code for osei.derm made before the revocation, and one for someone else.
        try await store.addEnrollment(handle: derm, codeHash: SHA256.hash(Array("old code".utf8)), expiresAt: now.adding(seconds: 60))
        try await store.addEnrollment(handle: gp, codeHash: SHA256.hash(Array("gp's code".utf8)), expiresAt: now.adding(seconds: 60))

        let revocation = try #require(try await store.revoke(derm, droppingQueue: false, now: now))
        #expect(revocation.identityKey == key && revocation.voidedCodes == 1)
        #expect(revocation.keptEnvelopes == 1 && revocation.removal.notices.isEmpty)
        // The old code no longer registers the handle, whatever key it brings.
        let oldCode = await #expect(throws: RelayError.self) {
            try await store.register(handle: derm, identityKey: SigningKey().verifyingKey, codeHash: SHA256.hash(Array("old code".utf8)), now: now)
        }
        #expect(oldCode?.code == .enrollmentInvalid)
        #expect(try await store.pendingEnrollments(at: now).map(\.handle) == [gp])
        #expect(try await store.identityKey(for: derm) == nil)
        #expect(try await store.takeBundle(for: derm, withOneTimePrekey: true) == nil)
        #expect(try await store.pending(for: derm, after: 0, limit: 10, maximumBytes: 1 << 20).count == 1)
        #expect(try await store.notices(for: gp, after: 0, limit: 10).isEmpty)
        #expect(!(try await store.accounts().map(\.handle).contains(derm)))
        // Revoking again finds nothing.
        #expect(try await store.revoke(derm, droppingQueue: true, now: now) == nil)

        // The handle can be enrolled again, with a new key; the old one stays out.
        let newKey = SigningKey().verifyingKey
        let code = Array("a new code".utf8)
        try await store.addEnrollment(handle: derm, codeHash: SHA256.hash(code), expiresAt: now.adding(seconds: 60))
        try await store.register(handle: derm, identityKey: newKey, codeHash: SHA256.hash(code), now: now)
        #expect(try await store.identityKey(for: derm) == newKey)
        #expect(try await store.pending(for: derm, after: 0, limit: 10, maximumBytes: 1 << 20).count == 1)
    }

    @Test(arguments: StoreKind.allCases) func droppingTheQueueTellsEachSenderItExpired(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        _ = try await store.enqueue([1, 2, 3], from: gp, to: derm, now: now, expiresAt: now.adding(seconds: 60))
        _ = try await store.enqueue([4, 5], from: cardio, to: derm, now: now, expiresAt: now.adding(seconds: 60))
        // Not osei.derm's: kept.
        _ = try await store.enqueue([6], from: derm, to: gp, now: now, expiresAt: now.adding(seconds: 60))

        let revocation = try #require(try await store.revoke(derm, droppingQueue: true, now: now.adding(seconds: 5)))
        #expect(revocation.keptEnvelopes == 0)
        #expect(revocation.removal.notices.map(\.sender) == [gp, cardio])
        #expect(revocation.removal.notices.allSatisfy { $0.kind == .expired && $0.recipient == derm })
        #expect(try await store.pending(for: derm, after: 0, limit: 10, maximumBytes: 1 << 20).isEmpty)
        #expect(try await store.queueUsage(for: derm).envelopes == 0)
        let told = try await store.notices(for: gp, after: 0, limit: 10)
        #expect(told.map(\.kind) == [.expired])
        #expect(told.first?.envelopeID == EnvelopeID(of: [1, 2, 3]) && told.first?.at == now.adding(seconds: 5))
        #expect(try await store.notices(for: cardio, after: 0, limit: 10).map(\.envelopeID) == [EnvelopeID(of: [4, 5])])
        #expect(try await store.pending(for: gp, after: 0, limit: 10, maximumBytes: 1 << 20).count == 1)
    }

    /// Migration v7 adds last seen: accounts registered before it list with none, and the next login sets it.
    @Test func aV6StoreGainsLastSeenWithItsAccountsKept() async throws {
        let queue = try DatabaseQueue()
        try SQLiteRelayStore.migrator.migrate(queue, upTo: "v6: per-sender queue shares and attachment bytes per envelope")
        let key = SigningKey().verifyingKey
        try await queue.write { db in
            try db.execute(
                sql: "INSERT INTO account (handle, identity_key, registered_at) VALUES (?, ?, ?)",
                arguments: ["osei.derm", Data(key.rawRepresentation), now.signedMilliseconds]
            )
        }
        let store = try SQLiteRelayStore(writer: queue)
        #expect(try await store.accounts() == [
            AccountSummary(handle: derm, identityKey: key, registeredAt: now, lastSeenAt: nil, queuedEnvelopes: 0, queuedBytes: 0)
        ])
        try await store.recordLogin(derm, at: now)
        #expect(try await store.accounts().first?.lastSeenAt == now)
    }

    @Test(arguments: StoreKind.allCases) func identityKeyBytesAreReadForManyHandlesAtOnce(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        #expect(try await store.identityKeyBytes(for: []).isEmpty)
        let many = try (0..<1200).map { try Handle("nobody\($0).here") } + [gp, derm]
        let keys = try await store.identityKeyBytes(for: many)
        #expect(keys.count == 2)
        let gpKey = try await store.identityKey(for: gp), dermKey = try await store.identityKey(for: derm)
        #expect(keys[gp] == gpKey?.rawRepresentation && keys[derm] == dermKey?.rawRepresentation)
    }

    /// A revocation by one process (the operator's command) is seen by another (the relay) at once.
    @Test(arguments: StoreKind.allCases) func aRevocationIsSeenByAnotherProcessOnTheSameData(_ kind: StoreKind) async throws {
        let (relay, operatorCommand, cleanUp) = try await kind.makeStorePair()
        defer { cleanUp() }
        _ = try await relay.withProviders()
        #expect(try await relay.identityKey(for: derm) != nil)
        #expect(try await operatorCommand.revoke(derm, droppingQueue: false, now: now) != nil)
        #expect(try await relay.identityKey(for: derm) == nil)
    }
}
