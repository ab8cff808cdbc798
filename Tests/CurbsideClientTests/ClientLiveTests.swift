import CurbsideTLS
import CurbsideTestSupport
import CurbsideWire
import Foundation
import GRDB
import NIOConcurrencyHelpers
import Testing

@testable import CurbsideClient
@testable import CurbsideRelay

@Suite("client library against a live relay", .serialized)
struct ClientLiveTests {
    @Test func aConsultIsDeliveredReadAndAnsweredWithEveryStepTimed() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")

            let sent = try await gp.send(try Providers.consult(), to: derm.me.handle)
            #expect(sent.stored && sent.waiting == nil)
            let received = try await derm.sync()
            #expect(received.received == 1)
            let inbox = try await derm.inbox()
            #expect(inbox.map(\.id) == [sent.id])
            #expect(inbox.first?.title == "Pigmented lesion, left forearm" && inbox.first?.urgency == .urgent)

            let id = try MessageID(rawValue: try #require([UInt8](hexString: sent.id)))
            let shown = try await derm.show(id)
            #expect(shown.question == "Excise within two weeks?")
            let answer = try await derm.reply(to: id, text: "Dysplastic naevus likely; excise with 2 mm margins.")
            #expect(answer.stored)

            let report = try await gp.sync()
            #expect(report.received == 1 && report.receipts == 2)
            let status = try #require(try await gp.status(id).first)
            #expect(status.stored != nil && status.deliveredToDevice != nil && status.delivered != nil)
            #expect(status.read != nil && status.answered != nil && status.timeToAnswer != nil)
            #expect(!status.queued)
            // The reply got its own delivered receipt; receipts themselves are never receipted, so the derm's inbox
            // holds the consult and one receipt about the reply, and the GP's none about its receipts.
            _ = try await derm.sync()
            let dermInbox = try await derm.inbox()
            #expect(dermInbox.map(\.kind.rawValue).sorted() == ["consult", "receipt"])
            #expect(dermInbox.first { $0.kind == .receipt }?.title == "delivered receipt for \(answer.id)")
            #expect(try await gp.sync().receipts == 0)
            // Both sides pinned each other on first use, unverified.
            #expect(try await gp.contacts().map(\.handle) == ["osei.derm"])
            #expect(try await derm.contacts().first?.verified == false)
        }
    }

    @Test func aWrongPassphraseIsOneClearError() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            await #expect(throws: ClientError.wrongPassphrase()) {
                _ = try await Client.open(home: gp.home, passphrase: SecretBytes(Array("not the passphrase".utf8)))
            }
            let reopened = try await Client.open(home: gp.home, passphrase: Providers.passphrase)
            #expect(reopened.me == gp.me)
            // Files are the owner's alone.
            for name in ["identity.json", "profile.sqlite"] {
                let mode = try FileManager.default.attributesOfItem(atPath: gp.home.appendingPathComponent(name).path)[.posixPermissions] as? Int
                #expect(mode == 0o600, "\(name)")
            }
            #expect(try FileManager.default.attributesOfItem(atPath: gp.home.path)[.posixPermissions] as? Int == 0o700)
            // The profile's writer commits with synchronous = FULL (2), not the NORMAL GRDB sets with WAL.
            #expect(try await reopened.database.writer.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } == 2)
            // Content at rest is sealed: the database file holds no consult text.
            _ = try await gp.send(try Providers.consult("Unmistakable subject 7341"), to: try Handle("amara.gp"))
            let raw = try Data(contentsOf: gp.home.appendingPathComponent("profile.sqlite"))
                + ((try? Data(contentsOf: gp.home.appendingPathComponent("profile.sqlite-wal"))) ?? Data())
            #expect(raw.range(of: Data("Unmistakable subject 7341".utf8)) == nil)
        }
    }

    @Test func anUnknownHandleIsAUsageErrorAndLeavesNothingQueued() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            do {
                _ = try await gp.send(try Providers.consult(), to: try Handle("nobody.here"))
                Issue.record("a consult to an unknown handle was accepted")
            } catch let error as ClientError {
                #expect(error.category == .usage)
                #expect(error.message.contains("nobody.here"))
            }
            #expect(try await gp.sync().queued == 0)
        }
    }

    /// The relay is down when the consult is written: it waits in the outbox and goes out, with the same id, once
    /// the relay is back.
    @Test func aSendWhileTheRelayIsDownIsQueuedAndSentLater() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            await providers.relay.stop()

            let queued = try await gp.send(try Providers.consult(), to: derm.me.handle)
            #expect(!queued.stored)
            #expect(queued.waiting?.contains("cannot reach the relay") == true)
            let offline = try await gp.sync()
            #expect(!offline.reachedRelay && offline.queued == 1)
            #expect(try await gp.status().first?.queued == true)

            try await providers.relay.start()
            let online = try await gp.sync()
            #expect(online.sent == 1 && online.queued == 0)
            _ = try await derm.sync()
            #expect(try await derm.inbox().map(\.id) == [queued.id], "the same message id went out")
        }
    }

    @Test func aRelayWithAnotherCertificateKeyIsRefused() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let wrong = RelayEndpoint(host: "127.0.0.1", port: providers.relay.port, fingerprint: String(repeating: "ab", count: 32))
            do {
                _ = try await providers.create("amara.gp", endpoint: wrong)
                Issue.record("a relay with another key was trusted")
            } catch let error as ClientError {
                #expect(error.category == .network)
                #expect(error.message.contains("pinned certificate key"))
            }
            #expect(!FileManager.default.fileExists(atPath: providers.root.appendingPathComponent("amara.gp/identity.json").path))
        }
    }

    /// The relay presents another key for a pinned contact: sending is blocked, with the reason, until the new safety
    /// number is verified; then the queued consult goes out.
    @Test func aChangedContactKeyBlocksSendingUntilVerified() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            // gp pinned some other key for osei.derm (as if the relay had swapped it before, or derm re-enrolled).
            try await gp.database.writer.write { db in
                try db.execute(
                    sql: "INSERT INTO contact (handle, identity_key, pinned_at, verified) VALUES ('osei.derm', ?, 0, 1)",
                    arguments: [Data(SigningKey().verifyingKey.rawRepresentation)]
                )
            }
            do {
                _ = try await gp.send(try Providers.consult(), to: derm.me.handle)
                Issue.record("sent to a changed key")
            } catch let error as ClientError {
                #expect(error.category == .trust)
                #expect(error.message.contains("osei.derm's identity key has changed"))
                #expect(error.hint?.contains("curbside contacts verify osei.derm") == true)
            }
            let contact = try await gp.contact(derm.me.handle)
            #expect(contact.changedKey == derm.me.identityKey.rawRepresentation.hexString)
            // A wrong number changes nothing; the right one unblocks, and the queued consult goes out.
            await #expect(throws: ClientError.self) { _ = try await gp.verify(derm.me.handle, safetyNumber: String(repeating: "1", count: 60)) }
            let verified = try await gp.verify(derm.me.handle, safetyNumber: gp.safetyNumber(with: derm.me).description)
            #expect(verified.verified && verified.changedKey == nil)
            #expect(try await gp.sync().sent >= 1)
            _ = try await derm.sync()
            #expect(try await derm.inbox().count == 1)
        }
    }

    /// Envelopes that are not for this identity, or were tampered with, are recorded, acknowledged (so they do not
    /// come back) and never shown; a message delivered twice is shown once.
    @Test func foreignTamperedAndDuplicateEnvelopesAreHandled() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            let cardio = try await providers.create("kofi.cardio")
            let connection = try await RelayConnection.open(host: "127.0.0.1", port: providers.relay.port, tls: gp.tls)
            try await connection.login(as: gp.me.handle, identity: gp.identity)
            func bundle(_ handle: Handle) async throws -> PrekeyBundle {
                guard case .bundle(let bundle) = try await connection.request(.fetchBundle(handle)) else { throw ClientError(.protocolViolation, "no bundle") }
                return bundle
            }
            func message(to recipient: Party, id: MessageID = .random()) throws -> Message {
                try Message(sender: gp.me, recipient: recipient, id: id, content: .consult(try Providers.consult()))
            }
            // For cardio, but queued for derm.
            let foreign = try SealedEnvelope.seal(try message(to: cardio.me), to: try await bundle(cardio.me.handle), signedBy: gp.identity).encoded
            // For derm, one byte of the ciphertext changed.
            var tampered = try SealedEnvelope.seal(try message(to: derm.me), to: try await bundle(derm.me.handle), signedBy: gp.identity).encoded
            tampered[tampered.count - 20] ^= 0x01
            // For derm, the same message sealed twice (a sender that resealed after a crash).
            let twice = try message(to: derm.me)
            let first = try SealedEnvelope.seal(twice, to: try await bundle(derm.me.handle), signedBy: gp.identity).encoded
            let second = try SealedEnvelope.seal(twice, to: try await bundle(derm.me.handle), signedBy: gp.identity).encoded
            for envelope in [foreign, tampered, first, second] {
                _ = try await connection.request(.send(try SendRequest(recipient: derm.me.handle, envelope: envelope)))
            }
            await connection.close()

            let report = try await derm.sync()
            #expect(report.failed == 2, "the foreign and the tampered envelope")
            #expect(report.received == 1, "the duplicate is dropped")
            #expect(try await derm.inbox().map(\.id) == [twice.id.description])
            let failures = try await derm.database.writer.read { db in try String.fetchAll(db, sql: "SELECT reason FROM failure ORDER BY seq") }
            #expect(failures == ["unknown_prekey", "decryption_failed"] || failures == ["decryption_failed", "decryption_failed"])
            // Everything was acknowledged: nothing comes back.
            let again = try await derm.sync()
            #expect(again.failed == 0 && again.received == 0)
        }
    }

    /// A consult nobody fetches expires on the relay; the sender's status shows the expiry notice.
    @Test func anUndeliveredConsultExpiresAndTheSenderSeesIt() async throws {
        // The relay reads the test's clock: the envelope's 14 days pass at once, not in real time.
        let daysPassed = NIOLockedValueBox<UInt64>(0)
        try await withStopping(try await Providers.start {
            $0.clock = RelayClock { Timestamp.now().adding(seconds: daysPassed.withLockedValue { $0 } * 86_400) }
            $0.expirySweepInterval = .milliseconds(20)
        }) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            let sent = try await gp.send(try Providers.consult(), to: derm.me.handle)
            _ = try await gp.sync()
            #expect(try await gp.status().first { $0.summary.id == sent.id }?.timeline.map(\.kind).contains(.expired) == false)
            daysPassed.withLockedValue { $0 = 15 }
            // The sweeper looks every 20 ms of real time; its notice reaches the sender on a sync.
            var status = try #require(try await gp.status().first { $0.summary.id == sent.id })
            for _ in 0..<250 where !status.timeline.map(\.kind).contains(.expired) {
                try await Task.sleep(for: .milliseconds(20))
                _ = try await gp.sync()
                status = try #require(try await gp.status().first { $0.summary.id == sent.id })
            }
            #expect(status.timeline.map(\.kind).contains(.expired))
            #expect(status.delivered == nil)
            _ = try await derm.sync()
            #expect(try await derm.inbox().isEmpty)
        }
    }

    /// Each envelope opened with a one-time prekey deletes that prekey; the relay is topped up again on sync.
    @Test func oneTimePrekeysAreDeletedAfterUseAndReplenished() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            let before = try await derm.database.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM prekey WHERE kind = 2") ?? 0 }
            #expect(before == Client.oneTimePrekeyTarget)
            for n in 0..<3 { _ = try await gp.send(try Providers.consult("consult \(n)"), to: derm.me.handle) }
            _ = try await derm.sync()
            // The relay handed out the lowest ids, 1 to 3: opened and deleted; the sync topped the relay up first.
            let used = try await derm.database.writer.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM prekey WHERE kind = 2 AND id IN (1, 2, 3)") ?? -1
            }
            #expect(used == 0, "a one-time prekey opens one envelope, then it is gone")
            let after = try await derm.database.writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM prekey WHERE kind = 2") ?? 0 }
            #expect(after == before)
            #expect(try await SQLiteRelayStore(path: providers.relay.path).oneTimePrekeyCount(for: derm.me.handle) == Client.oneTimePrekeyTarget)
        }
    }
}

