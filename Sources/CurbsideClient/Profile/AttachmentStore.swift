import CurbsideWire
import Foundation
import GRDB

/// A row of the `attachment` table: one file of a message, encrypted on disk; name, media type and single-use
/// identity sealed, bound to the message and index.
struct AttachmentRecord: Sendable {
    let messageID: MessageID
    let index: Int
    /// Sealed (`attachment.file_name`).
    let fileName: Data
    /// Sealed (`attachment.media_type`).
    let mediaType: Data
    /// Size of the encrypted file.
    let size: UInt64
    let sha256: [UInt8]
    /// Sealed (`attachment.identity`): the age identity that decrypts the file.
    let identity: Data
    /// The encrypted file.
    let path: String
    let state: AttachmentState
    /// The upload begun while the file was encrypted, under a provisional id (spec/relay.md §Attachments).
    let provisional: ProvisionalUpload?

    init(row: Row) throws {
        messageID = try MessageID(rawValue: Array(row["message_id"] as Data))
        index = Int(row["idx"] as Int64)
        fileName = row["file_name"]
        mediaType = row["media_type"]
        size = UInt64(row["size"] as Int64)
        sha256 = Array(row["sha256"] as Data)
        identity = row["identity"]
        path = row["path"]
        guard let state = AttachmentState(rawValue: row["state"]) else {
            throw ClientError(.profileDamaged, "an attachment of message \(messageID) has an unknown state in the profile database")
        }
        self.state = state
        if let id = row["upload_id"] as Data?, let bound = row["upload_bound"] as Int64? {
            provisional = ProvisionalUpload(id: Array(id), bound: UInt64(bound))
        } else {
            provisional = nil
        }
    }

    /// The row identifier its sealed values are bound to.
    static func sealingRow(_ messageID: MessageID, _ index: Int) -> [UInt8] {
        messageID.rawValue + [UInt8(truncatingIfNeeded: index)]
    }
}

/// The SQL of the `attachment` table.
enum AttachmentStore {
    /// Message `id`'s attachments, in order.
    static func attachments(_ db: Database, of id: MessageID) throws -> [AttachmentRecord] {
        try Row.fetchAll(db, sql: "SELECT * FROM attachment WHERE message_id = ? ORDER BY idx", arguments: [Data(id.rawValue)])
            .map(AttachmentRecord.init(row:))
    }

    /// Records an attachment, sealing its file name, media type and identity.
    static func insert(
        _ db: Database,
        _ database: ProfileDatabase,
        _ id: MessageID,
        index: Int,
        fileName: String,
        mediaType: String,
        size: UInt64,
        sha256: [UInt8],
        identity: AgreementKey.Private,
        path: String,
        state: AttachmentState,
        provisional: ProvisionalUpload? = nil
    ) throws {
        let row = AttachmentRecord.sealingRow(id, index)
        try db.execute(
            sql: """
                INSERT INTO attachment (message_id, idx, file_name, media_type, size, sha256, identity, path, state, upload_id, upload_bound)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                Data(id.rawValue), index, try database.seal(Array(fileName.utf8), column: "attachment.file_name", row: row),
                try database.seal(Array(mediaType.utf8), column: "attachment.media_type", row: row), Int64(size), Data(sha256),
                try database.seal(identity.rawRepresentation.copiedBytes, column: "attachment.identity", row: row), path,
                state.rawValue, provisional.map { Data($0.id) }, provisional.map { Int64($0.bound) },
            ]
        )
    }

    static func setState(_ db: Database, _ id: MessageID, index: Int, _ state: AttachmentState) throws {
        try db.execute(
            sql: "UPDATE attachment SET state = ? WHERE message_id = ? AND idx = ?",
            arguments: [state.rawValue, Data(id.rawValue), Int64(index)]
        )
    }

    /// Deletes message `id`'s attachment rows and returns the paths of their files, for the caller to unlink once the
    /// transaction has committed.
    static func deleteAll(_ db: Database, of id: MessageID) throws -> [String] {
        let paths = try String.fetchAll(db, sql: "SELECT path FROM attachment WHERE message_id = ?", arguments: [Data(id.rawValue)])
        try db.execute(sql: "DELETE FROM attachment WHERE message_id = ?", arguments: [Data(id.rawValue)])
        return paths
    }

    /// Sent attachments whose encrypted copy is no longer needed: the message left the outbox and its recipient's
    /// device has it (`delivered_to_device` or `delivered`), or the relay dropped it (`expired`), or — with
    /// `storedBefore` — the relay stored it before that time (milliseconds since 1970).
    static func releasable(_ db: Database, storedBefore: Int64? = nil) throws -> [(id: MessageID, index: Int, path: String, size: UInt64)] {
        let done = [DeliveryState.deliveredToDevice, .delivered, .expired].map { "'\($0.rawValue)'" }.joined(separator: ", ")
        let stored = storedBefore == nil ? "" : " OR (e.kind = '\(DeliveryState.stored.rawValue)' AND e.at < ?)"
        return try Row.fetchAll(
            db,
            sql: """
                SELECT a.message_id, a.idx, a.path, a.size FROM attachment a JOIN message m ON m.id = a.message_id
                WHERE m.direction = ? AND a.state IN (?, ?)
                AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = a.message_id)
                AND EXISTS (SELECT 1 FROM event e WHERE e.message_id = a.message_id AND (e.kind IN (\(done))\(stored)))
                """,
            arguments: StatementArguments(
                [Direction.outgoing.rawValue, AttachmentState.ready.rawValue, AttachmentState.uploaded.rawValue] + (storedBefore.map { [$0] } ?? [])
            )
        ).map { row in
            (try MessageID(rawValue: Array(row["message_id"] as Data)), Int(row["idx"] as Int64), row["path"], UInt64(row["size"] as Int64))
        }
    }

    /// Every attachment file path the profile refers to.
    static func allPaths(_ db: Database) throws -> Set<String> {
        Set(try String.fetchAll(db, sql: "SELECT path FROM attachment"))
    }

    /// Bytes of attachments saved from `peer`'s messages received since `since` (milliseconds since 1970).
    static func savedBytes(_ db: Database, from peer: Handle, receivedSince since: Int64) throws -> Int64 {
        try Int64.fetchOne(
            db,
            sql: """
                SELECT COALESCE(SUM(a.size), 0) FROM attachment a JOIN message m ON m.id = a.message_id
                WHERE m.direction = ? AND m.peer = ? AND m.received_at >= ? AND a.state = ?
                """,
            arguments: [Direction.incoming.rawValue, peer.rawValue, since, AttachmentState.saved.rawValue]
        ) ?? 0
    }
}
