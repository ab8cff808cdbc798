import CurbsideTestSupport
import CurbsideWire
import Foundation
import Testing

@testable import CurbsideRelay

extension RelayTestSession {
    /// The error code of a reply, or nil when the reply is not an error frame.
    func refusal(_ message: RelayMessage) async throws -> RelayError.Code? {
        guard case .error(let code, _) = try await request(message) else { return nil }
        return RelayError.allCodes.first { $0.rawValue == code }
    }

    func status(_ message: RelayMessage) async throws -> UploadStatus {
        let reply = try await request(message)
        guard case .uploadStatus(let status) = reply else {
            throw RelayError(.unexpectedFrame, "expected upload_status, got \(String(describing: reply))")
        }
        return status
    }

    /// Uploads `bytes[from...]` in chunks of `chunk` bytes; returns the last status.
    @discardableResult
    func upload(_ bytes: [UInt8], id: [UInt8], from start: Int = 0, upTo end: Int? = nil, chunk: Int) async throws -> UploadStatus {
        var offset = start
        var last = try await status(.openUpload(OpenUpload(attachmentID: id, size: UInt64(bytes.count))))
        while offset < (end ?? bytes.count) {
            let stop = min(offset + chunk, end ?? bytes.count)
            last = try await status(.uploadChunk(try UploadChunk(attachmentID: id, offset: UInt64(offset), data: Array(bytes[offset..<stop]))))
            #expect(last.held == UInt64(stop))
            offset = stop
        }
        return last
    }

    /// Downloads a whole attachment in ranges of `chunk` bytes.
    func download(_ id: [UInt8], chunk: UInt32) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        while true {
            let reply = try await request(.download(DownloadRequest(attachmentID: id, offset: UInt64(bytes.count), length: chunk)))
            guard case .attachmentData(let data) = reply else {
                throw RelayError(.unexpectedFrame, "expected attachment_data, got \(String(describing: reply))")
            }
            #expect(data.offset == UInt64(bytes.count))
            bytes += data.data
            if bytes.count == data.size { return bytes }
            guard !data.data.isEmpty else { throw RelayError(.unexpectedFrame, "no progress") }
        }
    }
}

@Suite("attachments over TLS", .serialized)
struct AttachmentLiveTests {
    static func image(_ size: Int, seed: UInt64) -> (bytes: [UInt8], id: [UInt8]) {
        var rng = SplitMix64(seed: seed)
        let bytes = rng.bytes(size)
        return (bytes, SHA256.hash(bytes))
    }

