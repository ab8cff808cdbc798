import CurbsideTLS
import CurbsideWire
import Foundation

/// A file to attach: a clinical image, usually.
public struct AttachmentSource: Sendable, Hashable {
    public let path: String
    /// Shown to the recipient; by default the file's own name.
    public let fileName: String
    /// What the caller says the file is, such as "image/jpeg". The descriptor records the type detected from the
    /// content; this one is checked against it (an image type the content does not bear out is refused) and is
    /// recorded only for content Curbside does not recognise, sent with `keepMetadata`.
    public let mediaType: String?
    /// Send the file as it is: keep EXIF GPS and PNG text chunks, and allow formats Curbside cannot clean.
    public let keepMetadata: Bool

    public init(path: String, fileName: String? = nil, mediaType: String? = nil, keepMetadata: Bool = false) {
        self.path = path
        self.fileName = fileName ?? (path as NSString).lastPathComponent
        self.mediaType = mediaType
        self.keepMetadata = keepMetadata
    }

    /// The format the name or the stated media type claims, if it is one Curbside recognises.
    var claimedFormat: ContentFormat? {
        if let mediaType { return ContentFormat.allCases.first { $0.mediaType == mediaType.lowercased() } }
        return ContentFormat(claimedBy: fileName)
    }

    /// Decides from the file's first bytes whether it may be sent, and returns the media type for its descriptor
    /// (spec/attachments.md §Privacy before encryption). Throws a `.usage` error that says what the file is.
    func admit(head: [UInt8]) throws -> String {
        guard !head.isEmpty else {
            throw ClientError(
                .unsupportedAttachment,
                "\(fileName) is empty; there is nothing to attach",
                hint: "check that the file finished copying or downloading, then attach it again"
            )
        }
        let claimed = claimedFormat
        guard let format = ContentFormat.detect(head) else {
            if let claimed {
                throw ClientError(
                    .unsupportedAttachment,
                    "\(fileName) is not a \(claimed.name) image: its content is not any image format Curbside recognises",
                    hint: "check that you attached the file you meant; a file that is not an image can go as it is "
                        + "with --keep-metadata once its name no longer says it is one"
                )
            }
            guard keepMetadata else {
                throw ClientError(
                    .unsupportedAttachment,
                    "Curbside cannot tell what kind of file \(fileName) is, so it cannot check it for location data",
                    hint: "convert photos to JPEG or PNG first, or send the file as it is with --keep-metadata"
                )
            }
            return mediaType ?? "application/octet-stream"
        }
        if !format.canBeCleaned, !keepMetadata {
            let despite = claimed.map { $0 == format ? "" : " (whatever its name says)" } ?? ""
            throw ClientError(
                .unsupportedAttachment,
                "\(fileName) is a \(format.name) file\(despite); Curbside can remove location data (EXIF GPS) only from JPEG and PNG",
                hint: "convert it to JPEG or PNG first, or send it as it is with --keep-metadata"
            )
        }
        return format.mediaType
    }
}

/// Where a transfer stands, for a progress display.
public struct TransferProgress: Sendable, Hashable {
    public enum Direction: String, Sendable { case upload, download }
    public let direction: Direction
    public let fileName: String
    public let bytes: UInt64
    public let total: UInt64
}

/// An attachment encrypted on disk, ready to upload.
struct PreparedAttachment: Sendable {
    let path: String
    let size: UInt64
    let sha256: [UInt8]
    let identity: AgreementKey.Private
    let removedMetadata: Set<String>
    /// Detected from the content (`AttachmentSource.admit`).
    let mediaType: String
}

enum AttachmentFiles {
    static let readSize = 1 << 20

