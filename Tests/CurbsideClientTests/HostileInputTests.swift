import CurbsideTestSupport
import CurbsideWire
import Foundation
import GRDB
import Testing

@testable import CurbsideClient
@testable import CurbsideRelay

/// A provider acting against its colleagues through the Wire API: its own logged-in connection to the real relay,
/// envelopes built byte by byte, signed with its own key (spec/envelope.md §Receiving).
struct CraftedPeer {
    let client: Client
    let connection: RelayConnection

    static func connect(_ client: Client, _ providers: Providers) async throws -> CraftedPeer {
        let connection = try await RelayConnection.open(host: "127.0.0.1", port: providers.relay.port, tls: client.tls)
        try await connection.login(as: client.me.handle, identity: client.identity)
        return CraftedPeer(client: client, connection: connection)
    }

    func bundle(_ handle: Handle) async throws -> PrekeyBundle {
        guard case .bundle(let bundle) = try await connection.request(.fetchBundle(handle)) else { throw ClientError(.protocolViolation, "no bundle") }
        return bundle
    }

    /// Signs `messageBytes` (an encoded Message, valid or not) with `key` and seals the result to `bundle`.
    static func seal(_ messageBytes: [UInt8], signedBy key: SigningKey, to bundle: PrekeyBundle) throws -> [UInt8] {
        let plaintext = messageBytes + key.signature(for: Array("curbside/v1/message\0".utf8) + messageBytes)
        let (prekey, reference): (AgreementKey.Public, SealedEnvelope.PrekeyReference) =
            if let oneTime = bundle.oneTimePrekey {
                (oneTime.publicKey, .init(kind: .oneTime, id: oneTime.id))
            } else {
                (bundle.signedPrekey.publicKey, .init(kind: .signed, id: bundle.signedPrekey.id))
            }
        return try SealedEnvelope.seal(plaintext: plaintext, to: prekey, as: reference, ephemeralKeyMaterial: .random(count: 32)).encoded
    }

    @discardableResult
    func send(_ envelope: [UInt8], to recipient: Handle) async throws -> StoredReceipt {
        guard case .stored(let stored) = try await connection.request(.send(try SendRequest(recipient: recipient, envelope: envelope))) else {
            throw ClientError(.protocolViolation, "not stored")
        }
        return stored
    }

    func notices() async throws -> [DeliveryNotice] {
        guard case .notices(let notices) = try await connection.request(.fetchNotices(after: 0)) else { throw ClientError(.protocolViolation, "no notices") }
        return notices
    }

    func close() async { await connection.close() }
}

/// The created_at field's offset in an encoded message: after two parties and two ids.
func createdAtOffset(_ message: Message) -> Int {
    message.sender.encoded.count + message.recipient.encoded.count + 32
}

func rowCount(_ client: Client, _ sql: String) async throws -> Int {
    try await client.database.writer.read { db in try Int.fetchOne(db, sql: sql) ?? 0 }
}

