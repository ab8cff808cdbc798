import CurbsideTestSupport
import CurbsideWire
import Foundation
import Testing

@testable import CurbsideRelay

private let now = Timestamp(millisecondsSince1970: 1_800_000_000_000)

/// spec/relay.md §Checking an enrollment code: the relay answers as the registration would, and changes nothing.
@Suite("checking an enrollment code")
struct EnrollmentCheckTests {
    let derm = try! Handle("osei.derm"), gp = try! Handle("amara.gp")

    @Test(arguments: StoreKind.allCases) func theStoreAnswersAsRegistrationWouldAndChangesNothing(_ kind: StoreKind) async throws {
        let directory = KeyDirectory(store: try await kind.makeStore())
        let code = try await directory.enroll(derm, now: now, lifetimeSeconds: 60)
        let check = EnrollmentCheck(handle: derm, enrollmentCode: code)
        // Usable, as often as asked: nothing is spent.
        try await directory.checkEnrollment(check, now: now)
        try await directory.checkEnrollment(check, now: now.adding(seconds: 59))
        #expect(try await directory.store.pendingEnrollments(at: now).map(\.handle) == [derm])

        func refusal(_ check: EnrollmentCheck, at time: Timestamp) async -> RelayError.Code? {
            do {
                try await directory.checkEnrollment(check, now: time)
                return nil
            } catch {
                return (error as? RelayError)?.code
            }
        }
        #expect(await refusal(check, at: now.adding(seconds: 60)) == .enrollmentInvalid, "expired")
        #expect(await refusal(EnrollmentCheck(handle: gp, enrollmentCode: code), at: now) == .enrollmentInvalid, "another handle's code")
        #expect(await refusal(EnrollmentCheck(handle: derm, enrollmentCode: EnrollmentCode.random()), at: now) == .enrollmentInvalid, "unknown")
        // On the wire a code is already normalised: lower case or letters outside the alphabet are not a code.
        var writer = WireWriter()
        derm.encode(to: &writer)
        writer.writeBytes(Array(code.characters.lowercased().utf8))
        #expect(await refusal(try EnrollmentCheck(decoding: writer.bytes), at: now) == .enrollmentInvalid, "not normalised")

        // The code still registers; afterwards it is used, and the handle is taken.
        try await directory.register(derm, identityKey: SigningKey().verifyingKey, code: code, now: now)
        #expect(await refusal(check, at: now) == .enrollmentInvalid, "used")
        let another = try await directory.enroll(derm, now: now)
        #expect(await refusal(EnrollmentCheck(handle: derm, enrollmentCode: another), at: now) == .handleTaken)
    }

    /// On a live relay: a usable code is answered `enrollment_usable` and the same connection then registers with
    /// it; a wrong code is refused and the connection closed, as a registration would be.
    @Test func aLiveRelayAnswersBeforeRegistration() async throws {
        try await withStopping(try await FileRelay(accounts: .gpOnly, inMemory: true)) { relay in
            let code = try await KeyDirectory(store: try relay.store).enroll(derm, now: .now())
            let key = SigningKey()
            let derm = self.derm
            let replies = try await relay.exchange { challenge, binding in
                [
                    .checkEnrollment(EnrollmentCheck(handle: derm, enrollmentCode: code)),
                    .register(RegisterRequest(handle: derm, enrollmentCode: Array(code.characters.utf8), challenge: challenge, channelBinding: binding, signedBy: key)),
                ]
            }
            #expect(replies == [.enrollmentUsable, .registered])

            // Used now: refused with enrollment_invalid, as a registration would be (the relay then closes).
            let refused = try await relay.exchange { _, _ in [.checkEnrollment(EnrollmentCheck(handle: derm, enrollmentCode: code))] }
            #expect(refused == [.error(RelayError(.enrollmentInvalid, "no usable enrollment code for osei.derm"))])

            // After login, the check is out of place.
            let afterLogin = try await relay.session(relay.gp) { session in
                try await session.request(.checkEnrollment(EnrollmentCheck(handle: derm, enrollmentCode: code)))
            }
            if case .error(let number, _) = afterLogin { #expect(number == RelayError.Code.unexpectedFrame.rawValue) } else {
                Issue.record("expected unexpected_frame, got \(afterLogin)")
            }
        }
    }
}