    /// Strips metadata (unless kept) and encrypts `source` to a fresh single-use identity into `destination`,
    /// streaming: memory stays at about two 1 MiB buffers and one age chunk.
    static func prepare(_ source: AttachmentSource, into destination: String) throws -> PreparedAttachment {
        guard let input = FileHandle(forReadingAtPath: source.path) else {
            throw ClientError(.fileNotAccessible, "cannot read \(source.path)")
        }
        defer { try? input.close() }
        // The content decides, not the name: the first bytes are read and judged before anything is written.
        var head: [UInt8] = []
        while head.count < ContentFormat.headLength, let data = try input.read(upToCount: ContentFormat.headLength - head.count), !data.isEmpty {
            head += data
        }
        let mediaType = try source.admit(head: head)
        let identity = AgreementKey.Private()
        var encryptor = try AgeEncryptor(recipient: identity.publicKey)
        var filter = MetadataFilter()
        let output = try OutputFile(path: destination)
        let hasher = FileSHA256()
        var size: UInt64 = 0
        func emit(_ bytes: [UInt8]) throws {
            guard !bytes.isEmpty else { return }
            hasher.update(bytes)
            size += UInt64(bytes.count)
            try output.write(bytes)
        }
        try emit(encryptor.header)
        var piece = head
        while !piece.isEmpty {
            let plain = source.keepMetadata ? piece : filter.update(piece)
            try emit(try encryptor.update(plain))
            piece = try input.read(upToCount: readSize).map(Array.init) ?? []
        }
        if !source.keepMetadata { try emit(try encryptor.update(filter.finish())) }
        if filter.uncheckable {
            try? output.close(sync: false)
            unlink(destination)
            throw ClientError(
                .unsupportedAttachment,
                "\(source.fileName) has more metadata than Curbside can check for location data",
                hint: "re-save the photo without metadata, or send it as it is with --keep-metadata"
            )
        }
        try emit(try encryptor.finish())
        try output.close(sync: true)
        return PreparedAttachment(
            path: destination,
            size: size,
            sha256: hasher.finalize(),
            identity: identity,
            removedMetadata: filter.removed,
            mediaType: mediaType
        )
    }

    /// SHA-256 and size of a file, read in 1 MiB pieces.
    static func digest(_ path: String) throws -> (size: UInt64, sha256: [UInt8]) {
        guard let input = FileHandle(forReadingAtPath: path) else { throw ClientError(.profileNotWritable, "cannot read \(path)") }
        defer { try? input.close() }
        let hasher = FileSHA256()
        var size: UInt64 = 0
        while let data = try input.read(upToCount: readSize), !data.isEmpty {
            data.withUnsafeBytes { hasher.update($0) }
            size += UInt64(data.count)
        }
        return (size, hasher.finalize())
    }

    /// Checks that the age file at `path` decrypts completely with `identity`, keeping none of the plaintext.
    static func verify(_ path: String, identity: AgreementKey.Private) throws {
        guard let input = FileHandle(forReadingAtPath: path) else { throw ClientError(.profileNotWritable, "cannot read \(path)") }
        defer { try? input.close() }
        var decryptor = AgeDecryptor(identity: identity)
        while let data = try input.read(upToCount: readSize), !data.isEmpty {
            var plaintext = try decryptor.update(Array(data))
            secureZero(&plaintext)
        }
        var last = try decryptor.finish()
        secureZero(&last)
    }

    /// Decrypts the age file at `path` with `identity` into `destination`, streaming; nothing is left at
    /// `destination` if the file does not decrypt completely.
    static func decrypt(_ path: String, identity: AgreementKey.Private, to destination: String) throws {
        guard let input = FileHandle(forReadingAtPath: path) else { throw ClientError(.profileNotWritable, "cannot read \(path)") }
        defer { try? input.close() }
        // A new name nobody else can have made: never a file or link someone placed at a predictable path.
        let temporary = destination + ".\(UInt32.random(in: 0...UInt32.max)).part"
        let output = try OutputFile(path: temporary, exclusive: true)
        do {
            var decryptor = AgeDecryptor(identity: identity)
            while let data = try input.read(upToCount: readSize), !data.isEmpty {
                try output.write(try decryptor.update(Array(data)))
            }
            try output.write(try decryptor.finish())
            try output.close(sync: true)
            // link(2) fails if the destination exists: a file saved meanwhile is never overwritten.
            guard link(temporary, destination) == 0 else { throw ClientError(.fileNotAccessible, "cannot write \(destination): it exists or the directory is not writable") }
            unlink(temporary)
        } catch {
            try? output.close(sync: false)
            unlink(temporary)
            throw error
        }
    }
}

/// A file written with POSIX calls, created 0600.
final class OutputFile {
    private let fd: Int32
    private var closed = false

