import CurbsideTLS
import CurbsideTransport
import CurbsideTestSupport
import CurbsideWire
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import CurbsideRelay

@Suite("store and forward over TLS", .serialized)
struct StoreAndForwardLiveTests {
    @Test func offlineRecipientFetchesLaterAcrossARestartAndTheSenderHearsOfDelivery() async throws {
        try await withStopping(try await FileRelay()) { relay in
            let envelope = Array("sealed consult bytes".utf8)
            let send = RelayMessage.send(try SendRequest(recipient: relay.derm.handle, envelope: envelope))

            let receipts = try await relay.session(relay.gp) { session in
                [try await session.request(send), try await session.request(send)]  // a retry of the same bytes
            }
            guard case .stored(let first) = receipts[0], case .stored(let retry) = receipts[1] else {
                Issue.record("expected stored twice, got \(receipts)")
                return
            }
            #expect(first.envelopeID == SHA256.hash(envelope) && retry.envelopeID == first.envelopeID)

            // The relay restarts between send and fetch.
            await relay.stop()
            try await relay.start()

            try await relay.session(relay.derm) { session in
                guard case .envelopes(let pending) = try await session.request(.fetch(after: 0, limit: 10)) else {
                    Issue.record("expected envelopes")
                    return
                }
                #expect(pending.count == 1, "a retried send is stored once")
                #expect(pending.first?.envelope == envelope && pending.first?.sender == relay.gp.handle)
                #expect(try await session.request(.acknowledge([first.envelopeID])) == .acknowledged(count: 1))
                guard case .envelopes(let after) = try await session.request(.fetch(after: 0, limit: 10)) else { return }
                #expect(after.isEmpty)
            }
            let notices = try await relay.session(relay.gp) { session in
                try await session.request(.fetchNotices(after: 0))
            }
            guard case .notices(let list) = notices else {
                Issue.record("expected notices, got \(String(describing: notices))")
                return
            }
            #expect(list.map(\.kind) == [.deliveredToDevice])
            #expect(list.first?.envelopeID == first.envelopeID && list.first?.recipient == relay.derm.handle)
        }
    }

    @Test func connectedRecipientGetsAPushAndTheConnectedSenderItsNotice() async throws {
        try await withStopping(try await FileRelay()) { relay in
            let envelope = Array("urgent consult".utf8)
            try await relay.session(relay.derm) { derm in
                try await relay.session(relay.gp) { gp in
                    guard case .stored(let receipt) = try await gp.request(.send(try SendRequest(recipient: relay.derm.handle, envelope: envelope))) else {
                        Issue.record("not stored")
                        return
                    }
                    guard case .pushEnvelope(let pushed) = try await derm.nextPush() else {
                        Issue.record("no push")
                        return
                    }
                    #expect(pushed.envelope == envelope && pushed.envelopeID == receipt.envelopeID)
                    #expect(try await derm.request(.acknowledge([pushed.envelopeID])) == .acknowledged(count: 1))
                    guard case .pushNotice(let notice) = try await gp.nextPush() else {
                        Issue.record("no notice pushed to the sender")
                        return
                    }
                    #expect(notice.kind == .deliveredToDevice && notice.envelopeID == receipt.envelopeID)
                }
            }
        }
    }

    @Test func anotherAccountCannotFetchOrAcknowledge() async throws {
        try await withStopping(try await FileRelay()) { relay in
            let receipt = try await relay.session(relay.gp) { gp in
                try await gp.request(.send(try SendRequest(recipient: relay.derm.handle, envelope: [1, 2, 3])))
            }
            guard case .stored(let stored) = receipt else { return }
            // amara.gp tries to take osei.derm's envelope.
            try await relay.session(relay.gp) { gp in
                guard case .envelopes(let mine) = try await gp.request(.fetch(after: 0, limit: 10)) else { return }
                #expect(mine.isEmpty)
                #expect(try await gp.request(.acknowledge([stored.envelopeID])) == .acknowledged(count: 0))
            }
            try await relay.session(relay.derm) { derm in
                guard case .envelopes(let pending) = try await derm.request(.fetch(after: 0, limit: 10)) else { return }
                #expect(pending.count == 1, "still there for its recipient")
            }
        }
    }

