import CurbsideWire
import Foundation
import GRDB
import Testing

@testable import CurbsideClient

/// The profile store on an in-memory database: the values each table stores are the ones earlier versions stored
/// (typed states did not change the file), and the queries the client decides on answer as it expects.
@Suite("profile store")
struct ProfileStoreTests {
    let database: ProfileDatabase
    let gp = Party(identityKey: SigningKey().verifyingKey, handle: try! Handle("amara.gp"))
    let derm = try! Handle("osei.derm")

    init() throws {
        let key = SymmetricKey(byteCount: 32)
        database = try ProfileDatabase(unmigratedFor: key)
        try ProfileDatabase.migrator(storageKey: key).migrate(database.writer)
    }

    private func column<T: DatabaseValueConvertible>(_ sql: String, _ arguments: StatementArguments = []) throws -> T? {
        try database.writer.read { db in try T.fetchOne(db, sql: sql, arguments: arguments) }
    }

    @Test func sentMessagesAreStoredAsBefore() throws {
        let id = MessageID.random()
        let receipt = MessageID.random()
        try database.writer.write { db in
            try MessageStore.insertOutgoing(db, id, thread: id, to: derm, kind: .consult, at: .now(), body: Data([1]))
            try MessageStore.insertOutgoing(db, receipt, thread: id, to: derm, kind: .receipt, at: .now(), body: Data([2]))
            try EventStore.add(db, database, id, .deliveredToDevice, at: .now())
        }
        #expect(try column("SELECT direction FROM message WHERE id = ?", [Data(id.rawValue)]) == "out")
        #expect(try column("SELECT kind FROM message WHERE id = ?", [Data(id.rawValue)]) == 1 as Int64)
        #expect(try column("SELECT kind FROM message WHERE id = ?", [Data(receipt.rawValue)]) == 3 as Int64)
        #expect(try column("SELECT kind FROM event WHERE message_id = ?", [Data(id.rawValue)]) == "delivered_to_device")
        let records = try database.writer.read { db in try MessageStore.sentConsultsAndReplies(db) }
        #expect(records.map(\.id) == [id] && records.first?.kind == .consult && records.first?.direction == .outgoing)
        #expect(try database.writer.read { db in try MessageStore.received(db) }.isEmpty)
    }

    @Test func aTimelineIsInOrderAndItsLatestStepIsTheState() throws {
        let id = MessageID.random()
        try database.writer.write { db in
            try EventStore.add(db, database, id, .created, at: Timestamp(millisecondsSince1970: 10))
            try EventStore.add(db, database, id, .failed, at: Timestamp(millisecondsSince1970: 30), detail: "attachment_corrupt: bad")
            try EventStore.add(db, database, id, .stored, at: Timestamp(millisecondsSince1970: 20))
        }
        let timeline = try database.writer.read { db in try EventStore.timeline(db, database, id) }
        #expect(timeline.map(\.kind) == [.created, .stored, .failed])
        #expect(timeline.last?.detail == "attachment_corrupt: bad")
        #expect(try database.writer.read { db in try EventStore.latest(db, id) } == .failed)
        #expect(try database.writer.read { db in try EventStore.contains(db, id, .stored) })
        #expect(try !database.writer.read { db in try EventStore.contains(db, id, .read) })
        // The detail is sealed, never stored as text.
        let sealed: Data? = try column("SELECT detail FROM event WHERE message_id = ? AND kind = 'failed'", [Data(id.rawValue)])
        #expect(sealed.map { !String(decoding: $0, as: UTF8.self).contains("attachment_corrupt") } == true)
    }

    @Test func anEventOfAnUnknownKindIsReportedAsDamage() throws {
        let id = MessageID.random()
        try database.writer.write { db in
            try db.execute(sql: "INSERT INTO event (message_id, kind, at) VALUES (?, 'exploded', 1)", arguments: [Data(id.rawValue)])
        }
        let error = #expect(throws: ClientError.self) { try database.writer.read { db in try EventStore.timeline(db, database, id) } }
        #expect(error?.code == .profileDamaged)
    }

    @Test func aHandleIsPinnedOnFirstUseAndAnotherKeyIsRecordedAsChanged() throws {
        let other = Party(identityKey: SigningKey().verifyingKey, handle: gp.handle)
        let (first, again, changed) = try database.writer.write { db in
            (try ContactStore.pinOnFirstUse(db, gp, now: .now()), try ContactStore.pinOnFirstUse(db, gp, now: .now()),
             try ContactStore.pinOnFirstUse(db, other, now: .now()))
        }
        #expect(first && again && !changed)
        let record = try #require(try database.writer.read { db in try ContactStore.contact(db, gp.handle) })
        #expect(record.identityKey == Data(gp.identityKey.rawRepresentation))
        #expect(record.changedKey == Data(other.identityKey.rawRepresentation) && !record.verified)
        try database.writer.write { db in try ContactStore.markVerified(db, gp.handle, key: record.changedKey!) }
        let verified = try #require(try database.writer.read { db in try ContactStore.all(db) }.first)
        #expect(verified.identityKey == Data(other.identityKey.rawRepresentation) && verified.changedKey == nil && verified.verified)
    }

