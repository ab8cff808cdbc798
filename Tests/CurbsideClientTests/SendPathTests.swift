import CurbsideTestSupport
import CurbsideWire
import Foundation
import GRDB
import Testing

@testable import CurbsideClient
@testable import CurbsideRelay

/// The send path goes one way: `send` and `reply` flush the outbox through their own message and report that
/// message's own result; `show` flushes its read receipt and fetches nothing. Outcomes are decided on codes.
@Suite("send path", .serialized)
struct SendPathTests {
    func outboxCodes(_ client: Client, _ id: MessageID) async throws -> (client: Int64?, relay: Int64?) {
        try await client.database.writer.read { db in
            let row = try Row.fetchOne(
                db,
                sql: "SELECT last_error_code, last_relay_error_code FROM outbox WHERE message_id = ?",
                arguments: [Data(id.rawValue)]
            )
            return (row?["last_error_code"], row?["last_relay_error_code"])
        }
    }

    func rowCount(_ client: Client, _ sql: String, _ id: MessageID) async throws -> Int {
        try await client.database.writer.read { db in try Int.fetchOne(db, sql: sql, arguments: [Data(id.rawValue)]) ?? -1 }
    }

    /// A backlog leaves the outbox with several sends in flight at once, so the relay writes them in shared commits;
    /// each is still recorded as stored, in queue order.
    @Test func aBacklogIsSentWithSeveralInFlight() async throws {
        // On disk: each commit waits for fsync, and sends that arrive meanwhile join the next one.
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            _ = try await gp.send(try Providers.consult("First"), to: derm.me.handle)  // pins derm's key
            await providers.relay.stop()
            var queued: [String] = []
            for n in 0..<40 {
                let outcome = try await gp.send(try Providers.consult("Backlog \(n)"), to: derm.me.handle)
                #expect(!outcome.stored)
                queued.append(outcome.id)
            }
            try await providers.relay.start()
            let store = try #require(providers.relay.servingStore)
            let before = await store.groupCommitStatistics
            let report = try await gp.sync()
            let after = await store.groupCommitStatistics
            #expect(report.sent == 40 && report.queued == 0, "\(report)")
            #expect(after.envelopes - before.envelopes == 40)
            #expect(after.transactions - before.transactions < 40, "sent one at a time: \(after.transactions - before.transactions) transactions")
            let received = try await derm.sync()
            #expect(received.received == 41)
            let titles = Set(try await derm.inbox().map(\.title))
            #expect(titles.isSuperset(of: (0..<40).map { "Backlog \($0)" }))
        }
    }

    /// A sync counts the consults and replies it sent apart from the receipts it sent by itself: the recipient's
    /// delivered receipt is not "sent 1".
    @Test func aSyncCountsItsAutomaticReceiptsApart() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            _ = try await gp.send(try Providers.consult(), to: derm.me.handle)
            let received = try await derm.sync()
            #expect(received.received == 1)
            #expect(received.sent == 0 && received.receiptsSent == 1, "\(received)")
            let queued = try await gp.send(try Providers.consult("Second"), to: derm.me.handle)
            #expect(queued.stored)
        }
    }

    /// The relay's `unknown_handle` reaches the caller as `.unknownRecipient` with the relay's code kept, and the
    /// consult is discarded as before: no message, no timeline, nothing queued.
    @Test func aSendToAnUnknownRecipientIsDecidedByItsCode() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let error = await #expect(throws: ClientError.self) {
                _ = try await gp.send(try Providers.consult(), to: try Handle("nobody.here"))
            }
            #expect(error?.code == .unknownRecipient && error?.category == .usage)
            #expect(error?.relayError?.code == .unknownHandle)
            #expect(error?.message == "nobody.here is not registered on the relay (or has not published prekeys yet); nothing was sent")
            let left = try await gp.database.writer.read { db in
                try Int.fetchOne(db, sql: "SELECT (SELECT COUNT(*) FROM message) + (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM event)")
            }
            #expect(left == 0)
        }
    }

    /// A flush tries the queue in order, each message with its own typed result, and stops after the message it was
    /// asked to send: what was queued after it waits. The outbox keeps the codes of a failed attempt.
    @Test func aFlushReportsEachMessageInQueueOrder() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            var ids: [MessageID] = []
            for (n, recipient) in ["osei.derm", "nobody.here", "osei.derm", "osei.derm"].enumerated() {
                ids.append(try await gp.queue(.consult(try Providers.consult("consult \(n)")), to: try Handle(recipient), now: Timestamp(millisecondsSince1970: UInt64(1_000 + n))))
            }
            let (flush, failure) = try await gp.flush(through: ids[2])
            #expect(failure == nil && flush.interruption == nil)
            #expect(flush.results.map(\.id) == Array(ids[0...2]), "in queue order, and nothing after the one asked for")
            guard flush.results.count == 3 else { return }
            guard case .stored = flush.results[0].result, case .stored = flush.results[2].result else {
                Issue.record("not stored: \(flush.results)")
                return
            }
            guard case .refused(let refusal) = flush.results[1].result else {
                Issue.record("the consult to an unknown handle was not refused: \(flush.results[1].result)")
                return
            }
            #expect(refusal.code == .unknownRecipient && refusal.relayError?.code == .unknownHandle)
            #expect(flush.remaining == 2, "the refused consult and the one queued after the flushed one")
            let codes = try await outboxCodes(gp, ids[1])
            #expect(codes.client == Int64(ClientError.Code.unknownRecipient.rawValue))
            #expect(codes.relay == Int64(RelayError.Code.unknownHandle.rawValue))
            #expect(try await rowCount(gp, "SELECT COUNT(*) FROM outbox WHERE message_id = ?", ids[3]) == 1)
            _ = try await derm.sync()
            #expect(Set(try await derm.inbox().map(\.title)) == ["consult 0", "consult 2"])
        }
    }

    /// A relay refusal survives the whole way: error frame, `RelayClientError`, `ClientError` with `.refused`, the
    /// send's outcome and the outbox row all carry `quota_exceeded` (513).
    @Test func aRefusalsCodeSurvivesFromTheRelayToTheOutcome() async throws {
        try await withStopping(try await Providers.start { $0.maximumQueuedEnvelopesPerSender = 1 }) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            #expect(try await gp.send(try Providers.consult("first"), to: derm.me.handle).stored)
            let second = try await gp.send(try Providers.consult("second"), to: derm.me.handle)
            #expect(!second.stored)
            #expect(second.reason?.code == .refused && second.reason?.category == .protocol)
            #expect(second.reason?.relayError?.code == .quotaExceeded)
            #expect(second.waiting == second.reason?.message)
            let id = try MessageID(rawValue: try #require([UInt8](hexString: second.id)))
            let codes = try await outboxCodes(gp, id)
            #expect(codes.client == 1401 && codes.relay == 513)
        }
    }

    /// `send` flushes the outbox and nothing else: what waits for the sender on the relay stays there until a sync.
    @Test func aSendDoesNotFetch() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            _ = try await gp.send(try Providers.consult("waiting for derm"), to: derm.me.handle)
            let sent = try await derm.send(try Providers.consult("derm asks"), to: gp.me.handle)
            #expect(sent.stored)
            #expect(try await derm.inbox().isEmpty, "the consult waiting on the relay was not fetched by the send")
            #expect(try await derm.sync().received == 1)
        }
    }

    /// `show` sends its read receipt and fetches nothing: a consult waiting on the relay, with an attachment, is
    /// neither fetched nor downloaded. With the relay stopped, `show` still shows, and the receipt waits.
    @Test func showFlushesItsReceiptAndFetchesNothing() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            let first = try await gp.send(try Providers.consult("first"), to: derm.me.handle)
            let second = try await gp.send(try Providers.consult("second"), to: derm.me.handle)
            #expect(try await derm.sync().received == 2)
            var rng = SplitMix64(seed: 16)
            let file = try AttachmentClientTests.write(rng.bytes(50_000), "scan.bin", in: providers.root.appendingPathComponent("files"))
            let pending = try await gp.send(try Providers.consult("pending"), to: derm.me.handle, attachments: [AttachmentSource(path: file, keepMetadata: true)])
            #expect(pending.stored)

            let firstID = try MessageID(rawValue: try #require([UInt8](hexString: first.id)))
            #expect(try await derm.show(firstID).subject == "first")
            #expect(try await derm.inbox().map(\.title).sorted() == ["first", "second"], "nothing was fetched")
            let downloads = (try? FileManager.default.contentsOfDirectory(atPath: derm.home.appendingPathComponent("attachments").path)) ?? []
            #expect(downloads.filter { $0.hasPrefix(pending.id) }.isEmpty, "nothing was downloaded")
            #expect(try await derm.database.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox") } == 0, "the receipt went out with show")
            // gp's consult and the read receipt: gp sees it read.
            _ = try await gp.sync()
            #expect(try await gp.status(firstID).first?.read != nil)

            // The relay is down: show still shows, and its receipt waits in the outbox.
            await providers.relay.stop()
            let secondID = try MessageID(rawValue: try #require([UInt8](hexString: second.id)))
            #expect(try await derm.show(secondID).subject == "second")
            #expect(try await derm.database.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox") } == 1)
        }
    }
}