extension ClientLiveTests {
    /// A consult signed by a key other than the pinned one is kept but hidden, the sender gets an
    /// `untrusted_sender` receipt, and verifying the new key shows it.
    @Test func aConsultFromAChangedKeyIsHiddenUntilVerified() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            try await derm.database.writer.write { db in
                try db.execute(
                    sql: "INSERT INTO contact (handle, identity_key, pinned_at, verified) VALUES ('amara.gp', ?, 0, 1)",
                    arguments: [Data(SigningKey().verifyingKey.rawRepresentation)]
                )
            }
            let sent = try await gp.send(try Providers.consult(), to: derm.me.handle)
            _ = try await derm.sync()
            let held = try #require(try await derm.inbox().first)
            #expect(held.untrusted && !held.title.contains("Pigmented"))
            let id = try MessageID(rawValue: try #require([UInt8](hexString: sent.id)))
            do {
                _ = try await derm.show(id)
                Issue.record("a message from a changed key was shown")
            } catch let error as ClientError {
                #expect(error.category == .trust)
            }
            _ = try await gp.sync()
            let timeline = try #require(try await gp.status(id).first).timeline
            #expect(timeline.contains { $0.kind == .failed && $0.detail?.hasPrefix("untrusted_sender") == true })

            _ = try await derm.verify(gp.me.handle, safetyNumber: derm.safetyNumber(with: gp.me).description)
            #expect(try await derm.show(id).subject == "Pigmented lesion, left forearm")
        }
    }
}

