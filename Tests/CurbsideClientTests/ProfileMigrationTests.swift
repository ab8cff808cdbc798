import CurbsideWire
import Foundation
import GRDB
import Testing

@testable import CurbsideClient

/// A profile written before the receiving migrations (v4 and v5) opens, keeps everything readable, and has what it
/// stored in the clear sealed; the wrong storage key is refused before any migration seals anything with it.
@Suite("profile migrations")
struct ProfileMigrationTests {
    func oldProfile(key: SymmetricKey) throws -> (path: String, message: MessageID, envelope: Data) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-profile-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("profile.sqlite").path
        let queue = try DatabaseQueue(path: path)
        try ProfileDatabase.migrator(storageKey: key).migrate(queue, upTo: "v3: attachments")
        let id = MessageID.random()
        let envelope = Data(repeating: 0xE1, count: 32)
        // Written the way v3 clients wrote them: the signature, media type and event detail in the clear.
        let sealer = try ProfileDatabase(unmigratedFor: key)
        try queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO prekey (kind, id, private_key, created_at) VALUES (2, 7, ?, 0)
                    """,
                arguments: [try sealer.seal([UInt8](repeating: 9, count: 32), column: "prekey.private_key", row: ProfileDatabase.prekeyRow(kind: 2, id: 7))]
            )
            try db.execute(
                sql: """
                    INSERT INTO message (id, thread_id, direction, peer, kind, created_at, received_at, body, signature, envelope_id)
                    VALUES (?, ?, 'in', 'amara.gp', 1, 1, 2, ?, ?, ?)
                    """,
                arguments: [Data(id.rawValue), Data(id.rawValue), try sealer.seal([1, 2, 3], column: "message.body", row: id.rawValue), Data(repeating: 0x5A, count: 64), envelope]
            )
            try db.execute(
                sql: """
                    INSERT INTO attachment (message_id, idx, file_name, media_type, size, sha256, identity, path, state)
                    VALUES (?, 0, ?, 'image/jpeg', 10, ?, ?, '/x', 'saved')
                    """,
                arguments: [
                    Data(id.rawValue), try sealer.seal(Array("forearm.jpg".utf8), column: "attachment.file_name", row: id.rawValue + [0]),
                    Data(repeating: 1, count: 32), try sealer.seal([UInt8](repeating: 3, count: 32), column: "attachment.identity", row: id.rawValue + [0]),
                ]
            )
            try db.execute(
                sql: "INSERT INTO event (message_id, kind, at, detail) VALUES (?, 'failed', 3, 'attachment_corrupt: the scan did not decrypt')",
                arguments: [Data(id.rawValue)]
            )
        }
        try queue.close()
        return (path, id, envelope)
    }

    @Test func anOldProfileIsSealedAndStillReadable() throws {
        let key = SymmetricKey(byteCount: 32)
        let (path, id, envelope) = try oldProfile(key: key)
        let database = try ProfileDatabase(path: path, storageKey: key)
        try database.writer.read { db in
            let row = try #require(try Row.fetchOne(db, sql: "SELECT signature FROM message"))
            #expect(try database.unseal(row["signature"], column: "message.signature", row: id.rawValue) == [UInt8](repeating: 0x5A, count: 64))
            let media = try #require(try Data.fetchOne(db, sql: "SELECT media_type FROM attachment"))
            #expect(String(decoding: try database.unseal(media, column: "attachment.media_type", row: id.rawValue + [0]), as: UTF8.self) == "image/jpeg")
            let detail = try #require(try Data.fetchOne(db, sql: "SELECT detail FROM event"))
            let opened = try database.unseal(detail, column: "event.detail", row: ProfileDatabase.eventRow(id, "failed"))
            #expect(String(decoding: opened, as: UTF8.self) == "attachment_corrupt: the scan did not decrypt")
            // The envelope already opened is remembered, so a re-delivery is not opened again.
            #expect(try Data.fetchAll(db, sql: "SELECT envelope_id FROM seen_envelope") == [envelope])
        }
        let file = try Data(contentsOf: URL(fileURLWithPath: path)) + ((try? Data(contentsOf: URL(fileURLWithPath: path + "-wal"))) ?? Data())
        #expect(file.range(of: Data("image/jpeg".utf8)) == nil && file.range(of: Data("the scan did not decrypt".utf8)) == nil)
    }

    @Test func theWrongKeyIsRefusedBeforeAnythingIsSealedWithIt() throws {
        let (path, _, _) = try oldProfile(key: SymmetricKey(byteCount: 32))
        #expect(throws: ClientError.self) { _ = try ProfileDatabase(path: path, storageKey: SymmetricKey(byteCount: 32)) }
        // Nothing was migrated: the values are still as v3 left them.
        let queue = try DatabaseQueue(path: path)
        #expect(try queue.read { db in try String.fetchOne(db, sql: "SELECT media_type FROM attachment") } == "image/jpeg")
        #expect(try queue.read { db in try ProfileDatabase.migrator(storageKey: SymmetricKey(byteCount: 32)).appliedMigrations(db) }.count == 3)
    }

    /// v6 adds the outbox's error codes beside its sentence: an entry queued before keeps its text and has no code,
    /// so nothing is decided from it until its next attempt records one.
    @Test func outboxErrorCodesAreAddedWithoutTouchingWaitingEntries() throws {
        let key = SymmetricKey(byteCount: 32)
        let (path, id, _) = try oldProfile(key: key)
        let queue = try DatabaseQueue(path: path)
        try ProfileDatabase.migrator(storageKey: key).migrate(queue, upTo: ProfileDatabase.sealingMigration)
        try queue.write { db in
            try db.execute(
                sql: "INSERT INTO outbox (message_id, recipient, queued_at, attempts, last_error) VALUES (?, 'osei.derm', 1, 2, ?)",
                arguments: [Data(id.rawValue), "osei.derm is not registered on the relay (or has not published prekeys yet)"]
            )
        }
        try queue.close()
        let database = try ProfileDatabase(path: path, storageKey: key)
        try database.writer.read { db in
            #expect(try ProfileDatabase.migrator(storageKey: key).appliedIdentifiers(db).contains(ProfileDatabase.outboxErrorCodesMigration))
            let row = try #require(try Row.fetchOne(db, sql: "SELECT attempts, last_error, last_error_code, last_relay_error_code FROM outbox"))
            #expect(row["attempts"] as Int64 == 2)
            #expect((row["last_error"] as String).hasPrefix("osei.derm is not registered"))
            #expect(row["last_error_code"] as Int64? == nil && row["last_relay_error_code"] as Int64? == nil)
        }
    }
    /// v7 stores why an envelope could not be opened as the code its sender was told: a failure recorded before takes
    /// the code still remembered for its envelope, and one whose envelope is forgotten becomes `other`.
    @Test func failureReasonsBecomeCodes() throws {
        let key = SymmetricKey(byteCount: 32)
        let (path, _, _) = try oldProfile(key: key)
        let queue = try DatabaseQueue(path: path)
        try ProfileDatabase.migrator(storageKey: key).migrate(queue, upTo: ProfileDatabase.outboxErrorCodesMigration)
        let remembered = Data(repeating: 0xA1, count: 32), forgotten = Data(repeating: 0xA2, count: 32)
        try queue.write { db in
            for (envelope, at) in [(remembered, 10), (forgotten, 11)] {
                try db.execute(
                    sql: "INSERT INTO failure (envelope_id, relay_sender, at, reason) VALUES (?, 'mallory.gp', ?, 'bad_signature: sent by mallory.gp')",
                    arguments: [envelope, at]
                )
            }
            try db.execute(
                sql: "INSERT INTO seen_envelope (envelope_id, at, rejected_reason) VALUES (?, 10, ?)",
                arguments: [remembered, Int64(Receipt.FailureReason.badSignature.rawValue)]
            )
        }
        try queue.close()
        let database = try ProfileDatabase(path: path, storageKey: key)
        let failures = try database.writer.read { db in try ReceivedEnvelopeStore.failures(db) }
        #expect(failures.map(\.reason) == [.other, .badSignature])
        #expect(failures.map(\.detail) == ["bad_signature", "bad_signature"])
    }

    /// v8 adds the outbox's sending mark: an entry queued before has none, so it can still be cancelled (no `send`
    /// request of it can be with the relay unseen: the old client answered every one before the entry changed).
    @Test func theSendingMarkIsAddedUnsetOnWaitingEntries() throws {
        let key = SymmetricKey(byteCount: 32)
        let (path, id, _) = try oldProfile(key: key)
        let queue = try DatabaseQueue(path: path)
        try ProfileDatabase.migrator(storageKey: key).migrate(queue, upTo: ProfileDatabase.outboxErrorCodesMigration)
        try queue.write { db in
            try db.execute(sql: "INSERT INTO outbox (message_id, recipient, queued_at) VALUES (?, 'osei.derm', 1)", arguments: [Data(id.rawValue)])
        }
        try queue.close()
        let database = try ProfileDatabase(path: path, storageKey: key)
        try database.writer.read { db in
            let applied = try ProfileDatabase.migrator(storageKey: key).appliedIdentifiers(db)
            #expect(applied.contains(ProfileDatabase.outboxSendingMigration))
            #expect(try OutboxStore.sendingMark(db, id) == false)
        }
        try database.writer.write { db in
            let marked = try OutboxStore.markSending(db, id, at: Timestamp(millisecondsSince1970: 5))
            #expect(marked)
            #expect(try OutboxStore.sendingMark(db, id) == true)
            try OutboxStore.clearSending(db, id)
            #expect(try OutboxStore.sendingMark(db, id) == false)
            try OutboxStore.remove(db, id)
            #expect(try OutboxStore.markSending(db, id, at: Timestamp(millisecondsSince1970: 6)) == false, "a cancelled entry is never marked")
        }
    }
}