    @Test func aReceivedMessageIsADuplicateOnlyFromTheSameKey() throws {
        let me = Party(identityKey: SigningKey().verifyingKey, handle: derm)
        let message = try Message(sender: gp, recipient: me, content: .receipt(.delivered(.random())))
        let wireID = Data(message.id.rawValue)
        let senderKey = Data(gp.identityKey.rawRepresentation)
        try database.writer.write { db in
            try MessageStore.insertIncoming(
                db, message, storedAs: message.id, receivedAt: .now(), body: Data([1]), signature: Data([2]), envelopeID: Data([3]), trusted: true
            )
        }
        #expect(try database.writer.read { db in try MessageStore.isDuplicate(db, senderKey: senderKey, wireID: wireID) })
        #expect(try !database.writer.read { db in try MessageStore.isDuplicate(db, senderKey: Data(repeating: 7, count: 32), wireID: wireID) })
        #expect(try column("SELECT direction FROM message WHERE id = ?", [wireID]) == "in")
        let record = try #require(try database.writer.read { db in try MessageStore.message(db, message.id) })
        #expect(record.direction == .incoming && record.kind == .receipt && record.wireID == nil && !record.senderKeyChanged)
    }

    @Test func theFirstEnvelopeKeptForAnOutboxEntryWins() throws {
        let id = MessageID.random()
        try database.writer.write { db in
            try MessageStore.insertOutgoing(db, id, thread: id, to: derm, kind: .reply, at: .now(), body: Data([1]))
            try OutboxStore.add(db, id, to: derm, at: .now())
        }
        let first = try database.writer.write { db in try OutboxStore.keepEnvelope(db, id, [1, 1]) }
        let second = try database.writer.write { db in try OutboxStore.keepEnvelope(db, id, [2, 2]) }
        #expect(first == [1, 1] && second == [1, 1])
        try database.writer.write { db in
            try OutboxStore.recordAttempt(db, id, ClientError(.unreachable, "the relay could not be reached"))
        }
        let entry = try #require(try database.writer.read { db in try OutboxStore.entries(db) }.first)
        #expect(entry.id == id && entry.kind == .reply && entry.attempts == 1 && entry.envelope == Data([1, 1]))
        #expect(try column("SELECT last_error_code FROM outbox") == Int64(ClientError.Code.unreachable.rawValue))
        try database.writer.write { db in try OutboxStore.remove(db, id) }
        #expect(try database.writer.read { db in try OutboxStore.count(db) } == 0)
    }

    @Test func attachmentStatesAreStoredAsTheirWords() throws {
        let id = MessageID.random()
        try database.writer.write { db in
            for (index, state) in AttachmentState.allCases.enumerated() {
                try AttachmentStore.insert(
                    db, database, id, index: index, fileName: "f\(index).png", mediaType: "image/png", size: 10, sha256: [UInt8](repeating: 1, count: 32),
                    identity: AgreementKey.Private(), path: "/x/\(index)", state: state
                )
            }
        }
        let stored: [String] = try database.writer.read { db in
            try String.fetchAll(db, sql: "SELECT state FROM attachment WHERE message_id = ? ORDER BY idx", arguments: [Data(id.rawValue)])
        }
        #expect(stored == ["ready", "uploaded", "discarded", "saved", "unavailable", "corrupt", "too_large", "over_sender_limit"])
        try database.writer.write { db in try AttachmentStore.setState(db, id, index: 0, .uploaded) }
        let records = try database.writer.read { db in try AttachmentStore.attachments(db, of: id) }
        #expect(records.map(\.state) == [.uploaded] + AttachmentState.allCases.dropFirst())
        #expect(records.filter(\.state.hasFile).map(\.index) == [0, 1, 3], "a discarded copy has no file")
    }

    @Test func oneTimePrekeysHandedOutAreMarkedOldestFirstAndDeletedPastTheLimit() throws {
        try database.writer.write { db in
            for id in UInt32(1)...5 {
                try PrekeyStore.insert(db, .oneTime, id: id, privateKey: Data([UInt8(id)]), createdAt: 0, published: id != 5)
            }
            // The relay holds 2 of the 4 published: the two lowest were handed out.
            try PrekeyStore.markHandedOut(db, keepingNewest: 2, at: 100)
        }
        let handedOut: [Int64] = try database.writer.read { db in
            try Int64.fetchAll(db, sql: "SELECT id FROM prekey WHERE kind = 2 AND handed_out_at IS NOT NULL ORDER BY id")
        }
        #expect(handedOut == [1, 2])
        #expect(try database.writer.read { db in try PrekeyStore.unpublishedOneTime(db) }.map(\.id) == [5])
        try database.writer.write { db in try PrekeyStore.deleteHandedOut(db, before: 0, keepingAtMost: 1) }
        #expect(try database.writer.read { db in try PrekeyStore.privateKey(db, .oneTime, id: 1) } == nil)
        #expect(try database.writer.read { db in try PrekeyStore.privateKey(db, .oneTime, id: 2) } == Data([2]))
        try database.writer.write { db in try PrekeyStore.deleteOneTime(db, ids: [5], unpublishedOnly: true) }
        #expect(try database.writer.read { db in try PrekeyStore.unpublishedOneTime(db) }.isEmpty)
    }
}