@Suite("hostile peers against the real relay and client", .serialized)
struct HostileInputTests {
    /// Issue 14.1: a consult whose signed created_at is 2^64 - 1 trapped the recipient's client on main, on every sync
    /// until it expired. Now it is rejected once, the sender is told, and the next consult arrives.
    @Test func aConsultCreatedAtTheEndOfTimeIsRejectedNotFatal() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let mallory = try await providers.create("mallory.gp")
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            try await withStopping(try await CraftedPeer.connect(mallory, providers)) { peer in

                let bundle = try await peer.bundle(derm.me.handle)
                let message = try Message(sender: mallory.me, recipient: bundle.owner, content: .consult(try Providers.consult("Crafted")))
                var bytes = message.encoded
                bytes.replaceSubrange(createdAtOffset(message)..<(createdAtOffset(message) + 8), with: [UInt8](repeating: 0xFF, count: 8))
                let stored = try await peer.send(try CraftedPeer.seal(bytes, signedBy: mallory.identity, to: bundle), to: derm.me.handle)
                _ = try await gp.send(try Providers.consult("Genuine"), to: derm.me.handle)

                let report = try await derm.sync()
                #expect(report.failed == 1 && report.received == 1)
                #expect(try await derm.inbox().map(\.title) == ["Genuine"])
                let unopened = try await derm.unopenedEnvelopes()
                #expect(unopened.map(\.sender) == ["mallory.gp"] && unopened.map(\.reason) == [.unsupportedContent])
                #expect(unopened.map(\.detail) == ["malformed_content"])
                // It decrypted before it failed, so the one-time key it used is gone like any used one.
                let spent = try #require(bundle.oneTimePrekey?.id)
                #expect(try await rowCount(derm, "SELECT COUNT(*) FROM prekey WHERE kind = 2 AND id = \(spent)") == 0)
                // Settled: the relay holds nothing more for the recipient, and a second sync is quiet.
                #expect(try await SQLiteRelayStore(path: providers.relay.path).queueUsage(for: derm.me.handle).envelopes == 0)
                let again = try await derm.sync()
                #expect(again.failed == 0 && again.received == 0)
                // The sender learns it from the relay, as a rejection with the reason, never as delivered.
                let notices = try await peer.notices().filter { $0.envelopeID == stored.envelopeID }
                #expect(notices.map(\.kind) == [.rejected] && notices.first?.reason == .unsupportedContent)
            }
        }
    }

    /// Issue 14.2: an envelope sealed to a prekey the recipient no longer holds was acknowledged on main, shown as
    /// delivered to the sender, and invisible to the recipient.
    @Test func anEnvelopeForALostKeyIsShownToBothSidesAsFailed() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            let sent = try await gp.send(try Providers.consult(), to: derm.me.handle)
            #expect(sent.stored)
            // The recipient's keys are gone (a re-enrolled account, a restored old copy of the profile).
            try await derm.database.writer.write { db in try db.execute(sql: "DELETE FROM prekey") }

            let report = try await derm.sync()
            #expect(report.failed == 1 && report.received == 0)
            let unopened = try await derm.unopenedEnvelopes()
            #expect(unopened.map(\.sender) == ["amara.gp"] && unopened.map(\.reason) == [.undecryptable] && unopened.map(\.shown) == [false])
            #expect(unopened.map(\.detail) == ["unknown_prekey"])

            _ = try await gp.sync()
            let id = try MessageID(rawValue: try #require([UInt8](hexString: sent.id)))
            let status = try #require(try await gp.status(id).first)
            #expect(status.deliveredToDevice == nil && status.delivered == nil)
            let failed = try #require(status.timeline.first { $0.kind == .failed })
            #expect(failed.detail?.contains("osei.derm's device could not open it (undecryptable)") == true)
        }
    }

    /// Issue 14.3: a client stopped after opening and before acknowledging gets the same envelopes again. The second
    /// one is a duplicate message whose one-time prekey was deleted at its first opening: on main it failed as
    /// unknown_prekey when re-delivered.
    @Test func reDeliveriesAfterAStopAreSettledWithoutOpening() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            try await withStopping(try await CraftedPeer.connect(gp, providers)) { peer in
                // The same message sealed twice (a sender that lost its first `stored` and sealed again), each to a one-time
                // prekey.
                let first = try await peer.bundle(derm.me.handle)
                let second = try await peer.bundle(derm.me.handle)
                #expect(first.oneTimePrekey != nil && second.oneTimePrekey != nil)
                let message = try Message(sender: gp.me, recipient: first.owner, content: .consult(try Providers.consult()))
                let one = try await peer.send(try CraftedPeer.seal(message.encoded, signedBy: gp.identity, to: first), to: derm.me.handle)
                let two = try await peer.send(try CraftedPeer.seal(message.encoded, signedBy: gp.identity, to: second), to: derm.me.handle)

                // Opened and saved, then the process stops before acknowledging anything.
                let connection = try await RelayConnection.open(host: "127.0.0.1", port: providers.relay.port, tls: derm.tls)
                try await connection.login(as: derm.me.handle, identity: derm.identity)
                guard case .envelopes(let delivered) = try await connection.request(.fetch(after: 0, limit: 10)) else { Issue.record("no envelopes"); return }
                #expect(delivered.count == 2)
                var report = SyncReport()
                for envelope in delivered {
                    #expect(try await derm.receive(envelope, report: &report, connection: connection) == .acknowledge)
                }
                await connection.close()
                #expect(report.received == 1)

                let restarted = try await Client.open(home: derm.home, passphrase: Providers.passphrase)
                let again = try await restarted.sync()
                #expect(again.failed == 0 && again.received == 0)
                #expect(try await restarted.unopenedEnvelopes().isEmpty)
                #expect(try await restarted.inbox().count == 1)
                #expect(try await SQLiteRelayStore(path: providers.relay.path).queueUsage(for: derm.me.handle).envelopes == 0)
                let notices = try await peer.notices()
                #expect(Set(notices.map(\.envelopeID)) == [one.envelopeID, two.envelopeID] && notices.allSatisfy { $0.kind == .deliveredToDevice })
            }
        }
    }

    /// Issue 14.4: on main any message id already in the profile suppressed a message, so a provider who learned a
    /// consult's id could send its own first and the genuine one was dropped; one that reused the recipient's own
    /// outgoing id was dropped too.
    @Test func anotherSendersReusedMessageIDSuppressesNothing() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let mallory = try await providers.create("mallory.gp")
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            try await withStopping(try await CraftedPeer.connect(mallory, providers)) { peer in

                // The genuine consult waits in the GP's outbox; mallory learns its id and gets there first.
                let genuineID = MessageID.random()
                _ = try await gp.queue(.consult(try Providers.consult("Genuine")), to: derm.me.handle, id: genuineID)
                let ownID = try MessageID(rawValue: try #require([UInt8](hexString: try await derm.send(try Providers.consult("Derm's own"), to: gp.me.handle).id)))
                for (id, subject) in [(genuineID, "Squatter"), (ownID, "Echo")] {
                    let bundle = try await peer.bundle(derm.me.handle)
                    let message = try Message(sender: mallory.me, recipient: bundle.owner, id: id, content: .consult(try Providers.consult(subject)))
                    try await peer.send(try CraftedPeer.seal(message.encoded, signedBy: mallory.identity, to: bundle), to: derm.me.handle)
                }
                _ = try await gp.sync()

                let report = try await derm.sync()
                #expect(report.received == 3)
                let inbox = try await derm.inbox().filter { $0.kind == .consult }
                #expect(Set(inbox.map(\.title)) == ["Genuine", "Squatter", "Echo"])
                // The first to arrive keeps the id; the others are kept under local ids, never merged or dropped.
                #expect(Set(inbox.map(\.id)).count == 3 && !inbox.contains { $0.id == ownID.description })
                // Derm's own consult is untouched; the GP's is receipted by the id it was sent with.
                #expect(try await derm.status(ownID).first?.summary.title == "Derm's own")
                _ = try await gp.sync()
                #expect(try await gp.status(genuineID).first?.delivered != nil)
                // Answering a message kept under a local id answers by the id it was sent with.
                let echo = try #require(inbox.first { $0.title == "Echo" })
                #expect(echo.id != ownID.description)
                _ = try await derm.reply(to: try MessageID(rawValue: try #require([UInt8](hexString: echo.id))), text: "Noted.")
                _ = try await mallory.sync()
                let reply = try #require(try await mallory.inbox().first { $0.kind == .reply })
                let shown = try await mallory.show(try MessageID(rawValue: try #require([UInt8](hexString: reply.id))))
                #expect(shown.inReplyTo == ownID.description)
            }
        }
    }

    /// Issue 14.5: on main a receipt from a sender whose key changed got a `failed` receipt back; two clients that see
    /// each other's keys as changed would bounce receipts for ever.
    @Test func aReceiptIsNeverAnsweredWithAReceipt() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let mallory = try await providers.create("mallory.gp")
            let derm = try await providers.create("osei.derm")
            _ = try await mallory.send(try Providers.consult(), to: derm.me.handle)
            _ = try await derm.sync()  // pins mallory's key, sends a delivered receipt
            let receiptsBefore = try await rowCount(derm, "SELECT COUNT(*) FROM message WHERE direction = 'out' AND kind = 3")

            try await withStopping(try await CraftedPeer.connect(mallory, providers)) { peer in
                let otherKey = SigningKey()
                let bundle = try await peer.bundle(derm.me.handle)
                let receipt = try Message(
                    sender: Party(identityKey: otherKey.verifyingKey, handle: mallory.me.handle),
                    recipient: bundle.owner,
                    content: .receipt(.read(.random()))
                )
                try await peer.send(try CraftedPeer.seal(receipt.encoded, signedBy: otherKey, to: bundle), to: derm.me.handle)
                let report = try await derm.sync()
                #expect(report.receipts == 1 && report.failed == 0)
                #expect(try await rowCount(derm, "SELECT COUNT(*) FROM message WHERE direction = 'out' AND kind = 3") == receiptsBefore)
                #expect(try await rowCount(derm, "SELECT COUNT(*) FROM outbox") == 0)
            }
        }
    }

    /// Issue 14.9 (the client's part): on main every one-time private key ever published stayed in the profile, so
    /// each drain of the relay's one-time prekeys grew it by 100 (100 -> 198 after one refill). Handed-out keys now
    /// go after a grace, and at most 200 are kept meanwhile, however often the relay is drained: checked with the
    /// relay's own limit on fetches (10 per requester at once) and, to test the client alone, without it.
    @Test(arguments: [true, false])
    func drainedOneTimePrekeysDoNotPileUpInTheProfile(relayLimitsFetches: Bool) async throws {
        try await withStopping(try await Providers.start { configuration in
            if !relayLimitsFetches { configuration.oneTimePrekeysPerRequester = 100_000 }
        }) { providers in
            let mallory = try await providers.create("mallory.gp")
            let derm = try await providers.create("osei.derm")
            let oneTime = "SELECT COUNT(*) FROM prekey WHERE kind = 2"
            #expect(try await rowCount(derm, oneTime) == 100)
            try await withStopping(try await CraftedPeer.connect(mallory, providers)) { peer in
                var drained = 0
                for _ in 0..<4 {
                    // Fetch until the relay hands out no more one-time prekeys (or refuses), then the victim syncs and refills.
                    for _ in 0..<120 {
                        guard let bundle = try? await peer.bundle(derm.me.handle), bundle.oneTimePrekey != nil else { break }
                        drained += 1
                    }
                    _ = try await derm.sync()
                    let kept = try await rowCount(derm, oneTime)
                    #expect(kept <= 100 + Client.maximumHandedOutPrekeys)
                    print("prekey drain round (relay limit \(relayLimitsFetches ? "on" : "off")): \(drained) one-time prekeys taken so far, \(kept) private keys in the victim's profile")
                }
                #expect(drained > 0)
                #expect(try await rowCount(derm, "SELECT COUNT(*) FROM prekey WHERE kind = 2 AND handed_out_at IS NOT NULL") == min(drained, Client.maximumHandedOutPrekeys))
                // A week later nothing handed out is left; the keys the relay still holds are.
                try await derm.deleteHandedOutPrekeys(now: Timestamp.now().adding(seconds: Client.handedOutPrekeyGrace + 60))
                let held = try await SQLiteRelayStore(path: providers.relay.path).oneTimePrekeyCount(for: derm.me.handle)
                #expect(try await rowCount(derm, oneTime) == held)
            }
        }
    }

    /// A top-up whose upload never reached the relay (the connection dropped after the keys were saved) must not
    /// make the client count the relay's older keys as handed out and delete them while the relay still hands them
    /// out (found in review of the first version of the expiry above).
    @Test func oneTimePrekeysWhoseUploadFailedAreSentAgainAndNotCountedHandedOut() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let derm = try await providers.create("osei.derm")
            // 40 keys saved as a top-up would save them, and the upload lost.
            let database = derm.database
            try await database.writer.write { db in
                for _ in 0..<40 {
                    let id = try ProfileDatabase.nextNumber(db, "next_one_time_prekey_id", startingAt: 1)
                    let sealed = try database.seal(AgreementKey.Private().rawRepresentation.copiedBytes, column: "prekey.private_key", row: ProfileDatabase.prekeyRow(kind: 2, id: id))
                    try db.execute(sql: "INSERT INTO prekey (kind, id, private_key, created_at, published) VALUES (2, ?, ?, 0, 0)", arguments: [Int64(id), sealed])
                }
            }
            _ = try await derm.sync()
            #expect(try await rowCount(derm, "SELECT COUNT(*) FROM prekey WHERE kind = 2 AND handed_out_at IS NOT NULL") == 0)
            #expect(try await rowCount(derm, "SELECT COUNT(*) FROM prekey WHERE kind = 2 AND published = 0") == 0)
            #expect(try await SQLiteRelayStore(path: providers.relay.path).oneTimePrekeyCount(for: derm.me.handle) == 140)
            // However long it waits, nothing the relay holds is deleted from the profile.
            try await derm.deleteHandedOutPrekeys(now: Timestamp.now().adding(seconds: Client.handedOutPrekeyGrace + 60))
            #expect(try await rowCount(derm, "SELECT COUNT(*) FROM prekey WHERE kind = 2") == 140)
        }
    }

    /// Issue 14.10: attachments past the recipient's limits are not downloaded; the sender gets a signed
    /// attachment_unavailable receipt saying which limit.
    @Test func attachmentsPastTheLimitsAreRefusedWithAReceipt() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            var rng = SplitMix64(seed: 14)
            let files = providers.root.appendingPathComponent("files")
            let small = try AttachmentClientTests.write(rng.bytes(40_000), "small.bin", in: files)
            let large = try AttachmentClientTests.write(rng.bytes(200_000), "large.bin", in: files)
            // At most 100 kB per attachment and 100 kB a day from one sender.
            await derm.setAttachmentLimits(AttachmentLimits(bytesPerAttachment: 100_000, bytesPerSenderPerDay: 100_000))

            let tooLarge = try await gp.send(try Providers.consult("Large"), to: derm.me.handle, attachments: [AttachmentSource(path: large, keepMetadata: true)])
            let small1 = try await gp.send(try Providers.consult("Small 1"), to: derm.me.handle, attachments: [AttachmentSource(path: small, keepMetadata: true)])
            let small2 = try await gp.send(try Providers.consult("Small 2"), to: derm.me.handle, attachments: [AttachmentSource(path: small, keepMetadata: true)])
            let small3 = try await gp.send(try Providers.consult("Small 3"), to: derm.me.handle, attachments: [AttachmentSource(path: small, keepMetadata: true)])
            _ = try await derm.sync()
            func states(_ outcome: SendOutcome) async throws -> [AttachmentState] {
                try await derm.attachments(of: try MessageID(rawValue: try #require([UInt8](hexString: outcome.id)))).map(\.state)
            }
            #expect(try await states(tooLarge) == [.tooLarge])
            #expect(try await states(small1) == [.saved])
            #expect(try await states(small2) == [.saved])
            #expect(try await states(small3) == [.overSenderLimit])

            _ = try await gp.sync()
            func failure(_ outcome: SendOutcome) async throws -> String? {
                let id = try MessageID(rawValue: try #require([UInt8](hexString: outcome.id)))
                return try await gp.status(id).first?.timeline.first { $0.kind == .failed }?.detail
            }
            #expect(try await failure(tooLarge)?.hasPrefix("attachment_unavailable: an attachment is larger") == true)
            #expect(try await failure(small3)?.hasPrefix("attachment_unavailable: the recipient's daily limit") == true)
            #expect(try await failure(small1) == nil)
        }
    }

    /// Issue 14.16: a stolen profile.sqlite must not let a thief confirm a guessed message: signatures, media types and
    /// peers' failure details are sealed (on main they were in the clear).
    @Test func theProfileKeepsSignaturesMediaTypesAndFailureDetailsSealed() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            var rng = SplitMix64(seed: 16)
            let path = try AttachmentClientTests.write(rng.bytes(30_000), "scan.bin", in: providers.root.appendingPathComponent("files"))
            let sent = try await gp.send(try Providers.consult(), to: derm.me.handle, attachments: [AttachmentSource(path: path, keepMetadata: true)])
            await derm.setAttachmentLimits(AttachmentLimits(bytesPerAttachment: 1_000, bytesPerSenderPerDay: 1_000))
            _ = try await derm.sync()
            _ = try await gp.sync()
            let id = try MessageID(rawValue: try #require([UInt8](hexString: sent.id)))
            // Everything still reads back through the profile's key.
            #expect(try await gp.status(id).first?.timeline.contains { $0.detail?.contains("larger than the recipient accepts") == true } == true)
            #expect(try await derm.attachments(of: id).map(\.mediaType) == ["application/octet-stream"])

            for client in [gp, derm] {
                let file = try Data(contentsOf: URL(fileURLWithPath: Client.databasePath(client.home)))
                    + ((try? Data(contentsOf: URL(fileURLWithPath: Client.databasePath(client.home) + "-wal"))) ?? Data())
                for clear in ["application/octet-stream", "larger than the recipient accepts"] {
                    #expect(file.range(of: Data(clear.utf8)) == nil, "\(clear) in \(client.me.handle)'s profile")
                }
            }
            let signature = try await derm.database.writer.read { db in try Data.fetchOne(db, sql: "SELECT signature FROM message WHERE direction = 'in'") }
            #expect(signature?.count == 12 + 64 + 16)
        }
    }
}
