import CurbsideWire
import Foundation
import GRDB

extension Client {
    var attachmentsDirectory: URL { home.appendingPathComponent("attachments") }

    /// Encrypts the files for message `id` and records them; the files are uploaded when the message is sent. Files
    /// of at least `uploadWhileEncryptingFrom` bytes are uploaded as they are encrypted, on a connection of their
    /// own (`uploadWhileEncrypting`), which goes on after this returns, so the message is queued as soon as its
    /// files are encrypted, as without it; the flush waits for that upload, then finds the file on the relay or
    /// continues it. Returns the files, and the network error that kept the relay out of reach, if one did by then
    /// (the flush need not try again now).
    func prepareAttachments(_ sources: [AttachmentSource], for id: MessageID) async throws
        -> (files: [(PreparedAttachment, AttachmentSource)], unreachable: ClientError?)
    {
        guard sources.count <= 16 else { throw ClientError(.invalidArgument, "at most 16 attachments per message") }
        let directory = attachmentsDirectory
        try makePrivateDirectory(directory, allowExisting: true)
        var prepared: [(PreparedAttachment, AttachmentSource)] = []
        var unreachable: ClientError?
        do {
            for (index, source) in sources.enumerated() {
                let path = directory.appendingPathComponent("\(id)-\(index).age").path
                let size = (try? FileManager.default.attributesOfItem(atPath: source.path)[.size] as? UInt64) ?? 0
                let growing = unreachable == nil && size >= uploadWhileEncryptingFrom ? GrowingFile() : nil
                let uploadID = secureRandomBytes(count: 32)
                if growing != nil {
                    // Forgotten by the relay at the next sync unless the message is queued (`insertAttachments`).
                    try await database.writer.write { db in try AbandonedUploadStore.add(db, [uploadID], at: .now()) }
                }
                // Not a child task: a refused or cancelled file must not wait for the relay (a stalled link, a connect
                // that takes its timeout). Cancelled, it closes its connection and ends.
                let early = growing.map { growing in
                    Task { await self.uploadWhileEncrypting(growing, id: uploadID, path: path, name: source.fileName) }
                }
                var file: PreparedAttachment
                do {
                    file = try await BlockingWork.run {
                        try AttachmentFiles.prepare(
                            source,
                            into: path,
                            growing: growing,
                            progress: { self.report(.encryption, source.fileName, $0, $1) },
                            stop: { try self.checkSendingAllowed() }
                        )
                    }
                } catch {
                    growing?.finish(.failed)
                    early?.cancel()
                    throw error
                }
                if let early, let growing, let bound = growing.now.bound {
                    file.earlyUpload = ProvisionalUpload(id: uploadID, bound: bound)
                    earlyUploads[uploadID] = early
                    if case .unreachable(let error)? = growing.outcome { unreachable = error }
                }
                prepared.append((file, source))
            }
        } catch {
            // A later file was refused: the message is not queued, so the files encrypted for it go too.
            await discardEarlyUploads(prepared.map(\.0))
            for (file, _) in prepared { unlink(file.path) }
            throw error
        }
        return (prepared, unreachable)
    }

    /// The files of a message that will not be queued: their uploads begun while encrypting stop, and the relay is
    /// told at the next sync to forget them, under their provisional ids (entered before they began) and, in case
    /// one was committed, their hashes. Written whether or not this task was cancelled (Ctrl-C).
    func discardEarlyUploads(_ files: [PreparedAttachment]) async {
        let started = files.filter { $0.earlyUpload != nil }
        guard !started.isEmpty else { return }
        for file in started {
            if let id = file.earlyUpload?.id { earlyUploads.removeValue(forKey: id)?.cancel() }
        }
        let database = self.database
        let hashes = started.map(\.sha256)
        _ = await Task {
            try? await database.writer.write { db in try AbandonedUploadStore.add(db, hashes, at: .now()) }
        }.value
    }

    static func insertAttachments(_ db: Database, _ database: ProfileDatabase, _ prepared: [(PreparedAttachment, AttachmentSource)], for id: MessageID) throws {
        for (index, (file, source)) in prepared.enumerated() {
            // The message is queued: what is uploaded for it is kept (see `prepareAttachments`).
            if let upload = file.earlyUpload { try AbandonedUploadStore.remove(db, upload.id) }
            try AttachmentStore.insert(
                db, database, id, index: index, fileName: source.fileName, mediaType: file.mediaType, size: file.size,
                sha256: file.sha256, identity: file.identity, path: file.path, state: .ready, provisional: file.earlyUpload
            )
        }
    }