    /// The whole path: upload over two connections (the first dropped mid-way), commit, send naming it, the recipient
    /// downloads by ranges and acknowledges, and the file is gone from the relay's disk.
    @Test func anUploadResumesAfterADropAndTheFileLeavesWithTheLastEnvelope() async throws {
        try await withStopping(try await FileRelay()) { relay in
            let (bytes, id) = Self.image(3 * AttachmentChunk.maximumLength + 12_345, seed: 11)

            // First connection: part of the upload, then the connection drops.
            let dropped = try await relay.session(relay.gp) { gp in
                try await gp.upload(bytes, id: id, upTo: AttachmentChunk.maximumLength + 1000, chunk: 300_000)
            }
            #expect(dropped.held == UInt64(AttachmentChunk.maximumLength + 1000))
            // Second connection: the relay says where to go on.
            let envelope = Array("consult naming the image".utf8)
            try await relay.session(relay.gp) { gp in
                let resumed = try await gp.status(.openUpload(OpenUpload(attachmentID: id, size: UInt64(bytes.count))))
                #expect(resumed.held == UInt64(AttachmentChunk.maximumLength + 1000) && resumed.state == .uploading)
                try await gp.upload(bytes, id: id, from: Int(resumed.held), chunk: AttachmentChunk.maximumLength)
                let committed = try await gp.status(.commitUpload(attachmentID: id))
                #expect(committed.state == .complete && committed.held == UInt64(bytes.count))
                #expect(try await gp.status(.commitUpload(attachmentID: id)) == committed, "committing again changes nothing")
                let send = RelayMessage.send(try SendRequest(recipient: relay.derm.handle, envelope: envelope, attachments: [id]))
                guard case .stored = try await gp.request(send) else {
                    Issue.record("the send naming the image was not stored")
                    return
                }
                let referenced = try await gp.status(.openUpload(OpenUpload(attachmentID: id, size: UInt64(bytes.count))))
                #expect(referenced.expiresAt.millisecondsSince1970 == 0, "named by a queued envelope: no expiry of its own")
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(relay.attachmentsPath)/complete").count == 1)

            // A third account cannot read it.
            let cardioRead = try await relay.session(relay.cardio) { cardio in
                try await cardio.refusal(.download(DownloadRequest(attachmentID: id, offset: 0, length: 10)))
            }
            #expect(cardioRead == .unknownAttachment)
            try await relay.session(relay.derm) { derm in
                guard case .envelopes(let pending) = try await derm.request(.fetch(after: 0, limit: 10)) else { return }
                #expect(pending.map(\.envelope) == [envelope])
                let downloaded = try await derm.download(id, chunk: 700_000)
                #expect(downloaded == bytes)
                #expect(SHA256.hash(downloaded) == id)
                let tail = try await derm.request(.download(DownloadRequest(attachmentID: id, offset: UInt64(bytes.count), length: 5)))
                #expect(tail == .attachmentData(AttachmentData(size: UInt64(bytes.count), offset: UInt64(bytes.count), data: [])))
                #expect(try await derm.refusal(.download(DownloadRequest(attachmentID: id, offset: UInt64(bytes.count) + 1, length: 5))) == .beyondDeclaredSize)
                #expect(try await derm.request(.acknowledge(pending.map(\.envelopeID))) == .acknowledged(count: 1))
                #expect(try await derm.refusal(.download(DownloadRequest(attachmentID: id, offset: 0, length: 5))) == .unknownAttachment)
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(relay.attachmentsPath)/complete").isEmpty)
            let ownerRead = try await relay.session(relay.gp) { gp in
                try await gp.refusal(.download(DownloadRequest(attachmentID: id, offset: 0, length: 5)))
            }
            #expect(ownerRead == .unknownAttachment, "deleted for its owner too")
            #expect(try await SQLiteRelayStore(path: relay.path).statistics().attachments == 0)
        }
    }

    @Test func badChunksAndCommitsAreRefusedAndChangeNothing() async throws {
        try await withStopping(try await FileRelay()) { relay in
            let (bytes, id) = Self.image(10_000, seed: 12)
            try await relay.session(relay.gp) { gp in
                #expect(try await gp.refusal(.uploadChunk(try UploadChunk(attachmentID: id, offset: 0, data: [1]))) == .unknownAttachment)
                try await gp.upload(bytes, id: id, upTo: 4000, chunk: 4000)
                // A gap, a rewrite, a chunk past the declared size, another size, an early commit.
                #expect(try await gp.refusal(.uploadChunk(try UploadChunk(attachmentID: id, offset: 5000, data: [1]))) == .offsetMismatch)
                #expect(try await gp.refusal(.uploadChunk(try UploadChunk(attachmentID: id, offset: 0, data: [1]))) == .offsetMismatch)
                #expect(
                    try await gp.refusal(.uploadChunk(try UploadChunk(attachmentID: id, offset: 4000, data: [UInt8](repeating: 0, count: 6001))))
                        == .beyondDeclaredSize
                )
                #expect(try await gp.refusal(.openUpload(OpenUpload(attachmentID: id, size: 9999))) == .beyondDeclaredSize)
                #expect(try await gp.refusal(.commitUpload(attachmentID: id)) == .uploadIncomplete)
                #expect(try await gp.status(.openUpload(OpenUpload(attachmentID: id, size: 10_000))).held == 4000, "refusals wrote nothing")
                // A send naming an upload that is not committed stores nothing.
                let send = RelayMessage.send(try SendRequest(recipient: relay.derm.handle, envelope: [1], attachments: [id]))
                #expect(try await gp.refusal(send) == .unknownAttachment)

                // Bytes that are not the image: refused at commit and discarded.
                var wrong = bytes
                wrong[9000] ^= 1
                try await gp.upload(wrong, id: id, from: 4000, chunk: 6000)
                #expect(try await gp.refusal(.commitUpload(attachmentID: id)) == .attachmentHashMismatch)
                #expect(try await gp.status(.openUpload(OpenUpload(attachmentID: id, size: 10_000))).held == 0)
                try await gp.upload(bytes, id: id, chunk: 10_000)
                #expect(try await gp.status(.commitUpload(attachmentID: id)).state == .complete)
                #expect(try await gp.refusal(.uploadChunk(try UploadChunk(attachmentID: id, offset: 10_000, data: [1]))) == .beyondDeclaredSize)
            }
            #expect(try await SQLiteRelayStore(path: relay.path).statistics().queuedEnvelopes == 0)
        }
    }

    /// commit_upload_as (spec/relay.md §Attachments): an upload opened under a provisional id with a bound, named by
    /// its SHA-256 at its commit; then every refusal, none of which changes what is stored.
    @Test func anUploadOpenedBeforeItsHashIsKnownIsCommittedUnderIt() async throws {
        try await withStopping(try await FileRelay()) { relay in
            let (bytes, id) = Self.image(2 * AttachmentChunk.maximumLength + 777, seed: 21)
            let provisional = SHA256.hash(Array("provisional".utf8))
            let bound = UInt64(bytes.count + 5000)
            try await relay.session(relay.gp) { gp in
                // An id never opened is unknown: how a client learns that the relay has the operation.
                #expect(try await gp.refusal(.commitUploadAs(CommitUploadAs(uploadID: provisional, attachmentID: id, size: 10))) == .unknownAttachment)
                let opened = try await gp.status(.openUpload(OpenUpload(attachmentID: provisional, size: bound)))
                #expect(opened.held == 0 && opened.size == bound)
                for offset in stride(from: 0, to: bytes.count, by: 600_000) {
                    let end = min(offset + 600_000, bytes.count)
                    let chunk = try UploadChunk(attachmentID: provisional, offset: UInt64(offset), data: Array(bytes[offset..<end]))
                    #expect(try await gp.status(.uploadChunk(chunk)).held == UInt64(end))
                }
                let size = UInt64(bytes.count)
                #expect(try await gp.refusal(.commitUploadAs(CommitUploadAs(uploadID: provisional, attachmentID: id, size: bound + 1))) == .beyondDeclaredSize)
                #expect(try await gp.refusal(.commitUploadAs(CommitUploadAs(uploadID: provisional, attachmentID: id, size: size - 1))) == .uploadIncomplete)
                let committed = try await gp.status(.commitUploadAs(CommitUploadAs(uploadID: provisional, attachmentID: id, size: size)))
                #expect(committed.state == .complete && committed.size == size && committed.held == size)
                // Named by its hash now, and by nothing else.
                #expect(try await gp.status(.openUpload(OpenUpload(attachmentID: id, size: size))) == committed)
                #expect(try await gp.refusal(.uploadChunk(try UploadChunk(attachmentID: provisional, offset: size, data: [1]))) == .unknownAttachment)
                #expect(try await gp.download(id, chunk: 1 << 20) == bytes)
                let send = RelayMessage.send(try SendRequest(recipient: relay.derm.handle, envelope: [7, 7], attachments: [id]))
                guard case .stored = try await gp.request(send) else {
                    Issue.record("a send naming the attachment was not stored")
                    return
                }

                // The same file again under another provisional id: the committed one stays, the new one is forgotten.
                let again = SHA256.hash(Array("provisional again".utf8))
                try await gp.upload(bytes, id: again, chunk: 1 << 20)
                #expect(try await gp.status(.commitUploadAs(CommitUploadAs(uploadID: again, attachmentID: id, size: size))).state == .complete)
                #expect(try await gp.refusal(.commitUploadAs(CommitUploadAs(uploadID: again, attachmentID: id, size: size))) == .unknownAttachment)

                // Bytes that are not the file: refused and discarded; the upload is the hash's, holding nothing.
                let (other, otherID) = Self.image(50_000, seed: 22)
                var wrong = other
                wrong[49_999] ^= 1
                let third = SHA256.hash(Array("provisional third".utf8))
                try await gp.upload(wrong, id: third, chunk: 50_000)
                #expect(try await gp.refusal(.commitUploadAs(CommitUploadAs(uploadID: third, attachmentID: otherID, size: 50_000))) == .attachmentHashMismatch)
                #expect(try await gp.status(.openUpload(OpenUpload(attachmentID: otherID, size: 50_000))).held == 0)

                // An upload begun under the hash is replaced by a whole provisional one of the same file.
                try await gp.upload(other, id: otherID, upTo: 20_000, chunk: 20_000)
                let fourth = SHA256.hash(Array("provisional fourth".utf8))
                try await gp.upload(other, id: fourth, chunk: 50_000)
                #expect(try await gp.status(.commitUploadAs(CommitUploadAs(uploadID: fourth, attachmentID: otherID, size: 50_000))).state == .complete)
                #expect(try await gp.download(otherID, chunk: 1 << 20) == other)

                // A committed upload is never renamed: its own id answers its status, another is a mismatch.
                let asked = try await gp.status(.commitUploadAs(CommitUploadAs(uploadID: id, attachmentID: id, size: size)))
                #expect(asked.state == .complete && asked.held == size && asked.expiresAt.millisecondsSince1970 == 0, "named by the envelope")
                #expect(try await gp.refusal(.commitUploadAs(CommitUploadAs(uploadID: id, attachmentID: provisional, size: size))) == .attachmentHashMismatch)
                #expect(try await gp.download(id, chunk: 1 << 20) == bytes, "nothing was discarded")
            }
            // Another account cannot commit, or learn about, this account's provisional upload.
            let fifth = SHA256.hash(Array("provisional fifth".utf8))
            try await relay.session(relay.gp) { gp in
                try await gp.upload([1, 2, 3], id: fifth, chunk: 3)
            }
            let cardio = try await relay.session(relay.cardio) { cardio in
                try await cardio.refusal(.commitUploadAs(CommitUploadAs(uploadID: fifth, attachmentID: SHA256.hash([1, 2, 3]), size: 3)))
            }
            #expect(cardio == .unknownAttachment)
            let store = try SQLiteRelayStore(path: relay.path)
            #expect(try await store.statistics().attachments == 3, "the hash's, the other file's, the fifth provisional one")
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(relay.attachmentsPath)/partial").count == 1)
        }
    }

    @Test func theAttachmentQuotaRefusesNewUploadsOnly() async throws {
        try await withStopping(try await FileRelay { $0.maximumAttachmentBytesPerAccount = 25_000 }) { relay in
            let first = Self.image(20_000, seed: 13)
            let second = Self.image(6_000, seed: 14)
            try await relay.session(relay.gp) { gp in
                try await gp.upload(first.bytes, id: first.id, chunk: 20_000)
                #expect(try await gp.refusal(.openUpload(OpenUpload(attachmentID: second.id, size: 6_000))) == .quotaExceeded)
                // The upload it has is still answered, and another account has room of its own.
                #expect(try await gp.status(.openUpload(OpenUpload(attachmentID: first.id, size: 20_000))).held == 20_000)
            }
            try await relay.session(relay.derm) { derm in
                try await derm.upload(second.bytes, id: second.id, chunk: 6_000)
                #expect(try await derm.status(.commitUpload(attachmentID: second.id)).state == .complete)
            }
        }
    }

    /// Below the free-space reserve, new envelopes and uploads are refused while fetch, download and acknowledge
    /// go on, and a retry of a stored envelope is still acknowledged.
    @Test func belowTheDiskReserveReadsAndAcknowledgementsGoOn() async throws {
        let (bytes, id) = Self.image(5000, seed: 15)
        let relay = try await FileRelay()
        try await relay.session(relay.gp) { gp in
            try await gp.upload(bytes, id: id, chunk: 5000)
            _ = try await gp.status(.commitUpload(attachmentID: id))
            _ = try await gp.request(.send(try SendRequest(recipient: relay.derm.handle, envelope: [1], attachments: [id])))
        }
        await relay.stop()
        // The same relay, restarted asking for more free space than any disk has.
        try await withStopping(try await FileRelay(directory: URL(fileURLWithPath: relay.path).deletingLastPathComponent(), accounts: .none) {
            $0.minimumFreeDiskBytes = UInt64.max / 2
        }) { full in
            try await full.session(relay.gp) { gp in
                #expect(try await gp.refusal(.send(try SendRequest(recipient: relay.derm.handle, envelope: [2]))) == .storageFull)
                #expect(try await gp.refusal(.openUpload(OpenUpload(attachmentID: SHA256.hash([5]), size: 5))) == .storageFull)
                guard case .stored = try await gp.request(.send(try SendRequest(recipient: relay.derm.handle, envelope: [1], attachments: [id]))) else {
                    Issue.record("a retry of a stored envelope must be acknowledged")
                    return
                }
            }
            try await full.session(relay.derm) { derm in
                guard case .envelopes(let pending) = try await derm.request(.fetch(after: 0, limit: 10)) else { return }
                #expect(pending.map(\.envelope) == [[1]])
                #expect(try await derm.download(id, chunk: 4096) == bytes)
                #expect(try await derm.request(.acknowledge(pending.map(\.envelopeID))) == .acknowledged(count: 1))
            }
        }
    }
}

/// A small tmpfs, so that a full disk is a real one: ENOSPC from the kernel, SQLITE_FULL from SQLite.
struct SmallFileSystem {
    let path: String

