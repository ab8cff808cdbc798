import CurbsideTestSupport
import CurbsideWire
import Foundation
import Testing

@testable import CurbsideRelay

@Suite("envelope queue")
struct EnvelopeQueueTests {
    let gp = try! Handle("amara.gp")
    let derm = try! Handle("osei.derm")
    let cardio = try! Handle("kofi.cardio")
    let now = Timestamp(millisecondsSince1970: 1_800_000_000_000)

    func enqueue(_ store: any RelayStore, _ text: String, to recipient: Handle? = nil, lifetime: UInt64 = 3600)
        async throws -> EnqueueOutcome
    {
        try await store.enqueue(Array(text.utf8), from: gp, to: recipient ?? derm, now: now, expiresAt: now.adding(seconds: lifetime))
    }

    @Test(arguments: StoreKind.allCases) func pendingEnvelopesComeInOrderWithACursor(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        for i in 0..<5 { _ = try await enqueue(store, "envelope \(i)") }
        _ = try await enqueue(store, "for someone else", to: cardio)
        let first = try await store.pending(for: derm, after: 0, limit: 3, maximumBytes: 1 << 20)
        #expect(first.map { String(decoding: $0.body, as: UTF8.self) } == ["envelope 0", "envelope 1", "envelope 2"])
        let rest = try await store.pending(for: derm, after: first.last!.sequence, limit: 10, maximumBytes: 1 << 20)
        #expect(rest.map { String(decoding: $0.body, as: UTF8.self) } == ["envelope 3", "envelope 4"])
        #expect(rest.allSatisfy { $0.sender == gp && $0.recipient == derm })
    }

    @Test(arguments: StoreKind.allCases) func theSameBytesAreStoredOnce(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        let first = try await enqueue(store, "consult")
        let retry = try await enqueue(store, "consult")
        guard case .stored(let sequence) = first else {
            Issue.record("first send not stored: \(first)")
            return
        }
        #expect(retry == .duplicate(sequence: sequence, storedAt: now, expiresAt: now.adding(seconds: 3600)))
        // The same bytes for another recipient are a different envelope: stored, not a duplicate.
        guard case .stored(let next) = try await enqueue(store, "consult", to: cardio) else {
            Issue.record("the same bytes for another recipient must be stored for it")
            return
        }
        #expect(try await store.statistics().queuedEnvelopes == 2)
        // Sequences only grow, whatever a retry's conflicting insert used up: a client's cursor never passes an
        // envelope stored after it.
        #expect(next > sequence)
    }

    @Test(arguments: StoreKind.allCases) func acknowledgingDeletesAndNotifiesTheSender(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        _ = try await enqueue(store, "consult")
        let envelope = try #require(try await store.pending(for: derm, after: 0, limit: 1, maximumBytes: 1 << 20).first)

        // Another account cannot acknowledge (and so delete) it.
        #expect(try await store.acknowledge([envelope.id], by: cardio, now: now).notices.isEmpty)
        #expect(try await store.pending(for: derm, after: 0, limit: 1, maximumBytes: 1 << 20).count == 1)

        let acknowledged = try await store.acknowledge([envelope.id], by: derm, now: now.adding(seconds: 5)).notices
        #expect(acknowledged.map(\.envelopeID) == [envelope.id])
        #expect(acknowledged.map(\.sender) == [gp])
        #expect(try await store.pending(for: derm, after: 0, limit: 1, maximumBytes: 1 << 20).isEmpty)
        let notices = try await store.notices(for: gp, after: 0, limit: 10)
        #expect(notices.map(\.kind) == [.deliveredToDevice])
        #expect(notices.first?.envelopeID == envelope.id && notices.first?.recipient == derm)
        // A second acknowledgement changes nothing.
        #expect(try await store.acknowledge([envelope.id], by: derm, now: now).notices.isEmpty)
        try await store.removeNotices(for: gp, through: notices.last!.sequence)
        #expect(try await store.notices(for: gp, after: 0, limit: 10).isEmpty)
    }

