import CurbsideTestSupport
import CurbsideWire
import Foundation
import Testing

@testable import CurbsideRelay

/// `RelayMigration` against the stores themselves: what a SQLite relay holds reads back the same, method for method,
/// from the PostgreSQL store it was copied into, and a target that differs from its source is caught.
@Suite("relay migration", .serialized)
struct RelayMigrationTests {
    let gp = try! Handle("amara.gp")
    let derm = try! Handle("osei.derm")
    let cardio = try! Handle("kofi.cardio")
    let now = Timestamp.now()

    /// A SQLite relay in a new directory holding one of everything: an unused enrollment, prekeys, envelopes for three
    /// recipients (one naming an attachment), notices of every kind, a committed attachment and a half-done upload.
    func sqliteRelay() async throws -> (directory: String, partialKey: Int64, committed: [UInt8]) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-migration-\(UUID())")
            .path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let store = try await SQLiteRelayStore(path: "\(directory)/relay.sqlite").withProviders()
        // One account has logged in (`relay accounts` shows when), the others not yet.
        try await store.recordLogin(gp, at: now.adding(seconds: 90))
        let blobs = try BlobStore(root: "\(directory)/attachments")
        try await store.addEnrollment(
            handle: try Handle("new.colleague"),
            codeHash: SHA256.hash([1, 2, 3]),
            expiresAt: now.adding(seconds: 600)
        )
        let dermKey = SigningKey()
        try await store.storePrekeys(
            for: derm,
            signedPrekey: SignedPrekey(
                id: 1,
                publicKey: AgreementKey.Private().publicKey,
                expiresAt: now.adding(seconds: 86_400),
                signedBy: dermKey
            ),
            oneTimePrekeys: (100..<103).map {
                OneTimePrekey(id: $0, publicKey: AgreementKey.Private().publicKey, signedBy: dermKey)
            }
        )

        var generator = SplitMix64(seed: 9)
        let photo = (0..<(600 << 10)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let photoID = SHA256.hash(photo)
        guard
            case .opened(let committed) = try await store.openUpload(
                owner: gp,
                id: photoID,
                size: UInt64(photo.count),
                expiresAt: now.adding(seconds: 600),
                quota: 1 << 30,
                maximumCount: 10
            )
        else { throw RelayError(.storageFailed, "upload not opened") }
        try await blobs.write(photo, at: 0, to: committed.key, declaredSize: UInt64(photo.count))
        try await blobs.commit(committed.key, declaredSize: UInt64(photo.count), sha256: photoID)
        try await store.markCommitted(committed.key, expiresAt: now.adding(seconds: 600))
        let scan = (0..<(900 << 10)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        guard
            case .opened(let partial) = try await store.openUpload(
                owner: cardio,
                id: SHA256.hash(scan),
                size: UInt64(scan.count),
                expiresAt: now.adding(seconds: 600),
                quota: 1 << 30,
                maximumCount: 10
            )
        else { throw RelayError(.storageFailed, "upload not opened") }
        try await blobs.write(Array(scan[0..<(333 << 10)]), at: 0, to: partial.key, declaredSize: UInt64(scan.count))

        func send(
            _ body: String,
            from sender: Handle,
            to recipient: Handle,
            attachments: [[UInt8]] = [],
            expiresAt: Timestamp? = nil
        ) async throws {
            let outcome = try await store.enqueue(
                Submission(
                    body: Array(body.utf8),
                    sender: sender,
                    recipient: recipient,
                    attachments: attachments,
                    storedAt: now,
                    expiresAt: expiresAt ?? now.adding(seconds: 3600)
                )
            )
            guard case .stored = outcome else { throw RelayError(.storageFailed, "not stored: \(outcome)") }
        }
        for index in 0..<5 {
            try await send("gp to derm \(index)", from: gp, to: derm, attachments: index == 2 ? [photoID] : [])
        }
        for index in 0..<3 { try await send("cardio to derm \(index)", from: cardio, to: derm) }
        for index in 0..<3 { try await send("gp to cardio \(index)", from: gp, to: cardio) }
        try await send("gone by now", from: cardio, to: gp, expiresAt: now)
        // Delivered to device, rejected with a reason, expired: each a notice its sender has not fetched.
        _ = try await store.acknowledge([EnvelopeID(of: Array("gp to derm 0".utf8))], by: derm, now: now)
        _ = try await store.reject(
            [(EnvelopeID(of: Array("cardio to derm 1".utf8)), .undecryptable)],
            by: derm,
            now: now
        )
        _ = try await store.expire(now: now.adding(seconds: 1))
        return (directory, partial.key, photoID)
    }

    func migration(_ directory: String, into target: PostgresSettings) -> RelayMigration {
        RelayMigration(
            storePath: "\(directory)/relay.sqlite",
            attachmentsPath: "\(directory)/attachments",
            target: target,
            options: {
                var options = RelayMigration.Options()
                options.batchRows = 3
                options.chunkBytes = 100 << 10
                return options
            }(),
            logger: TestPostgres.logger
        )
    }

    @Test func whatTheSQLiteStoreHeldReadsTheSameFromPostgreSQL() async throws {
        let (directory, partialKey, photoID) = try await sqliteRelay()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let settings = try await TestPostgres.shared.newDatabase()
        guard case .migrated(let report) = try await migration(directory, into: settings).run() else {
            Issue.record("a new database was taken for migrated")
            return
        }
        #expect(report.checks.count == 11 && report.checks.allSatisfy(\.matches), "\(report.checks)")
        #expect(report.attachments == 2 && report.partialAttachments == 1 && report.resumedAt == nil)
        guard case .alreadyMigrated = try await migration(directory, into: settings).run() else {
            Issue.record("a second run did not say it was done")
            return
        }

        // The SQLite store open beside, in a scope of its own: the run after it needs relay.sqlite closed.
        do {
            let before = try SQLiteRelayStore(path: "\(directory)/relay.sqlite")
            let after = try await PostgresRelayStore.open(settings: settings, logger: TestPostgres.logger)
            #expect(try await before.statistics() == after.statistics())
            // Accounts with when each last logged in (it was not copied before).
            let accounts = try await after.accounts()
            #expect(Set(try await before.accounts()) == Set(accounts))
            #expect(accounts.first { $0.handle == gp }?.lastSeenAt == now.adding(seconds: 90))
            for handle in [gp, derm, cardio] {
                #expect(try await before.identityKey(for: handle) == after.identityKey(for: handle))
                // Sequences, ids, bodies, times and order, as they were.
                let queue = try await before.pending(for: handle, after: 0, limit: 100, maximumBytes: 1 << 20)
                #expect(try await after.pending(for: handle, after: 0, limit: 100, maximumBytes: 1 << 20) == queue)
                #expect(try await before.queueUsage(for: handle) == after.queueUsage(for: handle))
                #expect(
                    try await before.notices(for: handle, after: 0, limit: 100)
                        == after.notices(for: handle, after: 0, limit: 100)
                )
            }
            let kinds =
                try await after.notices(for: gp, after: 0, limit: 100).map(\.kind)
                + after.notices(for: cardio, after: 0, limit: 100).map(\.kind)
            #expect(Set(kinds) == [.deliveredToDevice, .expired, .rejected(.undecryptable)])
            #expect(
                try await before.takeBundle(for: derm, withOneTimePrekey: true)?.bundle
                    == after.takeBundle(for: derm, withOneTimePrekey: true)?.bundle
            )

            // The committed attachment downloads whole; the upload stands where it stood, and goes on from there.
            let storage = PostgresAttachmentStorage(store: after)
            let committed = try #require(try await after.downloadable(photoID, by: derm))
            let blobs = try BlobStore(root: "\(directory)/attachments")
            #expect(
                try await storage.read(committed.key, from: 0, length: 1 << 20)
                    == blobs.read(committed.key, from: 0, length: 1 << 20)
            )
            #expect(try await storage.progress(partialKey) == 333 << 10)
            try await storage.write([7], at: 333 << 10, to: partialKey, declaredSize: 900 << 10)
            #expect(try await storage.progress(partialKey) == (333 << 10) + 1)