    @Test func undeliveredEnvelopesExpireWithANoticeToTheSender() async throws {
        try await withStopping(try await FileRelay { configuration in
            configuration.envelopeLifetimeSeconds = 0
            configuration.expirySweepInterval = .milliseconds(100)
        }) { relay in
            try await relay.session(relay.gp) { gp in
                guard case .stored(let stored) = try await gp.request(.send(try SendRequest(recipient: relay.derm.handle, envelope: [9]))) else {
                    Issue.record("not stored")
                    return
                }
                guard case .pushNotice(let notice) = try await gp.nextPush() else {
                    Issue.record("no expiry notice")
                    return
                }
                #expect(notice.kind == .expired && notice.envelopeID == stored.envelopeID)
            }
            try await relay.session(relay.derm) { derm in
                guard case .envelopes(let pending) = try await derm.request(.fetch(after: 0, limit: 10)) else { return }
                #expect(pending.isEmpty)
            }
        }
    }

    @Test func sendingToAnUnknownHandleIsRefusedAndTheConnectionCarriesOn() async throws {
        try await withStopping(try await FileRelay()) { relay in
            try await relay.session(relay.gp) { gp in
                let refused = try await gp.request(.send(try SendRequest(recipient: Handle("nobody"), envelope: [1])))
                guard case .error(let code, _) = refused else {
                    Issue.record("expected unknown_handle, got \(String(describing: refused))")
                    return
                }
                #expect(code == RelayError.Code.unknownHandle.rawValue)
                guard case .stored = try await gp.request(.send(try SendRequest(recipient: relay.derm.handle, envelope: [2]))) else {
                    Issue.record("the connection should still work")
                    return
                }
            }
        }
    }
}

@Suite("relay quotas", .serialized)
struct RelayQuotaTests {
    @Test func aFullQueueRefusesNewEnvelopesButAcknowledgesRetries() async throws {
        try await withStopping(try await FileRelay { $0.maximumQueuedEnvelopesPerAccount = 2 }) { relay in
            try await relay.session(relay.gp) { gp in
                for body: [UInt8] in [[1], [2]] {
                    guard case .stored = try await gp.request(.send(try SendRequest(recipient: relay.derm.handle, envelope: body))) else {
                        Issue.record("not stored")
                        return
                    }
                }
                let full = try await gp.request(.send(try SendRequest(recipient: relay.derm.handle, envelope: [3])))
                guard case .error(let code, _) = full else {
                    Issue.record("expected quota_exceeded, got \(String(describing: full))")
                    return
                }
                #expect(code == RelayError.Code.quotaExceeded.rawValue)
                guard case .stored(let retry) = try await gp.request(.send(try SendRequest(recipient: relay.derm.handle, envelope: [2]))) else {
                    Issue.record("a retry of a stored envelope must still be acknowledged")
                    return
                }
                #expect(retry.envelopeID == SHA256.hash([2]))
            }
            try await relay.session(relay.derm) { derm in
                guard case .envelopes(let pending) = try await derm.request(.fetch(after: 0, limit: 10)) else { return }
                #expect(pending.map(\.envelope) == [[1], [2]], "nothing stored beyond the quota, nothing lost")
            }
        }
    }
}

@Suite("relay shutdown", .serialized)
struct RelayShutdownTests {
    /// Stopping while sends are in flight: every request the relay started is committed and answered before its
    /// connection closes, so what the sender saw `stored` and what the store holds are the same envelopes.
    @Test func stoppingAnswersWhatItCommittedAndClosesEveryConnection() async throws {
        try await withStopping(try await FileRelay()) { relay in
            let bodies = (0..<40).map { [UInt8]("envelope \($0)".utf8) }
            let answered = try await relay.session(relay.gp) { gp in
                try await gp.write(bodies.map { .send(try SendRequest(recipient: relay.derm.handle, envelope: $0)) })
                // Stop once the relay is working through them, while later ones are still to come.
                let first = try await gp.next()
                await relay.stop()  // returns once every connection is closed and every session has ended
                let rest = try await gp.drain().map { try RelayMessage(decoding: $0) }
                return ([first].compactMap { $0 } + rest).compactMap { message -> [UInt8]? in
                    guard case .stored(let receipt) = message else { return nil }
                    return receipt.envelopeID
                }
            }
            try await relay.start()
            let held = try await relay.session(relay.derm) { derm in
                guard case .envelopes(let pending) = try await derm.request(.fetch(after: 0, limit: 100)) else { return [[UInt8]]() }
                return pending.map(\.envelopeID)
            }
            print("shutdown: \(answered.count) of \(bodies.count) sends answered before the relay stopped")
            #expect(!answered.isEmpty)
            #expect(Set(held) == Set(answered), "committed \(held.count), answered \(answered.count)")
            #expect(Set(answered).isSubset(of: Set(bodies.map(SHA256.hash))))
        }
    }
}