    @Test(arguments: StoreKind.allCases) func expiryDeletesOnlyWhatIsDueAndNoticesEachOne(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        _ = try await enqueue(store, "short", lifetime: 60)
        _ = try await enqueue(store, "long", lifetime: 3600)
        #expect(try await store.expire(now: now.adding(seconds: 59)).notices.isEmpty)
        let expired = try await store.expire(now: now.adding(seconds: 60)).notices
        #expect(expired.map(\.envelopeID) == [EnvelopeID(of: Array("short".utf8))])
        #expect(expired.map(\.kind) == [.expired])
        #expect(try await store.notices(for: gp, after: 0, limit: 10).map(\.kind) == [.expired])
        #expect(try await store.pending(for: derm, after: 0, limit: 10, maximumBytes: 1 << 20).map { String(decoding: $0.body, as: UTF8.self) } == ["long"])
    }

    /// Two relay processes sweeping at once: every expired envelope is deleted once and noticed once.
    @Test(arguments: StoreKind.allCases) func sweepsFromTwoProcessesNoticeEachExpiryOnce(_ kind: StoreKind) async throws {
        let (first, second, cleanUp) = try await kind.makeStorePair()
        defer { cleanUp() }
        _ = try await first.withProviders()
        for index in 0..<60 { _ = try await enqueue(first, "expiring \(index)", lifetime: 60) }
        let stores = [first, second]
        let removals = try await withThrowingTaskGroup(of: Removal.self) { group in
            for round in 0..<8 {
                let store = stores[round % 2]
                group.addTask { try await store.expire(now: now.adding(seconds: 60)) }
            }
            var all: [Removal] = []
            for try await removal in group { all.append(removal) }
            return all
        }
        let noticed = removals.flatMap(\.notices).map(\.envelopeID)
        #expect(noticed.count == 60 && Set(noticed).count == 60, "\(noticed.count) notices for 60 expiries")
        #expect(try await second.notices(for: gp, after: 0, limit: 100).count == 60)
        #expect(try await first.statistics().queuedEnvelopes == 0)
    }