extension ClientLiveTests {
    /// `watch` stays connected: a consult sent meanwhile arrives by push and is saved and receipted at once, and the
    /// watch reconnects after the relay restarts.
    @Test func watchReceivesPushesAndReconnects() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            let (events, continuation) = AsyncStream<WatchEvent>.makeStream()
            let watching = Task { await derm.watch { continuation.yield($0) } }
            defer { watching.cancel() }
            var iterator = events.makeAsyncIterator()
            func next(_ kind: WatchEvent.Kind) async -> WatchEvent? {
                while let event = await iterator.next() {
                    if event.kind == kind { return event }
                }
                return nil
            }
            #expect(await next(.connected) != nil)
            let sent = try await gp.send(try Providers.consult(), to: derm.me.handle)
            #expect(await next(.received) != nil)
            #expect(try await derm.inbox().map(\.id) == [sent.id])
            // The delivered receipt went out from the watch; the GP sees it on its next sync.
            _ = try await gp.sync()
            let id = try MessageID(rawValue: try #require([UInt8](hexString: sent.id)))
            #expect(try await gp.status(id).first?.delivered != nil)

            await providers.relay.stop()
            #expect(await next(.disconnected) != nil)
            try await providers.relay.start()
            #expect(await next(.connected) != nil, "reconnected after the relay came back")
        }
    }
}