            // New rows continue after the copied ones: the sequence after SQLite's last (an expired envelope's, deleted).
            var highest: Int64 = 0
            for handle in [gp, derm, cardio] {
                highest = max(
                    highest,
                    try await before.pending(for: handle, after: 0, limit: 100, maximumBytes: 1 << 20).map(\.sequence)
                        .max() ?? 0
                )
            }
            guard
                case .stored(let sequence) = try await after.enqueue(
                    Submission(
                        body: [1, 2, 3],
                        sender: gp,
                        recipient: derm,
                        storedAt: now,
                        expiresAt: now.adding(seconds: 60)
                    )
                )
            else {
                Issue.record("not stored")
                return
            }
            #expect(sequence > highest + 1, "sequence \(sequence) after \(highest) and the expired envelope")
            await after.close()
        }

        // The bundle taken above changed relay.sqlite: the finished migration no longer matches its source.
        let changed = await #expect(throws: RelayMigrationError.self) {
            try await migration(directory, into: settings).run()
        }
        #expect(changed?.code == .sourceChanged)
        #expect(changed?.message.contains("changed after it was migrated into database \(settings.database)") == true)
    }

    /// The check can fail: a body changed in the target between copy and verification is found, named, and the
    /// migration stays unfinished.
    @Test func aTargetThatDiffersFromItsSourceFailsVerification() async throws {
        let (directory, _, _) = try await sqliteRelay()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let settings = try await TestPostgres.shared.newDatabase()
        guard case .migrated = try await migration(directory, into: settings).run() else {
            Issue.record("not migrated")
            return
        }
        let cluster = try await TestPostgres.shared.currentCluster()
        try cluster.psql(
            """
            UPDATE envelope SET body = '\\x00'::bytea WHERE sequence = (SELECT min(sequence) FROM envelope);
            UPDATE attachment_chunk SET data = '\\x00'::bytea || substring(data FROM 2) WHERE "offset" = 0;
            UPDATE migration_progress SET step = 'verify', finished_at = NULL;
            """,
            database: settings.database
        )
        let error = await #expect(throws: RelayMigrationError.self) {
            try await migration(directory, into: settings).run()
        }
        #expect(error?.code == .verificationFailed, "\(String(describing: error))")
        // A committed attachment that no longer hashes to its name is named before any table is compared; the
        // partial upload's first byte changed too, so once that is put back the tables and bytes still differ.
        #expect(error?.message.contains("does not match its SHA-256") == true, "\(String(describing: error))")
        try cluster.psql(
            """
            DELETE FROM attachment_chunk WHERE attachment = (SELECT key FROM attachment WHERE complete);
            UPDATE attachment SET complete = FALSE, held = 0 WHERE complete;
            """,
            database: settings.database
        )
        let again = await #expect(throws: RelayMigrationError.self) {
            try await migration(directory, into: settings).run()
        }
        #expect(again?.code == .verificationFailed)
        #expect(
            Set(again?.checks.filter { !$0.matches }.map(\.name) ?? []) == [
                "envelope", "attachment", "attachment_data",
            ],
            "\(String(describing: again?.checks))"
        )
    }
}