    /// Each sender holds at most its share of a recipient's queue; another sender still gets in (issue 14 item 8).
    @Test(arguments: StoreKind.allCases) func aSenderHoldsAtMostItsShareOfARecipientsQueue(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        func submission(_ body: String, from sender: Handle) -> Submission {
            Submission(
                body: Array(body.utf8), sender: sender, recipient: derm, storedAt: now, expiresAt: now.adding(seconds: 60),
                maximumQueuedEnvelopes: 10, maximumQueuedBytes: 1000, maximumQueuedEnvelopesPerSender: 3, maximumQueuedBytesPerSender: 100
            )
        }
        for index in 0..<3 { #expect(try await store.enqueue(submission("junk \(index)", from: cardio)) != .queueFull) }
        #expect(try await store.enqueue(submission("junk 3", from: cardio)) == .senderShareFull(envelopes: 3, bytes: 18))
        // A retry of what is stored is still answered; another sender is stored.
        guard case .duplicate = try await store.enqueue(submission("junk 0", from: cardio)),
            case .stored = try await store.enqueue(submission("consult", from: gp))
        else {
            Issue.record("a retry or another sender's consult was refused")
            return
        }
        // Bytes count too: 100 bytes per sender.
        #expect(try await store.enqueue(submission(String(repeating: "x", count: 94), from: gp)) == .senderShareFull(envelopes: 1, bytes: 7))
        // Acknowledging frees the share.
        _ = try await store.acknowledge([EnvelopeID(of: Array("junk 0".utf8))], by: derm, now: now)
        guard case .stored = try await store.enqueue(submission("junk 3", from: cardio)) else {
            Issue.record("the share was not freed")
            return
        }
    }

    /// One group commit's batch is decided send by send, in order, against the counts the sends before it leave:
    /// the same outcomes, sequences in batch order and attachment links from both stores (on PostgreSQL, the batch
    /// is one call of `curbside_send`).
    @Test(arguments: StoreKind.allCases) func aBatchDecidesEachSendInOrder(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        let expiresAt = now.adding(seconds: 60)
        let image = SHA256.hash(Array("image".utf8))
        let absent = SHA256.hash(Array("never uploaded".utf8))
        guard case .opened(let upload) = try await store.openUpload(
            owner: gp, id: image, size: 50, expiresAt: expiresAt, quota: 1 << 20, maximumCount: 10
        ) else {
            Issue.record("the upload was not opened")
            return
        }
        try await store.markCommitted(upload.key, expiresAt: expiresAt)
        func send(_ body: String, _ sender: Handle, to recipient: Handle, attachments: [[UInt8]] = [], at time: Timestamp? = nil)
            -> Submission
        {
            Submission(
                body: Array(body.utf8), sender: sender, recipient: recipient, attachments: attachments,
                storedAt: time ?? now, expiresAt: (time ?? now).adding(seconds: 60),
                maximumQueuedEnvelopes: 4, maximumQueuedBytes: 1000, maximumQueuedEnvelopesPerSender: 3, maximumQueuedBytesPerSender: 52
            )
        }
        let earlier = Timestamp(millisecondsSince1970: now.millisecondsSince1970 - 5000)
        guard case .stored(let old) = try await store.enqueue(send("o", cardio, to: derm, at: earlier)) else {
            Issue.record("the envelope before the batch was not stored")
            return
        }
        let outcomes = try await store.write(
            [
                send("a", gp, to: derm),
                send("a", gp, to: derm),
                send("lost", gp, to: try Handle("nobody.here")),
                send("b", gp, to: derm, attachments: [image]),
                send("c", gp, to: derm),
                send("d", cardio, to: derm, attachments: [absent]),
                send("e", cardio, to: derm),
                send("f", cardio, to: derm),
                send("x", cardio, to: gp),
                send("o", cardio, to: derm),
            ]
        )
        guard outcomes.count == 10, case .stored(let a) = outcomes[0], case .stored(let b) = outcomes[3],
            case .stored(let e) = outcomes[6], case .stored(let x) = outcomes[8]
        else {
            Issue.record("unexpected outcomes: \(outcomes)")
            return
        }
        #expect(old < a && a < b && b < e && e < x, "sequences follow the batch's order")
        #expect(outcomes[1] == .duplicate(sequence: a, storedAt: now, expiresAt: now.adding(seconds: 60)))
        #expect(outcomes[2] == .unknownRecipient)
        // gp's share of derm's queue is full with "a" and "b" (its 50-byte image counted): 52 bytes.
        #expect(outcomes[4] == .senderShareFull(envelopes: 2, bytes: 52))
        #expect(outcomes[5] == .unknownAttachment(absent))
        // derm's queue is full with "o", "a", "b" and "e"; cardio's share is not.
        #expect(outcomes[7] == .queueFull)
        #expect(outcomes[9] == .duplicate(sequence: old, storedAt: earlier, expiresAt: earlier.adding(seconds: 60)))
        #expect(try await store.statistics().queuedEnvelopes == 5)
        #expect(try await store.queueUsage(for: derm) == (4, 1 + 1 + 51 + 1))
        // The image is linked to "b": acknowledging "b" forgets it, and nothing else did.
        let removal = try await store.acknowledge([EnvelopeID(of: Array("b".utf8))], by: derm, now: now)
        #expect(removal.attachmentFiles == [upload.key])
    }

    /// `pending` bounds the answer as the frame encodes it: routing fields count, not only bodies (issue 14 item 12).
    @Test(arguments: StoreKind.allCases) func pendingCountsEachEnvelopeWithItsRoutingFields(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        let sender = try Handle(String(repeating: "x", count: 64))
        for index in 0..<100 {
            _ = try await store.enqueue(Array("\(index)".utf8) + [UInt8](repeating: 0, count: 400), from: sender, to: derm, now: now, expiresAt: now.adding(seconds: 60))
        }
        let bound = 20_000
        let pending = try await store.pending(for: derm, after: 0, limit: 1000, maximumBytes: bound)
        let delivered = pending.map(\.delivered)
        let body = RelayMessage.envelopes(delivered).frame(requestID: 1).body
        #expect(body.count - 2 <= bound, "\(pending.count) envelopes encode to \(body.count - 2) bytes")
        #expect(pending.count == bound / (117 + 402), "as many as fit, and no fewer")
        for envelope in delivered {
            var writer = WireWriter()
            envelope.encode(to: &writer)
            #expect(writer.bytes.count == DeliveredEnvelope.encodedByteCount(senderByteCount: 64, envelopeByteCount: envelope.envelope.count))
        }
    }

    /// Notices are pruned by each sender's own count: another sender's 10,000 notices leave an unfetched expiry
    /// notice in place (issue 14 item 6).
    @Test(arguments: StoreKind.allCases) func noticesArePrunedPerSender(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        _ = try await enqueue(store, "consult", lifetime: 60)
        #expect(try await store.expire(now: now.adding(seconds: 60)).notices.map(\.kind) == [.expired])
        // kofi.cardio: 10,001 envelopes to osei.derm, all acknowledged, so 10,001 notices of its own.
        var ids: [EnvelopeID] = []
        for index in 0...SQLiteRelayStore.maximumNoticesPerSender {
            let body = Array("junk \(index)".utf8)
            _ = try await store.enqueue(body, from: cardio, to: derm, now: now, expiresAt: now.adding(seconds: 3600))
            ids.append(EnvelopeID(of: body))
        }
        for start in stride(from: 0, to: ids.count, by: 1000) {
            _ = try await store.acknowledge(Array(ids[start..<min(start + 1000, ids.count)]), by: derm, now: now)
        }
        // amara.gp gets a second notice: its own count is 2, so nothing of its own is pruned.
        _ = try await enqueue(store, "second consult")
        _ = try await store.acknowledge([EnvelopeID(of: Array("second consult".utf8))], by: derm, now: now)
        #expect(try await store.notices(for: gp, after: 0, limit: 10).map(\.kind) == [.expired, .deliveredToDevice])
        // kofi.cardio keeps its newest 10,000: the first one is gone.
        let cardioNotices = try await store.notices(for: cardio, after: 0, limit: 20_000)
        #expect(cardioNotices.count == SQLiteRelayStore.maximumNoticesPerSender)
        #expect(cardioNotices.first?.envelopeID == ids[1])
    }

    @Test func queuedEnvelopesSurviveReopening() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-queue-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("relay.sqlite").path
        do {
            let store = try await SQLiteRelayStore(path: path).withProviders()
            _ = try await enqueue(store, "kept across a restart")
        }
        let reopened = try SQLiteRelayStore(path: path)
        let pending = try await reopened.pending(for: derm, after: 0, limit: 10, maximumBytes: 1 << 20)
        #expect(pending.map { String(decoding: $0.body, as: UTF8.self) } == ["kept across a restart"])
        #expect(try await reopened.statistics().queuedBytes == "kept across a restart".utf8.count)
    }

