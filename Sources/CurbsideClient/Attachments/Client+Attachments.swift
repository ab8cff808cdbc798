import CurbsideWire
import Foundation
import GRDB

/// An attachment as the user sees it.
public struct AttachmentInfo: Sendable, Hashable, Codable {
    public let index: Int
    public let fileName: String
    public let mediaType: String
    /// Size of the encrypted file.
    public let size: UInt64
    public let sha256: String
    /// ready or uploaded (sent); saved, unavailable or corrupt (received).
    public let state: String
}

extension Client {
    var attachmentsDirectory: URL { home.appendingPathComponent("attachments") }

    /// Encrypts the files for message `id` and records them; the files are uploaded when the message is sent.
    func prepareAttachments(_ sources: [AttachmentSource], for id: MessageID) async throws -> [(PreparedAttachment, AttachmentSource)] {
        guard sources.count <= 16 else { throw ClientError(.invalidArgument, "at most 16 attachments per message") }
        let directory = attachmentsDirectory
        return try await BlockingWork.run {
            try makePrivateDirectory(directory, allowExisting: true)
            var prepared: [(PreparedAttachment, AttachmentSource)] = []
            do {
                for (index, source) in sources.enumerated() {
                    let path = directory.appendingPathComponent("\(id)-\(index).age").path
                    prepared.append((try AttachmentFiles.prepare(source, into: path), source))
                }
            } catch {
                // A later file was refused: the message is not queued, so the files encrypted for it go too.
                for (file, _) in prepared { unlink(file.path) }
                throw error
            }
            return prepared
        }
    }

    static func insertAttachments(_ db: Database, _ database: ProfileDatabase, _ prepared: [(PreparedAttachment, AttachmentSource)], for id: MessageID) throws {
        for (index, (file, source)) in prepared.enumerated() {
            let row = id.rawValue + [UInt8(index)]
            try db.execute(
                sql: """
                    INSERT INTO attachment (message_id, idx, file_name, media_type, size, sha256, identity, path, state)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'ready')
                    """,
                arguments: [
                    Data(id.rawValue), index, try database.seal(Array(source.fileName.utf8), column: "attachment.file_name", row: row),
                    try database.seal(Array(file.mediaType.utf8), column: "attachment.media_type", row: row), Int64(file.size), Data(file.sha256),
                    try database.seal(file.identity.rawRepresentation.copiedBytes, column: "attachment.identity", row: row),
                    file.path,
                ]
            )
        }
    }