extension ClientLiveTests {
    /// An account that signs a message in another handle's name is caught: the relay logged it in as itself. Nothing
    /// is pinned for the impersonated handle, and its real messages are trusted afterwards.
    @Test func aMessageSignedInAnotherHandlesNameIsRefused() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            let mallory = try await providers.create("mallory.x")
            let connection = try await RelayConnection.open(host: "127.0.0.1", port: providers.relay.port, tls: mallory.tls)
            try await connection.login(as: mallory.me.handle, identity: mallory.identity)
            guard case .bundle(let bundle) = try await connection.request(.fetchBundle(derm.me.handle)) else { return }
            let posing = Party(identityKey: mallory.me.identityKey, handle: gp.me.handle)
            let forged = try Message(sender: posing, recipient: derm.me, content: .consult(try Providers.consult("Forged")))
            let envelope = try SealedEnvelope.seal(forged, to: bundle, signedBy: mallory.identity).encoded
            _ = try await connection.request(.send(try SendRequest(recipient: derm.me.handle, envelope: envelope)))
            await connection.close()

            let report = try await derm.sync()
            #expect(report.failed == 1 && report.received == 0)
            #expect(try await derm.contacts().isEmpty, "nothing pinned for the impersonated handle")
            _ = try await gp.send(try Providers.consult("Real"), to: derm.me.handle)
            _ = try await derm.sync()
            let inbox = try await derm.inbox()
            #expect(inbox.map(\.title) == ["Real"] && inbox.allSatisfy { !$0.untrusted })
        }
    }

    /// A message that cannot be sealed (here: a damaged outbox entry) waits with its reason; it does not stop the
    /// client from sending the rest or receiving.
    @Test func aBrokenOutboxEntryHoldsUpNothingElse() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            let broken = MessageID.random()
            let sealedGarbage = try derm.database.seal([0xFF, 0xFF], column: "message.body", row: broken.rawValue)
            try await derm.database.writer.write { db in
                try db.execute(
                    sql: "INSERT INTO message (id, thread_id, direction, peer, kind, created_at, body) VALUES (?, ?, 'out', 'amara.gp', 1, 0, ?)",
                    arguments: [Data(broken.rawValue), Data(broken.rawValue), sealedGarbage]
                )
                try db.execute(sql: "INSERT INTO outbox (message_id, recipient, queued_at) VALUES (?, 'amara.gp', 0)", arguments: [Data(broken.rawValue)])
            }
            _ = try await gp.send(try Providers.consult(), to: derm.me.handle)
            let report = try await derm.sync()
            #expect(report.received == 1)
            #expect(report.queued == 1 && report.queueError?.code == .profileDamaged)
            _ = try await gp.sync()
            #expect(try await gp.inbox().contains { $0.kind == .receipt }, "derm's receipt went out past the broken entry")
        }
    }

    /// Syncs of one client run one at a time: run together they receive each message once, without errors.
    @Test func concurrentSyncsReceiveEachMessageOnce() async throws {
        try await withStopping(try await Providers.start()) { providers in
            let gp = try await providers.create("amara.gp")
            let derm = try await providers.create("osei.derm")
            for n in 0..<5 { _ = try await gp.send(try Providers.consult("consult \(n)"), to: derm.me.handle) }
            let received = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<3 { group.addTask { try await derm.sync().received } }
                return try await group.reduce(0, +)
            }
            #expect(received == 5)
            #expect(try await derm.inbox().count == 5)
            _ = try await gp.sync()
            let delivered = try await gp.status().filter { $0.delivered != nil }.count
            #expect(delivered == 5, "one delivered receipt each")
        }
    }
}
