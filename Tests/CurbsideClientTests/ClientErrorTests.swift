import CurbsideWire
import Testing

@testable import CurbsideClient

/// `ClientError` codes: stable, one meaning each, a category from their number, and a relay's refusal carried
/// through with the relay's own code.
@Suite("client error codes")
struct ClientErrorTests {
    @Test func codesAreUniqueAndLookedUpByNumberAndIdentifier() {
        let codes = ClientError.allCodes
        #expect(Set(codes.map(\.rawValue)).count == codes.count)
        #expect(Set(codes.map(\.identifier)).count == codes.count)
        for code in codes {
            #expect(ClientError.Code(rawValue: code.rawValue) == code)
            #expect(ClientError.Code(identifier: code.identifier) == code)
        }
        #expect(ClientError.Code(rawValue: 510) == nil, "relay codes are the relay's domain, not the client's")
    }

    @Test(arguments: [
        (ClientError.Code.unknownRecipient, ClientError.Category.usage),
        (.invalidArgument, .usage),
        (.wrongPassphrase, .profile),
        (.identityRejected, .profile),
        (.keyChanged, .trust),
        (.safetyNumberMismatch, .trust),
        (.unreachable, .network),
        (.relayUnavailable, .network),
        (.recipientKeysExpired, .network),
        (.refused, .protocol),
        (.invalidBundle, .protocol),
    ])
    func eachCodeHasTheCategoryTheCLIMapsToAnExitStatus(code: ClientError.Code, category: ClientError.Category) {
        #expect(ClientError(code, "x").category == category)
    }

    @Test func aRefusalKeepsTheRelaysCode() {
        let refusal = RelayError(frameCode: 513, detail: "the recipient's queue is full")
        let error = ClientError.refused(refusal)
        #expect(error.code == .refused && error.category == .protocol)
        #expect(error.relayError?.code == .quotaExceeded)
        #expect(error.relayError?.code.rawValue == 513)
        // A code this version does not know keeps its number.
        let unknown = ClientError.refused(RelayError(frameCode: 599, detail: "new"))
        #expect(unknown.relayError?.code.rawValue == 599)
    }
}