extension SendPathTests {
    /// A recipient whose published signed prekey has expired holds up only the messages to it: the flush goes on to
    /// the next recipient, the sync does not take it for a lost connection (it reached the relay, without retrying),
    /// and the send says why it waits, by code.
    @Test func aRecipientWithExpiredKeysHoldsUpOnlyItsOwnMessages() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            let cardio = try await providers.create("kofi.cardio")
            // derm publishes a signed prekey that expired an hour ago (a device that has been off for long).
            let now = Timestamp.now().signedMilliseconds
            let key = AgreementKey.Private()
            try await derm.database.writer.write { db in
                let id = try ProfileDatabase.nextNumber(db, "next_signed_prekey_id", startingAt: 1)
                let sealed = try derm.database.seal(key.rawRepresentation.copiedBytes, column: "prekey.private_key", row: ProfileDatabase.prekeyRow(kind: 1, id: id))
                try db.execute(
                    sql: "INSERT INTO prekey (kind, id, private_key, created_at, expires_at, published) VALUES (1, ?, ?, ?, ?, 0)",
                    arguments: [Int64(id), sealed, now, now - 3_600_000]
                )
            }
            #expect(try await derm.sync().reachedRelay)

            let toDerm = try await gp.queue(.consult(try Providers.consult("to derm")), to: derm.me.handle, now: Timestamp(millisecondsSince1970: 1_000))
            _ = try await gp.queue(.consult(try Providers.consult("to cardio")), to: cardio.me.handle, now: Timestamp(millisecondsSince1970: 1_001))
            let report = try await gp.sync()
            #expect(report.reachedRelay && report.sent == 1 && report.queued == 1)
            #expect(try await outboxCodes(gp, toDerm).client == Int64(ClientError.Code.recipientKeysExpired.rawValue))
            _ = try await cardio.sync()
            #expect(try await cardio.inbox().map(\.title) == ["to cardio"])

            let waiting = try await gp.send(try Providers.consult("again"), to: derm.me.handle)
            #expect(!waiting.stored && waiting.reason?.code == .recipientKeysExpired)
        }
    }
}