    /// Commits leave the log to the background checkpointer (the writer's own threshold is 64 MiB), which copies
    /// it into the database file while the store stays open: the file grows without any commit checkpointing.
    @Test func theLogIsCheckpointedBesideTheWriter() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-queue-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("relay.sqlite").path
        let store = try await SQLiteRelayStore(path: path).withProviders()
        func size(_ file: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0 }
        let before = size(path)
        let filler = String(repeating: "x", count: 2000)
        for i in 0..<1500 { _ = try await enqueue(store, "envelope \(i) \(filler)") }
        // 1,500 envelopes of 2 KB: past SQLite's default threshold of 1,000 pages, far below the backstop.
        #expect(try await store.database.read { db in try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint") } == 16_384)
        // The writer commits with synchronous = FULL (2): GRDB's own WAL set-up would leave it at NORMAL (1).
        #expect(try await store.database.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } == 2)
        var grown = size(path)
        for _ in 0..<50 where grown < before + 3_000_000 {
            try await Task.sleep(for: .milliseconds(100))
            grown = size(path)
        }
        #expect(grown >= before + 3_000_000, "database file \(before) -> \(grown) bytes")
        // Once everything is checkpointed the next commit starts the log over, and a file past the limit (64 MiB)
        // is cut back to it. One transaction of 72 MB, whose frames the log must hold at once, grows it past.
        let log = path + "-wal"
        try await store.database.write { db in
            try db.execute(sql: "CREATE TABLE filler (bytes BLOB NOT NULL)")
            for _ in 0..<72 { try db.execute(sql: "INSERT INTO filler (bytes) VALUES (zeroblob(1000000))") }
        }
        let logBefore = size(log)
        var logAfter = logBefore
        var later = 0
        while later < 50, logAfter > WALCheckpointer.logSizeLimit {
            _ = try await enqueue(store, "after the burst \(later)")
            later += 1
            try await Task.sleep(for: .milliseconds(100))
            logAfter = size(log)
        }
        #expect(logBefore > WALCheckpointer.logSizeLimit, "the burst's log was \(logBefore) bytes")
        #expect(logAfter <= WALCheckpointer.logSizeLimit, "log file \(logBefore) -> \(logAfter) bytes")
        #expect(try await store.statistics().queuedEnvelopes == 1500 + later)
    }

    /// Concurrent sends of distinct and repeated envelopes through two relay processes' stores on the same data:
    /// every distinct one stored exactly once, none lost, the retries answered as duplicates.
    @Test(arguments: StoreKind.allCases) func concurrentSendsLoseNothingAndStoreRetriesOnce(_ kind: StoreKind) async throws {
        let (first, second, cleanUp) = try await kind.makeStorePair()
        defer { cleanUp() }
        _ = try await first.withProviders()
        let stores = [first, second]
        let outcomes = try await withThrowingTaskGroup(of: EnqueueOutcome.self) { group in
            for i in 0..<200 {
                let store = stores[i % 2]
                group.addTask { try await enqueue(store, "envelope \(i % 100)") }
            }
            var all: [EnqueueOutcome] = []
            for try await outcome in group { all.append(outcome) }
            return all
        }
        let stored = outcomes.filter { if case .stored = $0 { true } else { false } }
        let duplicates = outcomes.filter { if case .duplicate = $0 { true } else { false } }
        #expect(stored.count == 100)
        #expect(duplicates.count == 100)
        #expect(try await first.statistics().queuedEnvelopes == 100)
        #expect(try await second.queueUsage(for: derm).envelopes == 100)
        let commits = (await first.groupCommitCounts, await second.groupCommitCounts)
        #expect(commits.0.envelopes + commits.1.envelopes == 200)
        print("group commit (\(kind)): 200 concurrent sends in \(commits.0.transactions + commits.1.transactions) transactions")
    }
}