    /// The descriptors of message `id`'s attachments, uploading those not yet on the relay.
    func uploadedDescriptors(for id: MessageID, connection: RelayConnection) async throws -> [AttachmentDescriptor] {
        let rows = try await database.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM attachment WHERE message_id = ? ORDER BY idx", arguments: [Data(id.rawValue)])
        }
        var descriptors: [AttachmentDescriptor] = []
        for row in rows {
            let descriptor = try descriptor(row, messageID: id)
            // Always asked: the relay deletes uploads no envelope named within 7 days, and then it is uploaded again.
            try await upload(row["path"], size: descriptor.size, sha256: descriptor.sha256, name: descriptor.fileName, connection: connection)
            if row["state"] as String != "uploaded" {
                let index: Int64 = row["idx"]
                try await database.writer.write { db in
                    try db.execute(sql: "UPDATE attachment SET state = 'uploaded' WHERE message_id = ? AND idx = ?", arguments: [Data(id.rawValue), index])
                }
            }
            descriptors.append(descriptor)
        }
        return descriptors
    }

    func descriptor(_ row: Row, messageID id: MessageID) throws -> AttachmentDescriptor {
        let rowID = id.rawValue + [UInt8(row["idx"] as Int64)]
        let name = String(decoding: try database.unseal(row["file_name"], column: "attachment.file_name", row: rowID), as: UTF8.self)
        let identity = try AgreementKey.Private(
            rawRepresentation: SecretBytes(try database.unseal(row["identity"], column: "attachment.identity", row: rowID))
        )
        return try AttachmentDescriptor(
            size: UInt64(row["size"] as Int64),
            sha256: Array(row["sha256"] as Data),
            mediaType: String(decoding: try database.unseal(row["media_type"], column: "attachment.media_type", row: rowID), as: UTF8.self),
            fileName: name,
            ageIdentity: identity
        )
    }

    /// Downloads and checks every attachment of an incoming message, kept under the local id `localID`, before it
    /// is saved and acknowledged; returns each one's state. Attachments past the limits (``AttachmentLimits``) are
    /// not downloaded. A lost connection throws: the envelope is fetched again later and the downloads resume.
    func fetchAttachments(_ message: Message, storedAs localID: MessageID, connection: RelayConnection, now: Timestamp) async throws
        -> [AttachmentState]
    {
        guard !message.attachments.isEmpty else { return [] }
        try makePrivateDirectory(attachmentsDirectory, allowExisting: true)
        let limits = attachmentLimits
        let dayAgo = now.signedMilliseconds - 86_400_000
        // What this sender's attachments took in the last 24 hours: each message naming an upload counts it again,
        // so naming one upload in many envelopes cannot multiply what the profile keeps.
        var fromSender = try await database.writer.read { db in
            try Int64.fetchOne(
                db,
                sql: """
                    SELECT COALESCE(SUM(a.size), 0) FROM attachment a JOIN message m ON m.id = a.message_id
                    WHERE m.direction = 'in' AND m.peer = ? AND m.received_at >= ? AND a.state = 'saved'
                    """,
                arguments: [message.sender.handle.rawValue, dayAgo]
            ) ?? 0
        }
        var states: [AttachmentState] = []
        for (index, descriptor) in message.attachments.enumerated() {
            let path = attachmentsDirectory.appendingPathComponent("\(localID)-\(index).age").path
            if descriptor.size > limits.bytesPerAttachment {
                states.append(.tooLarge)
                continue
            }
            if UInt64(clamping: fromSender) + descriptor.size > limits.bytesPerSenderPerDay {
                states.append(.overSenderLimit)
                continue
            }
            do {
                // Only one process fetches a given attachment at a time (a watch and a sync may overlap).
                let lock = try await BlockingWork.run { try FileLock(path + ".lock") }
                defer { lock.release() }
                if FileManager.default.fileExists(atPath: path) {
                    let (size, digest) = try await BlockingWork.run { try AttachmentFiles.digest(path) }
                    if size != descriptor.size || !constantTimeEquals(digest, descriptor.sha256) { unlink(path) }
                }
                if !FileManager.default.fileExists(atPath: path) {
                    try await download(descriptor.sha256, size: descriptor.size, to: path, name: descriptor.fileName, connection: connection)
                }
                // It must also decrypt with the identity the sender gave; the plaintext is not kept.
                let identity = descriptor.ageIdentity
                try await BlockingWork.run { try AttachmentFiles.verify(path, identity: identity) }
                states.append(.saved)
                fromSender += Int64(descriptor.size)
            } catch let error as ClientError where error.category == .network {
                throw error  // the envelope is fetched again later and the download resumes
            } catch let error as ClientError where error.relayError?.code == .unknownAttachment {
                states.append(.unavailable)
            } catch {
                // Whatever else (wrong size, hash, encryption, a range the relay refuses): this attachment is refused,
                // the message is kept, and the sender is told; nothing blocks the rest of the inbox.
                logger.warning("attachment \(index) of \(localID) refused: \(error)")
                states.append(.corrupt)
            }
        }
        return states
    }

    static func insertReceived(
        _ db: Database,
        _ database: ProfileDatabase,
        _ message: Message,
        storedAs localID: MessageID,
        states: [AttachmentState],
        directory: URL
    ) throws {
        for (index, descriptor) in message.attachments.enumerated() {
            let row = localID.rawValue + [UInt8(index)]
            try db.execute(
                sql: """
                    INSERT INTO attachment (message_id, idx, file_name, media_type, size, sha256, identity, path, state)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    Data(localID.rawValue), index,
                    try database.seal(Array(descriptor.fileName.utf8), column: "attachment.file_name", row: row),
                    try database.seal(Array(descriptor.mediaType.utf8), column: "attachment.media_type", row: row),
                    Int64(descriptor.size), Data(descriptor.sha256),
                    try database.seal(descriptor.ageIdentity.rawRepresentation.copiedBytes, column: "attachment.identity", row: row),
                    directory.appendingPathComponent("\(localID)-\(index).age").path, states[index].rawValue,
                ]
            )
        }
    }

    /// The attachments of message `id`.
    public func attachments(of id: MessageID) async throws -> [AttachmentInfo] {
        let rows = try await database.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM attachment WHERE message_id = ? ORDER BY idx", arguments: [Data(id.rawValue)])
        }
        return try rows.map { row in
            let descriptor = try descriptor(row, messageID: id)
            return AttachmentInfo(
                index: Int(row["idx"] as Int64), fileName: descriptor.fileName, mediaType: descriptor.mediaType,
                size: descriptor.size, sha256: descriptor.sha256.hexString, state: row["state"]
            )
        }
    }

    /// Decrypts message `id`'s saved attachments into `directory`; with `raw`, writes each as received (`NAME.age`)
    /// with its single-use identity (`NAME.key`, `AGE-SECRET-KEY-1…`) instead, for checking with another age
    /// implementation. Returns the paths written.
    public func saveAttachments(of id: MessageID, to directory: String, raw: Bool = false) async throws -> [String] {
        let rows = try await database.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM attachment WHERE message_id = ? ORDER BY idx", arguments: [Data(id.rawValue)])
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var written: [String] = []
        for row in rows where ["saved", "ready", "uploaded"].contains(row["state"] as String) {
            let descriptor = try descriptor(row, messageID: id)
            let name = Self.safeFileName(descriptor.fileName, index: Int(row["idx"] as Int64))
            let target = Self.unusedPath(directory, name + (raw ? ".age" : ""))
            let source: String = row["path"]
            if raw {
                try await BlockingWork.run { try FileManager.default.copyItem(atPath: source, toPath: target) }
                let keyPath = Self.unusedPath(directory, name + ".key")
                try writePrivateFile(keyPath, Data((AgeKeys.encode(identity: descriptor.ageIdentity) + "\n").utf8))
                written += [target, keyPath]
            } else {
                let identity = descriptor.ageIdentity
                try await BlockingWork.run { try AttachmentFiles.decrypt(source, identity: identity, to: target) }
                written.append(target)
            }
        }
        return written
    }

    /// A file name without directories, control or format characters (bidirectional overrides could disguise an
    /// extension), at most 200 bytes; never empty.
    static func safeFileName(_ name: String, index: Int) -> String {
        var cleaned = ""
        for scalar in name.unicodeScalars {
            let unsafe = scalar == "/" || scalar == "\\" || scalar.properties.generalCategory == .control
                || scalar.properties.generalCategory == .format || scalar.properties.generalCategory == .lineSeparator
                || scalar.properties.generalCategory == .paragraphSeparator
            guard cleaned.utf8.count + String(scalar).utf8.count <= 200 else { break }
            cleaned.unicodeScalars.append(unsafe ? "_" : scalar)
        }
        cleaned = cleaned.trimmingCharacters(in: CharacterSet(charactersIn: ". "))
        return cleaned.isEmpty ? "attachment-\(index)" : cleaned
    }

    static func unusedPath(_ directory: String, _ name: String) -> String {
        var candidate = (directory as NSString).appendingPathComponent(name)
        var n = 1
        while FileManager.default.fileExists(atPath: candidate) {
            let base = (name as NSString).deletingPathExtension, ext = (name as NSString).pathExtension
            candidate = (directory as NSString).appendingPathComponent("\(base) (\(n))" + (ext.isEmpty ? "" : ".\(ext)"))
            n += 1
        }
        return candidate
    }
}

/// An advisory lock on a file (flock), released explicitly or when the process ends. Taking it waits for another
/// process's hold: take it through `BlockingWork`.
final class FileLock: Sendable {
    private let fd: Int32

    init(_ path: String) throws {
        fd = open(path, O_RDWR | O_CREAT, 0o600)
        guard fd >= 0 else { throw ClientError(.profileNotWritable, "cannot lock \(path)") }
        flock(fd, LOCK_EX)
    }

    func release() {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