    /// Mounts a tmpfs of `megabytes`; nil where mounting is not allowed (not root, or a container without
    /// CAP_SYS_ADMIN), with the reason printed.
    static func mount(megabytes: Int) -> SmallFileSystem? {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-full-\(UUID())").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m,mode=0700", "tmpfs", path]) == 0 else {
            print("skipped: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN); the disk-reserve test still runs")
            try? FileManager.default.removeItem(atPath: path)
            return nil
        }
        return SmallFileSystem(path: path)
    }

    func unmount() {
        _ = Self.run("/bin/umount", ["-l", path])
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Fills the file system with a ballast file, then frees `leaving` bytes of it.
    func fill(leaving: Int) throws {
        let handle = try #require(FileHandle(forWritingAtPath: ballast) ?? {
            FileManager.default.createFile(atPath: ballast, contents: nil)
            return FileHandle(forWritingAtPath: ballast)
        }())
        let block = Data(count: 64 * 1024)
        while (try? handle.write(contentsOf: block)) != nil {}
        let size = try handle.seekToEnd()
        try handle.truncate(atOffset: size - UInt64(leaving))
        try handle.close()
    }

    func empty() throws { try FileManager.default.removeItem(atPath: ballast) }

    private var ballast: String { "\(path)/ballast" }

    private static func run(_ tool: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

extension AttachmentLiveTests {
    /// A disk that is really full: the chunk and the send that do not fit are refused with `storage_full` and leave
    /// nothing half-written; reads and acknowledgements go on; once there is room, the same requests succeed and the
    /// database passes its integrity check.
    @Test func aFullDiskRefusesWritesWithStorageFullAndLosesNothing() async throws {
        guard let disk = SmallFileSystem.mount(megabytes: 16) else { return }
        defer { disk.unmount() }
        let relay = try await FileRelay(directory: URL(fileURLWithPath: "\(disk.path)/relay")) {
            $0.minimumFreeDiskBytes = 0
            $0.freeSpaceCheckInterval = .zero  // every write asks the system: the disk is filled and emptied below
        }
        let (bytes, id) = Self.image(512 * 1024, seed: 16)
        let bigEnvelope = [UInt8](repeating: 7, count: 1 << 20)
        try await relay.session(relay.gp) { gp in
            guard case .stored = try await gp.request(.send(try SendRequest(recipient: relay.derm.handle, envelope: [1]))) else {
                Issue.record("not stored")
                return
            }
            #expect(try await gp.status(.openUpload(OpenUpload(attachmentID: id, size: UInt64(bytes.count)))).held == 0)

            // Let the background checkpoint copy what is committed first: a checkpoint that grows the database file
            // after the disk is filled could take the last 100 KiB, and a checkpoint cut short by ENOSPC keeps the
            // log from starting over, so an acknowledgement would then need new log space (see WALCheckpointer).
            try await Task.sleep(for: .milliseconds(500))
            try disk.fill(leaving: 100 * 1024)
            #expect(try await gp.refusal(.uploadChunk(try UploadChunk(attachmentID: id, offset: 0, data: bytes))) == .storageFull)
            #expect(try await gp.status(.openUpload(OpenUpload(attachmentID: id, size: UInt64(bytes.count)))).held == 0, "nothing half-written")
            // Not the reserve (0 here) but SQLite's own SQLITE_FULL, answered as storage_full.
            let refused = try await gp.request(.send(try SendRequest(recipient: relay.derm.handle, envelope: bigEnvelope)))
            #expect(refused == .error(RelayError(.storageFull, "the relay's disk is full")))
        }
        try await relay.session(relay.derm) { derm in
            guard case .envelopes(let pending) = try await derm.request(.fetch(after: 0, limit: 10)) else { return }
            #expect(pending.map(\.envelope) == [[1]], "the stored envelope is intact and the refused one is not there")
            #expect(try await derm.request(.acknowledge(pending.map(\.envelopeID))) == .acknowledged(count: 1))
        }
        try disk.empty()
        try await relay.session(relay.gp) { gp in
            try await gp.upload(bytes, id: id, chunk: bytes.count)
            #expect(try await gp.status(.commitUpload(attachmentID: id)).state == .complete)
            let retried = try await gp.request(.send(try SendRequest(recipient: relay.derm.handle, envelope: bigEnvelope, attachments: [id])))
            guard case .stored = retried else {
                Issue.record("with room again the send must be stored, got \(String(describing: retried))")
                return
            }
        }
        await relay.stop()
        let integrity = try await SQLiteRelayStore(path: relay.path).database.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
        #expect(integrity == ["ok"])
    }
}

extension BlobStoreTests {
    /// ENOSPC in the middle of a chunk: `storageFull`, and the upload stays at its last good length.
    @Test func aChunkThatMeetsAFullDiskLeavesTheUploadAsItWas() async throws {
        guard let disk = SmallFileSystem.mount(megabytes: 4) else { return }
        defer { disk.unmount() }
        let store = try BlobStore(root: "\(disk.path)/attachments")
        let bytes = Self.content(1 << 20, seed: 17)
        try await store.write(Array(bytes[0..<1000]), at: 0, to: 1, declaredSize: UInt64(bytes.count))
        try disk.fill(leaving: 200 * 1024)
        await #expect(throws: BlobStore.Failure.storageFull) {
            try await store.write(Array(bytes[1000...]), at: 1000, to: 1, declaredSize: UInt64(bytes.count))
        }
        #expect(try await store.progress(1) == 1000)
        try disk.empty()
        try await store.write(Array(bytes[1000...]), at: 1000, to: 1, declaredSize: UInt64(bytes.count))
        try await store.commit(1, declaredSize: UInt64(bytes.count), sha256: SHA256.hash(bytes))
        #expect(try await store.read(1, from: 0, length: bytes.count) == bytes)
    }
}

