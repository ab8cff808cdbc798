import CurbsideTestSupport
import CurbsideWire
import Foundation
import Testing

@testable import CurbsideRelay

private let now = Timestamp(millisecondsSince1970: 1_800_000_000_000)

@Suite("key directory")
struct KeyDirectoryTests {
    func registered(_ provider: ProviderKeys, in directory: KeyDirectory) async throws {
        let code = try await directory.enroll(provider.handle, now: now)
        try await directory.register(provider.handle, identityKey: provider.key.verifyingKey, code: code, now: now)
    }

    @Test(arguments: StoreKind.allCases) func enrollmentCodesWorkOnceForTheirHandleBeforeExpiry(_ kind: StoreKind) async throws {
        let directory = KeyDirectory(store: try await kind.makeStore())
        let derm = ProviderKeys("osei.derm"), gp = ProviderKeys("amara.gp")
        let code = try await directory.enroll(derm.handle, now: now, lifetimeSeconds: 60)
        #expect(EnrollmentCode(code.description.lowercased()) == code)

        let wrongHandle = await #expect(throws: RelayError.self) {
            try await directory.register(gp.handle, identityKey: gp.key.verifyingKey, code: code, now: now)
        }
        #expect(wrongHandle?.code == .enrollmentInvalid)
        let expired = await #expect(throws: RelayError.self) {
            try await directory.register(derm.handle, identityKey: derm.key.verifyingKey, code: code, now: now.adding(seconds: 60))
        }
        #expect(expired?.code == .enrollmentInvalid)
        try await directory.register(derm.handle, identityKey: derm.key.verifyingKey, code: code, now: now)
        #expect(try await directory.store.identityKey(for: derm.handle) == derm.key.verifyingKey)
        let reused = await #expect(throws: RelayError.self) {
            try await directory.register(derm.handle, identityKey: derm.key.verifyingKey, code: code, now: now)
        }
        #expect(reused?.code == .enrollmentInvalid)
    }

    /// A person's typing is normalised by the client; on the wire only the 20 upper-case code characters count.
    @Test(arguments: StoreKind.allCases) func aRegisterRequestMustCarryTheNormalisedCode(_ kind: StoreKind) async throws {
        let directory = KeyDirectory(store: try await kind.makeStore())
        let derm = ProviderKeys("osei.derm")
        let code = try await directory.enroll(derm.handle, now: now)
        let challenge = LoginChallenge.random()
        let binding = [UInt8](repeating: 1, count: 32)
        for variant in [code.characters.lowercased(), code.characters.replacingOccurrences(of: "0", with: "O")] where variant != code.characters {
            let request = RegisterRequest(
                handle: derm.handle,
                enrollmentCode: Array(variant.utf8),
                challenge: challenge,
                channelBinding: binding,
                signedBy: derm.key
            )
            let refused = await #expect(throws: RelayError.self) { try await directory.register(request, now: now) }
            #expect(refused?.code == .enrollmentInvalid)
        }
        let exact = RegisterRequest(
            handle: derm.handle,
            enrollmentCode: Array(code.characters.utf8),
            challenge: challenge,
            channelBinding: binding,
            signedBy: derm.key
        )
        try await directory.register(exact, now: now)
        #expect(try await directory.store.identityKey(for: derm.handle) == derm.key.verifyingKey)
    }

    @Test(arguments: StoreKind.allCases) func aHandleOrKeyCannotBeTakenTwice(_ kind: StoreKind) async throws {
        let directory = KeyDirectory(store: try await kind.makeStore())
        let derm = ProviderKeys("osei.derm")
        try await registered(derm, in: directory)
        let second = try await directory.enroll(derm.handle, now: now)
        let taken = await #expect(throws: RelayError.self) {
            try await directory.register(derm.handle, identityKey: SigningKey().verifyingKey, code: second, now: now)
        }
        #expect(taken?.code == .handleTaken)
        let other = try Handle("osei.other")
        let third = try await directory.enroll(other, now: now)
        let sameKey = await #expect(throws: RelayError.self) {
            try await directory.register(other, identityKey: derm.key.verifyingKey, code: third, now: now)
        }
        #expect(sameKey?.code == .handleTaken)
    }

    @Test(arguments: StoreKind.allCases) func prekeysMustBeSignedByTheAccount(_ kind: StoreKind) async throws {
        let directory = KeyDirectory(store: try await kind.makeStore())
        let derm = ProviderKeys("osei.derm")
        try await registered(derm, in: directory)
        let mallory = SigningKey()
        let badSigned = await #expect(throws: RelayError.self) {
            try await directory.publish(for: derm.handle, signedPrekey: derm.signedPrekey(signer: mallory), oneTimePrekeys: [])
        }
        #expect(badSigned?.code == .prekeyRejected)
        let badOneTime = await #expect(throws: RelayError.self) {
            try await directory.publish(
                for: derm.handle,
                signedPrekey: derm.signedPrekey(),
                oneTimePrekeys: derm.oneTimePrekeys(0..<3) + derm.oneTimePrekeys(3..<4, signer: mallory)
            )
        }
        #expect(badOneTime?.code == .prekeyRejected)
        #expect(try await directory.store.statistics().oneTimePrekeys == 0, "nothing stored when one prekey fails")
        let unknown = await #expect(throws: RelayError.self) {
            try await directory.publish(for: try Handle("nobody"), signedPrekey: derm.signedPrekey(), oneTimePrekeys: [])
        }
        #expect(unknown?.code == .unknownHandle)
    }

    @Test(arguments: StoreKind.allCases) func oneTimePrekeysAreCappedPerAccount(_ kind: StoreKind) async throws {
        var directory = KeyDirectory(store: try await kind.makeStore())
        directory.maximumOneTimePrekeys = 5
        let derm = ProviderKeys("osei.derm")
        try await registered(derm, in: directory)
        try await directory.publish(for: derm.handle, signedPrekey: derm.signedPrekey(), oneTimePrekeys: derm.oneTimePrekeys(0..<4))
        let over = await #expect(throws: RelayError.self) {
            try await directory.publish(for: derm.handle, signedPrekey: nil, oneTimePrekeys: derm.oneTimePrekeys(4..<6))
        }
        #expect(over?.code == .quotaExceeded)
        #expect(try await directory.store.oneTimePrekeyCount(for: derm.handle) == 4)
    }

    @Test(arguments: StoreKind.allCases) func bundlesVerifyAndHandOutEachOneTimePrekeyOnce(_ kind: StoreKind) async throws {
        let directory = KeyDirectory(store: try await kind.makeStore(), lowWaterMark: 2)
        let derm = ProviderKeys("osei.derm")
        try await registered(derm, in: directory)
        let noBundle = await #expect(throws: RelayError.self) { try await directory.fetchBundle(for: derm.handle) }
        #expect(noBundle?.code == .unknownHandle)
        try await directory.publish(for: derm.handle, signedPrekey: derm.signedPrekey(), oneTimePrekeys: derm.oneTimePrekeys(0..<3))

        var ids: [UInt32?] = []
        var low: [Bool] = []
        for _ in 0..<4 {
            let (bundle, runningLow) = try await directory.fetchBundle(for: derm.handle)
            try bundle.verify(now: now, expecting: Party(identityKey: derm.key.verifyingKey, handle: derm.handle))
            ids.append(bundle.oneTimePrekey?.id)
            low.append(runningLow)
        }
        #expect(ids == [0, 1, 2, nil])
        #expect(low == [false, true, true, true])
    }

    /// A bundle fetched past the requester's share carries no one-time prekey and takes none from the store.
    @Test(arguments: StoreKind.allCases) func aBundleWithoutAOneTimePrekeyLeavesThemAll(_ kind: StoreKind) async throws {
        let directory = KeyDirectory(store: try await kind.makeStore())
        let derm = ProviderKeys("osei.derm")
        try await registered(derm, in: directory)
        try await directory.publish(for: derm.handle, signedPrekey: derm.signedPrekey(), oneTimePrekeys: derm.oneTimePrekeys(0..<3))
        let (bare, left) = try await directory.fetchBundleCounting(for: derm.handle, withOneTimePrekey: false)
        #expect(bare.oneTimePrekey == nil && left == 3)
        try bare.verify(now: now, expecting: Party(identityKey: derm.key.verifyingKey, handle: derm.handle))
        #expect(try await directory.fetchBundleCounting(for: derm.handle).bundle.oneTimePrekey?.id == 0)
    }

    /// Many fetches at once through two relay processes' stores on the same data (two pools on one PostgreSQL
    /// database, two connections to one SQLite file): no one-time prekey goes out twice.
    @Test(arguments: StoreKind.allCases) func concurrentFetchesNeverShareAOneTimePrekey(_ kind: StoreKind) async throws {
        let (first, second, cleanUp) = try await kind.makeStorePair()
        defer { cleanUp() }
        let directories = [KeyDirectory(store: first), KeyDirectory(store: second)]
        let derm = ProviderKeys("osei.derm")
        try await registered(derm, in: directories[0])
        try await directories[1].publish(for: derm.handle, signedPrekey: derm.signedPrekey(), oneTimePrekeys: derm.oneTimePrekeys(0..<50))

        let handedOut = try await withThrowingTaskGroup(of: UInt32?.self) { group in
            for index in 0..<80 {
                let directory = directories[index % 2]
                group.addTask { try await directory.fetchBundle(for: derm.handle).bundle.oneTimePrekey?.id }
            }
            var all: [UInt32?] = []
            for try await id in group { all.append(id) }
            return all
        }
        let ids = handedOut.compactMap { $0 }
        #expect(ids.count == 50)
        #expect(Set(ids).count == 50)
        #expect(handedOut.count - ids.count == 30)
        #expect(try await first.statistics().oneTimePrekeys == 0)
    }

    @Test func storeSurvivesReopening() async throws {
        let directoryURL = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-store-\(UUID())")
        try FileManager.default.createDirectory(at: directoryURL, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directoryURL) }
        let path = directoryURL.appendingPathComponent("relay.sqlite").path
        let derm = ProviderKeys("osei.derm")
        do {
            let directory = KeyDirectory(store: try SQLiteRelayStore(path: path))
            try await registered(derm, in: directory)
        }
        let reopened = try SQLiteRelayStore(path: path)
        #expect(try await reopened.identityKey(for: derm.handle) == derm.key.verifyingKey)
        #expect(try await reopened.statistics().accounts == 1)
    }
}