import PostgresNIO

@Suite("PostgreSQL notifications")
struct PostgresNotificationTests {
    /// Each envelope a group commit stores is announced once, after its commit, with its recipient and the sequence it
    /// was stored under: the payload the batch INSERT builds in SQL reads back as `FanOutEvent`'s.
    // The limit guards against a hang, not speed: the throw-away cluster may be started for this test, on a loaded machine.
    @Test(.timeLimit(.minutes(3))) func aStoredBatchAnnouncesEachEnvelopeWithItsSequence() async throws {
        let store = try #require(try await StoreKind.postgres.makeStore() as? PostgresRelayStore)
        _ = try await store.withProviders()
        try await withStopping(try await PostgresConnection.connect(
            configuration: store.settings.connectionConfiguration(store.settings.servers[0]),
            id: 1,
            logger: TestPostgres.logger
        )) { listener in
            let notifications = try await listener.listen(FanOutEvent.channel)
            // The listener hears its own NOTIFY once its LISTEN is in place: only then are the sends made, so none of
            // their announcements can go out before anyone listens (a full `make test` once lost them that way).
            var heardSoFar = notifications.makeAsyncIterator()
            try await listener.query(PostgresQuery(unsafeSQL: "NOTIFY \(FanOutEvent.channel), 'listening'"), logger: TestPostgres.logger)
            while let notification = try await heardSoFar.next(), notification.payload != "listening" {}
            let now = Timestamp.now()
            let gp = try Handle("amara.gp")
            let outcomes = try await withThrowingTaskGroup(of: FanOutEvent?.self) { group in
                for (n, recipient) in ["osei.derm", "kofi.cardio", "osei.derm", "amara.gp"].enumerated() {
                    group.addTask {
                        let outcome = try await store.enqueue(
                            Array("envelope \(n)".utf8), from: gp, to: try Handle(recipient), now: now, expiresAt: now.adding(seconds: 60)
                        )
                        guard case .stored(let sequence) = outcome else { return nil }
                        return .envelope(recipient: recipient, sequence: sequence)
                    }
                }
                return try await group.reduce(into: Set<FanOutEvent>()) { if let event = $1 { $0.insert(event) } }
            }
            #expect(outcomes.count == 4)
            var heard: [FanOutEvent] = []
            while let notification = try await heardSoFar.next() {
                var origin = ""
                let event = try #require(FanOutEvent(payload: notification.payload, origin: &origin), "\(notification.payload)")
                #expect(origin == store.origin)
                heard.append(event)
                if heard.count == outcomes.count { break }
            }
            #expect(Set(heard) == outcomes)
            #expect(heard.count == Set(heard).count, "each envelope announced once: \(heard)")
            await store.close()
        }
    }
}

import GRDB
import NIOConcurrencyHelpers