    init(path: String, append: Bool = false, exclusive: Bool = false) throws {
        let mode = exclusive ? O_EXCL | O_NOFOLLOW : (append ? O_APPEND : O_TRUNC)
        fd = open(path, O_WRONLY | O_CREAT | mode, 0o600)
        guard fd >= 0 else { throw ClientError(.fileNotAccessible, "cannot write \(path): \(String(cString: strerror(errno)))") }
    }

    func write(_ bytes: [UInt8]) throws {
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw ClientError(.fileNotAccessible, "cannot write: \(String(cString: strerror(errno)))") }
            written += n
        }
    }

    func close(sync: Bool) throws {
        guard !closed else { return }
        closed = true
        let synced = !sync || fsync(fd) == 0
        Glibc.close(fd)
        guard synced else { throw ClientError(.fileNotAccessible, "cannot sync a file: \(String(cString: strerror(errno)))") }
    }

    deinit { if !closed { Glibc.close(fd) } }
}

extension Client {
    /// How many chunks are in flight at once: enough to keep a link busy, and a dropped connection re-sends at
    /// most this many.
    static let transferWindow = 2
    /// Bytes per chunk at the start of every connection's transfer, up and down: small enough that a poor link
    /// completes chunks between drops.
    static let transferChunk = 256 * 1024

    /// The chunk size after `confirmed` chunks of one connection went through: doubled after every 8 (2 MiB at the
    /// start), up to the protocol's 1 MiB. A good link ends up with a quarter of the round trips; a connection that
    /// drops starts again small, so a poor link re-sends no more than before.
    static func chunkSize(afterConfirming confirmed: Int) -> Int {
        min(transferChunk << min(confirmed / 8, 2), AttachmentChunk.maximumLength)
    }

    /// Uploads an encrypted attachment, resuming from what the relay holds; returns when it is committed.
    func upload(_ path: String, size: UInt64, sha256: [UInt8], name: String, connection: RelayConnection) async throws {
        var status = try await uploadStatus(connection, id: sha256, size: size)
        var restarts = 0
        while status.state != .complete {
            guard status.held <= size else {
                throw ClientError(.protocolViolation, "the relay claims to hold \(status.held) bytes of a \(size)-byte upload")
            }
            guard let input = FileHandle(forReadingAtPath: path) else { throw ClientError(.profileNotWritable, "cannot read \(path)") }
            defer { try? input.close() }
            try input.seek(toOffset: status.held)
            var offset = status.held
            var inflight: [UInt32] = []
            var refused: RelayClientError?
            var confirmed = 0
            report(.upload, name, offset, size)
            while offset < size || !inflight.isEmpty {
                while inflight.count < Self.transferWindow, offset < size, refused == nil {
                    let data = Array(try input.read(upToCount: Self.chunkSize(afterConfirming: confirmed)) ?? Data())
                    guard !data.isEmpty else { throw ClientError(.profileDamaged, "\(path) is shorter than recorded") }
                    inflight.append(try await startRequest(connection, .uploadChunk(try UploadChunk(attachmentID: sha256, offset: offset, data: data))))
                    offset += UInt64(data.count)
                }
                guard !inflight.isEmpty else { break }
                do {
                    guard case .uploadStatus(let answer) = try await connection.result(of: inflight.removeFirst()) else {
                        throw ClientError(.protocolViolation, "the relay did not answer upload_status")
                    }
                    advanced()
                    confirmed += 1
                    report(.upload, name, answer.held, size)
                } catch let error as RelayClientError {
                    if case .refused(let relayError) = error, relayError.code == .offsetMismatch || relayError.code == .storageFull {
                        refused = error  // the chunks behind it are refused too; drain them, then resume
                        offset = size
                        continue
                    }
                    throw clientError(error)
                }
            }
            if let refused {
                restarts += 1
                if case .refused(let relayError) = refused, relayError.code == .storageFull || restarts > 3 { throw clientError(refused) }
            } else {
                do {
                    guard case .uploadStatus(let committed) = try await connection.request(.commitUpload(attachmentID: sha256)) else {
                        throw ClientError(.protocolViolation, "the relay did not answer the commit")
                    }
                    status = committed
                    continue
                } catch RelayClientError.refused(let error) where error.code == .attachmentHashMismatch || error.code == .uploadIncomplete {
                    restarts += 1
                    if restarts > 3 { throw ClientError.refused(error) }
                } catch let error as RelayClientError {
                    throw clientError(error)
                }
            }
            status = try await uploadStatus(connection, id: sha256, size: size)
        }
        report(.upload, name, size, size)
    }