    /// The descriptors of message `id`'s attachments, uploading those not yet on the relay.
    func uploadedDescriptors(for id: MessageID, connection: RelayConnection) async throws -> [AttachmentDescriptor] {
        let records = try await database.writer.read { db in try AttachmentStore.attachments(db, of: id) }
        var descriptors: [AttachmentDescriptor] = []
        for record in records {
            let descriptor = try descriptor(record)
            // Always asked: the relay deletes uploads no envelope named within 7 days, and then it is uploaded again.
            // An upload begun while the file was encrypted: this process's own is waited for and decides; one a
            // process that has gone began is continued where it stopped.
            var provisional = record.state == .uploaded ? nil : record.provisional
            if let id = provisional?.id, let early = earlyUploads.removeValue(forKey: id) {
                if case .provisional = await early.value {} else { provisional = nil }
            }
            try await upload(
                record.path, size: descriptor.size, sha256: descriptor.sha256, provisional: provisional, name: descriptor.fileName,
                connection: connection
            )
            if record.state != .uploaded {
                try await database.writer.write { db in try AttachmentStore.setState(db, id, index: record.index, .uploaded) }
            }
            descriptors.append(descriptor)
        }
        return descriptors
    }

    func descriptor(_ record: AttachmentRecord) throws -> AttachmentDescriptor {
        let rowID = AttachmentRecord.sealingRow(record.messageID, record.index)
        let name = String(decoding: try database.unseal(record.fileName, column: "attachment.file_name", row: rowID), as: UTF8.self)
        let identity = try AgreementKey.Private(
            rawRepresentation: SecretBytes(try database.unseal(record.identity, column: "attachment.identity", row: rowID))
        )
        return try AttachmentDescriptor(
            size: record.size,
            sha256: record.sha256,
            mediaType: String(decoding: try database.unseal(record.mediaType, column: "attachment.media_type", row: rowID), as: UTF8.self),
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
            try AttachmentStore.savedBytes(db, from: message.sender.handle, receivedSince: dayAgo)
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
                // It must have the size and SHA-256 the sender gave and decrypt with the identity the sender gave (the
                // plaintext is not kept): checked as it downloads, or here for a file an earlier run left.
                let identity = descriptor.ageIdentity
                let (name, size, sha256) = (descriptor.fileName, descriptor.size, descriptor.sha256)
                if FileManager.default.fileExists(atPath: path) {
                    do {
                        try await BlockingWork.run {
                            try AttachmentFiles.check(
                                path, size: size, sha256: sha256, identity: identity,
                                progress: { self.report(.verification, name, $0, $1) }
                            )
                        }
                    } catch is AttachmentCheckFailed {
                        unlink(path)
                    }
                }
                if !FileManager.default.fileExists(atPath: path) {
                    try await download(sha256, size: size, identity: identity, to: path, name: name, connection: connection)
                }
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
            try AttachmentStore.insert(
                db, database, localID, index: index, fileName: descriptor.fileName, mediaType: descriptor.mediaType,
                size: descriptor.size, sha256: descriptor.sha256, identity: descriptor.ageIdentity,
                path: directory.appendingPathComponent("\(localID)-\(index).age").path, state: states[index]
            )
        }
    }

    /// The attachments of message `id`.
    public func attachments(of id: MessageID) async throws -> [AttachmentInfo] {
        let records = try await database.writer.read { db in try AttachmentStore.attachments(db, of: id) }
        return try records.map { record in
            let descriptor = try descriptor(record)
            return AttachmentInfo(
                index: record.index, fileName: descriptor.fileName, mediaType: descriptor.mediaType, size: descriptor.size,
                contentSize: record.state.hasFile ? AttachmentFiles.contentSize(ofEncryptedFile: record.path) : nil,
                sha256: descriptor.sha256.hexString, state: record.state
            )
        }
    }

    /// Decrypts message `id`'s saved attachments into `directory`; with `raw`, writes each as received (`NAME.age`)
    /// with its single-use identity (`NAME.key`, `AGE-SECRET-KEY-1…`) instead, for checking with another age
    /// implementation. Returns the paths written.
    public func saveAttachments(of id: MessageID, to directory: String, raw: Bool = false) async throws -> [String] {
        let records = try await database.writer.read { db in try AttachmentStore.attachments(db, of: id) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var written: [String] = []
        for record in records where record.state.hasFile {
            let descriptor = try descriptor(record)
            let name = Self.safeFileName(descriptor.fileName, index: record.index)
            let target = Self.unusedPath(directory, name + (raw ? ".age" : ""))
            let source = record.path
            if raw {
                try await BlockingWork.run { try FileManager.default.copyItem(atPath: source, toPath: target) }
                let keyPath = Self.unusedPath(directory, name + ".key")
                try writePrivateFile(keyPath, Data((AgeKeys.encode(identity: descriptor.ageIdentity) + "\n").utf8))
                written += [target, keyPath]
            } else {
                let identity = descriptor.ageIdentity
                let name = descriptor.fileName
                try await BlockingWork.run {
                    try AttachmentFiles.decrypt(source, identity: identity, to: target, progress: { self.report(.decryption, name, $0, $1) })
                }
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