@Suite("store migrations")
struct MigrationTests {
    /// A store made by the first migration alone keeps its accounts when opened by this version.
    @Test func v1StoreMigratesWithItsData() async throws {
        let queue = try DatabaseQueue()
        try SQLiteRelayStore.migrator.migrate(queue, upTo: "v1: accounts and key directory")
        let key = SigningKey().verifyingKey
        try await queue.write { db in
            try db.execute(
                sql: "INSERT INTO account (handle, identity_key, registered_at) VALUES (?, ?, ?)",
                arguments: ["osei.derm", Data(key.rawRepresentation), 1]
            )
        }
        let store = try SQLiteRelayStore(writer: queue)
        #expect(try await store.identityKey(for: Handle("osei.derm")) == key)
        let applied = try await queue.read { db in try SQLiteRelayStore.migrator.appliedMigrations(db) }
        #expect(applied == SQLiteRelayStore.migrator.migrations)
        #expect(applied.count == 7)
    }

    /// An envelope queued before attachments existed is still delivered, and acknowledging it forgets nothing else.
    @Test func v3QueueSurvivesTheAttachmentMigration() async throws {
        let queue = try DatabaseQueue()
        try SQLiteRelayStore.migrator.migrate(queue, upTo: "v3: envelope ids unique per recipient")
        try await queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO envelope (envelope_id, sender, recipient, body, stored_at, expires_at)
                    VALUES (?, 'amara.gp', 'osei.derm', ?, 1, 9999999999999)
                    """,
                arguments: [Data(SHA256.hash([7, 7])), Data([7, 7])]
            )
        }
        let store = try await SQLiteRelayStore(writer: queue).withProviders()
        let derm = try Handle("osei.derm")
        #expect(try await store.queueUsage(for: derm) == (1, 2), "the counters start from what was queued")
        let pending = try await store.pending(for: derm, after: 0, limit: 10, maximumBytes: 1 << 20)
        #expect(pending.map(\.body) == [[7, 7]])
        let removal = try await store.acknowledge(pending.map(\.id), by: derm, now: .now())
        #expect(removal.notices.count == 1 && removal.attachmentFiles.isEmpty)
        #expect(try await store.queueUsage(for: derm) == (0, 0))
        _ = try await store.enqueue([1, 2, 3], from: try Handle("amara.gp"), to: derm, now: .now(), expiresAt: .now())
        _ = try await store.enqueue([4], from: try Handle("amara.gp"), to: derm, now: .now(), expiresAt: Timestamp.now().adding(seconds: 60))
        #expect(try await store.queueUsage(for: derm) == (2, 4))
        _ = try await store.expire(now: Timestamp.now().adding(seconds: 1))
        #expect(try await store.queueUsage(for: derm) == (1, 1), "insert, acknowledgement and expiry all counted")
    }

    /// A v5 queue (before per-sender shares) keeps its envelopes; the counters are rebuilt per sender, with each
    /// envelope's attachments counted against its recipient.
    @Test func v5QueueMigratesToSenderSharesAndAttachmentBytes() async throws {
        let queue = try DatabaseQueue()
        try SQLiteRelayStore.migrator.migrate(queue, upTo: "v5: queue usage counters")
        try await queue.write { db in
            try db.execute(sql: "INSERT INTO attachment (key, owner, sha256, size, complete) VALUES (1, 'amara.gp', ?, 1000, 1)", arguments: [Data(SHA256.hash([9]))])
            for (index, sender) in ["amara.gp", "amara.gp", "kofi.cardio"].enumerated() {
                try db.execute(
                    sql: """
                        INSERT INTO envelope (sequence, envelope_id, sender, recipient, body, stored_at, expires_at)
                        VALUES (?, ?, ?, 'osei.derm', ?, 1, 9999999999999)
                        """,
                    arguments: [index + 1, Data(SHA256.hash([UInt8(index)])), sender, Data([UInt8(index), 0])]
                )
            }
            try db.execute(sql: "INSERT INTO envelope_attachment (envelope, attachment) VALUES (1, 1), (2, 1)")
        }
        let store = try await SQLiteRelayStore(writer: queue).withProviders()
        let derm = try Handle("osei.derm"), gp = try Handle("amara.gp")
        #expect(try await store.queueUsage(for: derm) == (3, 2006), "three envelopes of 2 bytes, two naming 1,000 bytes")
        // amara.gp holds 2 envelopes of 2,004 bytes: a share of 2 is full, kofi.cardio's is not.
        let submission = Submission(body: [7], sender: gp, recipient: derm, storedAt: .now(), expiresAt: .now(), maximumQueuedEnvelopesPerSender: 2)
        #expect(try await store.enqueue(submission) == .senderShareFull(envelopes: 2, bytes: 2004))
        let pending = try await store.pending(for: derm, after: 0, limit: 10, maximumBytes: 1 << 20)
        _ = try await store.acknowledge(pending.map(\.id), by: derm, now: .now())
        #expect(try await store.queueUsage(for: derm) == (0, 0))
        #expect(try await store.database.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM sender_usage") } == 0)
    }
}

@Suite("group commit")
struct GroupCommitTests {
    /// Sends that arrive while a transaction is being written go into the next one together, and each caller gets
    /// its own outcome only after its transaction.
    @Test func sendsArrivingDuringAWriteShareTheNextTransaction() async throws {
        let batches = NIOLockedValueBox<[[UInt8]]>([])
        let committer = GroupCommit { batch in
            batches.withLockedValue { $0.append(batch.map { $0.body[0] }) }
            if batch.first?.body == [0] {
                try await Task.sleep(for: .milliseconds(300))  // a slow first commit: the rest queue up behind it
            }
            return batch.enumerated().map { .stored(sequence: Int64($0.offset)) }
        }
        let handle = try Handle("osei.derm")
        func item(_ n: UInt8) -> GroupCommit.Item {
            .init(body: [n], sender: handle, recipient: handle, storedAt: .now(), expiresAt: .now())
        }
        let outcomes = try await withThrowingTaskGroup(of: EnqueueOutcome.self) { group in
            group.addTask { try await committer.enqueue(item(0)) }
            while await committer.transactions == 0, batches.withLockedValue({ $0.isEmpty }) {
                try await Task.sleep(for: .milliseconds(5))
            }
            for n in 1...9 { group.addTask { try await committer.enqueue(item(UInt8(n))) } }
            var all: [EnqueueOutcome] = []
            for try await outcome in group { all.append(outcome) }
            return all
        }
        #expect(outcomes.count == 10)
        let written = batches.withLockedValue { $0 }
        #expect(written.first == [0])
        #expect(written.count == 2, "the nine later sends shared one transaction: \(written)")
        #expect(Set(written.dropFirst().joined()) == Set(1...9))
        #expect(await committer.transactions == 2)
        #expect(await committer.items == 10)
    }

    @Test func aFailedTransactionFailsEveryoneInIt() async throws {
        struct DiskFull: Error {}
        let committer = GroupCommit { _ in throw DiskFull() }
        let handle = try Handle("osei.derm")
        await #expect(throws: DiskFull.self) {
            try await committer.enqueue(.init(body: [1], sender: handle, recipient: handle, storedAt: .now(), expiresAt: .now()))
        }
    }
}

extension GroupCommitTests {
    /// The caller that leads a batch returns once its own batch is durable, even while more sends keep arriving:
    /// the next batch is written by one of the callers in it.
    @Test func theLeaderIsNotHeldByLaterBatches() async throws {
        let leaderReturned = NIOLockedValueBox(false)
        let sawLeaderReturn = NIOLockedValueBox<Bool?>(nil)
        let batchCount = NIOLockedValueBox(0)
        let committer = GroupCommit { batch in
            let n = batchCount.withLockedValue { $0 += 1; return $0 }
            if n == 1 { try await Task.sleep(for: .milliseconds(200)) }
            if n == 2 {
                for _ in 0..<200 where !leaderReturned.withLockedValue({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
                sawLeaderReturn.withLockedValue { $0 = leaderReturned.withLockedValue { $0 } }
            }
            return batch.map { _ in .stored(sequence: 1) }
        }
        let handle = try Handle("osei.derm")
        func item(_ n: UInt8) -> GroupCommit.Item {
            .init(body: [n], sender: handle, recipient: handle, storedAt: .now(), expiresAt: .now())
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                _ = try await committer.enqueue(item(0))
                leaderReturned.withLockedValue { $0 = true }
            }
            while batchCount.withLockedValue({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(5)) }
            for n in 1...5 { group.addTask { _ = try await committer.enqueue(item(UInt8(n))) } }
            try await group.waitForAll()
        }
        #expect(sawLeaderReturn.withLockedValue { $0 } == true, "the first caller waited for a batch that was not its own")
        #expect(await committer.items == 6)
    }
}