    private func uploadStatus(_ connection: RelayConnection, id: [UInt8], size: UInt64) async throws -> UploadStatus {
        guard case .uploadStatus(let status) = try await request(connection, .openUpload(OpenUpload(attachmentID: id, size: size))) else {
            throw ClientError(.protocolViolation, "the relay did not answer upload_status")
        }
        return status
    }

    private func startRequest(_ connection: RelayConnection, _ message: RelayMessage) async throws -> UInt32 {
        do {
            return try await connection.start(message)
        } catch let error as RelayClientError {
            throw clientError(error)
        }
    }

    /// Downloads attachment `id` of `size` bytes to `path`, resuming from the bytes already there; checks size and
    /// SHA-256 before returning. Throws `.usage`-free relay errors: `unknown_attachment` as `.protocol` with that code.
    func download(_ id: [UInt8], size: UInt64, to path: String, name: String, connection: RelayConnection) async throws {
        do {
            try await downloadOnce(id, size: size, to: path, name: name, connection: connection)
        } catch is AttachmentCheckFailed {
            // A resumed download whose bytes do not check is fetched once more from the start before it is refused.
            try await downloadOnce(id, size: size, to: path, name: name, connection: connection)
        }
    }

    private func downloadOnce(_ id: [UInt8], size: UInt64, to path: String, name: String, connection: RelayConnection) async throws {
        let partial = path + ".part"
        var held = UInt64((try? FileManager.default.attributesOfItem(atPath: partial)[.size] as? Int) ?? 0)
        if held > size {
            unlink(partial)
            held = 0
        }
        let output = try OutputFile(path: partial, append: true)
        var offset = held
        var inflight: [UInt32] = []
        var confirmed = 0
        report(.download, name, held, size)
        while held < size {
            while inflight.count < Self.transferWindow, offset < size {
                let length = UInt32(min(UInt64(Self.chunkSize(afterConfirming: confirmed)), size - offset))
                inflight.append(try await startRequest(connection, .download(DownloadRequest(attachmentID: id, offset: offset, length: length))))
                offset += UInt64(length)
            }
            let answer: RelayMessage
            do {
                answer = try await connection.result(of: inflight.removeFirst())
            } catch let error as RelayClientError {
                try? output.close(sync: true)
                throw clientError(error)
            }
            guard case .attachmentData(let data) = answer, data.offset == held, data.size == size, !data.data.isEmpty else {
                try? output.close(sync: false)
                throw ClientError(.protocolViolation, "the relay answered a download with the wrong range or size")
            }
            try output.write(data.data)
            held += UInt64(data.data.count)
            confirmed += 1
            advanced()
            report(.download, name, held, size)
        }
        try output.close(sync: true)
        let (written, digest) = try AttachmentFiles.digest(partial)
        guard written == size, constantTimeEquals(digest, id) else {
            unlink(partial)
            throw AttachmentCheckFailed()
        }
        guard rename(partial, path) == 0 else { throw ClientError(.profileNotWritable, "cannot write \(path)") }
        let directory = Glibc.open((path as NSString).deletingLastPathComponent, O_RDONLY)
        if directory >= 0 {
            _ = fsync(directory)
            close(directory)
        }
    }

    /// The relay confirmed bytes (an upload chunk stored, a download chunk received): a drop after this is not
    /// counted against the retry limit.
    nonisolated func advanced() {
        transferred.withLock { $0 &+= 1 }
    }

    nonisolated func report(_ direction: TransferProgress.Direction, _ name: String, _ bytes: UInt64, _ total: UInt64) {
        progressHandler.withLock { $0 }?(TransferProgress(direction: direction, fileName: name, bytes: bytes, total: total))
    }

    /// Calls `handler` as attachment bytes move (from any task; keep it quick).
    public nonisolated func onTransferProgress(_ handler: (@Sendable (TransferProgress) -> Void)?) {
        progressHandler.withLock { $0 = handler }
    }
}

/// A downloaded attachment whose size or SHA-256 is not the descriptor's.
struct AttachmentCheckFailed: Error {}