extension AttachmentLiveTests {
    /// Offsets near 2^64 are refused with an error, not an overflow that would stop the relay.
    @Test func chunksAtHugeOffsetsAreRefusedAndTheRelayCarriesOn() async throws {
        try await withStopping(try await FileRelay()) { relay in
            let (bytes, id) = Self.image(5000, seed: 18)
            try await relay.session(relay.gp) { gp in
                _ = try await gp.status(.openUpload(OpenUpload(attachmentID: id, size: 5000)))
                for offset in [UInt64.max, UInt64.max - 1, UInt64(Int64.max), 1 << 40] {
                    #expect(try await gp.refusal(.uploadChunk(try UploadChunk(attachmentID: id, offset: offset, data: [1, 2]))) == .beyondDeclaredSize)
                }
                try await gp.upload(bytes, id: id, chunk: 5000)
                #expect(try await gp.status(.commitUpload(attachmentID: id)).state == .complete)
                #expect(try await gp.refusal(.download(DownloadRequest(attachmentID: id, offset: UInt64.max, length: 10))) == .beyondDeclaredSize)
            }
        }
    }

    /// Many small uploads cost files and rows however few bytes they declare: the count is capped too.
    @Test func theNumberOfUploadsPerAccountIsCapped() async throws {
        try await withStopping(try await FileRelay { $0.maximumAttachmentsPerAccount = 3 }) { relay in
            try await relay.session(relay.gp) { (gp: RelayTestSession) async throws in
                for n in 0..<3 {
                    #expect(try await gp.status(.openUpload(OpenUpload(attachmentID: SHA256.hash([UInt8(n)]), size: 1))).held == 0)
                }
                #expect(try await gp.refusal(.openUpload(OpenUpload(attachmentID: SHA256.hash([9]), size: 1))) == .quotaExceeded)
            }
        }
    }
}

extension AttachmentLiveTests {
    /// A file the store does not know (left by a race or a crash) is removed by the sweeper; files of uploads are kept.
    @Test func theSweeperRemovesFilesTheStoreForgot() async throws {
        try await withStopping(try await FileRelay { $0.expirySweepInterval = .milliseconds(50) }) { relay in
            let (bytes, id) = Self.image(3000, seed: 19)
            _ = try await relay.session(relay.gp) { gp in
                try await gp.upload(bytes, id: id, upTo: 1000, chunk: 1000)
            }
            let orphan = "\(relay.attachmentsPath)/complete/999999"
            FileManager.default.createFile(atPath: orphan, contents: Data([1, 2, 3]))
            for _ in 0..<200 where FileManager.default.fileExists(atPath: orphan) { try await Task.sleep(for: .milliseconds(20)) }
            #expect(!FileManager.default.fileExists(atPath: orphan))
            let resumed = try await relay.session(relay.gp) { gp in
                try await gp.status(.openUpload(OpenUpload(attachmentID: id, size: 3000)))
            }
            #expect(resumed.held == 1000, "the upload in progress kept its file")
        }
    }
}

extension RelayShutdownTests {
    /// A client that asks for downloads and never reads the answers cannot keep the relay from stopping: after the
    /// grace period its connection is closed regardless.
    @Test func aClientThatStopsReadingDoesNotHoldUpTheStop() async throws {
        let relay = try await FileRelay { $0.shutdownGracePeriod = .milliseconds(500) }
        let (bytes, id) = AttachmentLiveTests.image(AttachmentChunk.maximumLength, seed: 20)
        try await relay.session(relay.gp) { gp in
            try await gp.upload(bytes, id: id, chunk: bytes.count)
            _ = try await gp.status(.commitUpload(attachmentID: id))
        }
        let (channel, info) = try await connectRelayClient(port: relay.port)
        try await channel.executeThenClose { inbound, outbound in
            var frames = inbound.makeAsyncIterator()
            guard case .challenge(let challenge) = try RelayMessage(decoding: try #require(try await frames.next())) else { return }
            let login = LoginRequest(handle: relay.gp.handle, challenge: challenge, channelBinding: info.channelBinding, signedBy: relay.gp.key)
            try await outbound.write(RelayMessage.login(login).frame(requestID: 1))
            _ = try await frames.next()
            // 64 MiB of answers asked for, none read: the relay's writes stall.
            for n in 0..<64 {
                let request = DownloadRequest(attachmentID: id, offset: 0, length: UInt32(AttachmentChunk.maximumLength))
                try await outbound.write(RelayMessage.download(request).frame(requestID: UInt32(10 + n)))
            }
            try await Task.sleep(for: .milliseconds(300))
            let stopped = Task { await relay.stop() }
            let watchdog = Task {
                try await Task.sleep(for: .seconds(60))
                Issue.record("the relay did not stop within 60 s")
                channel.channel.close(promise: nil)
            }
            await stopped.value
            watchdog.cancel()
        }
    }
}
