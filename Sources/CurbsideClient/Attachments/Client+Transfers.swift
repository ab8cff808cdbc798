import CurbsideDigest
import CurbsideWire
import Foundation

extension Client {
    /// How many chunks are in flight at once at the start of every connection's transfer: enough to keep a link
    /// busy, and a connection dropped early re-sends at most this many.
    static let transferWindow = 2

    /// Chunks in flight after `confirmed` chunks of one connection went through: `transferWindow` while chunks grow,
    /// then 4 once they are at the protocol's 1 MiB (16 confirmed), so the relay always has the next chunk waiting
    /// while it writes one. A connection that drops starts again at 2, so a poor link re-sends no more than before.
    static func window(afterConfirming confirmed: Int) -> Int {
        confirmed < 16 ? transferWindow : 4
    }
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
    ///
    /// An attachment whose upload began while it was encrypted (`provisional`: opened under a random id with at most
    /// `bound` bytes, spec/relay.md §Attachments, commit_upload_as) continues under that id unless the relay holds it,
    /// or part of it, under its SHA-256 already.
    func upload(
        _ path: String,
        size: UInt64,
        sha256: [UInt8],
        provisional: ProvisionalUpload? = nil,
        name: String,
        connection: RelayConnection
    ) async throws {
        var status = try await uploadStatus(connection, id: sha256, size: size)
        if status.state != .complete, status.held == 0, let provisional {
            do {
                status = try await uploadStatus(connection, id: provisional.id, size: provisional.bound)
                try await upload(path, size: size, sha256: sha256, as: provisional, from: status, name: name, connection: connection)
                return
            } catch let error as ClientError where error.relayError?.code == .unknownFrameType {
                // A relay without commit_upload_as (an older one took the consult's place): uploaded again by its hash.
                _ = try? await connection.request(.abandonUpload(attachmentID: provisional.id))
                status = try await uploadStatus(connection, id: sha256, size: size)
            }
        }
        try await upload(path, size: size, sha256: sha256, as: nil, from: status, name: name, connection: connection)
    }

    /// Sends the chunks the relay does not hold, from `status`, and commits; again from what the relay then holds
    /// after a refused chunk or commit (at most 3 times). With `provisional`, chunks go under its id and the commit
    /// is `commit_upload_as`; after a failed one, the upload is the SHA-256's.
    private func upload(
        _ path: String,
        size: UInt64,
        sha256: [UInt8],
        as provisional: ProvisionalUpload?,
        from status: UploadStatus,
        name: String,
        connection: RelayConnection
    ) async throws {
        var status = status
        var provisional = provisional
        var restarts = 0
        while status.state != .complete {
            guard status.held <= size else {
                throw ClientError(.protocolViolation, "the relay claims to hold \(status.held) bytes of a \(size)-byte upload")
            }
            let id = provisional?.id ?? sha256
            guard let input = FileHandle(forReadingAtPath: path) else { throw ClientError(.profileNotWritable, "cannot read \(path)") }
            defer { try? input.close() }
            try input.seek(toOffset: status.held)
            var offset = status.held
            var inflight: [UInt32] = []
            var refused: RelayClientError?
            var confirmed = 0
            report(.upload, name, offset, size)
            while offset < size || !inflight.isEmpty {
                while inflight.count < Self.window(afterConfirming: confirmed), offset < size, refused == nil {
                    try checkSendingAllowed()
                    // Read straight into the chunk's array: no Data in between to copy from.
                    let length = Int(min(UInt64(Self.chunkSize(afterConfirming: confirmed)), size - offset))
                    let data = try [UInt8](unsafeUninitializedCapacity: length) { buffer, initialized in
                        initialized = try AttachmentFiles.fill(UnsafeMutableRawBufferPointer(buffer), from: input.fileDescriptor, of: path)
                    }
                    guard !data.isEmpty else { throw ClientError(.profileDamaged, "\(path) is shorter than recorded") }
                    inflight.append(try await startRequest(connection, .uploadChunk(try UploadChunk(attachmentID: id, offset: offset, data: data))))
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
                    let commit: RelayMessage =
                        if let provisional {
                            .commitUploadAs(CommitUploadAs(uploadID: provisional.id, attachmentID: sha256, size: size))
                        } else {
                            .commitUpload(attachmentID: sha256)
                        }
                    guard case .uploadStatus(let committed) = try await connection.request(commit) else {
                        throw ClientError(.protocolViolation, "the relay did not answer the commit")
                    }
                    status = committed
                    continue
                } catch RelayClientError.refused(let error) where error.code == .attachmentHashMismatch || error.code == .uploadIncomplete {
                    restarts += 1
                    if restarts > 3 { throw ClientError.refused(error) }
                    // A failed commit_upload_as leaves the bytes, if any, under the SHA-256: the upload goes on there.
                    provisional = nil
                } catch let error as RelayClientError {
                    throw clientError(error)
                }
            }
            status = try await uploadStatus(connection, id: provisional?.id ?? sha256, size: provisional?.bound ?? size)
        }
        report(.upload, name, size, size)
    }

    func uploadStatus(_ connection: RelayConnection, id: [UInt8], size: UInt64) async throws -> UploadStatus {
        guard case .uploadStatus(let status) = try await request(connection, .openUpload(OpenUpload(attachmentID: id, size: size))) else {
            throw ClientError(.protocolViolation, "the relay did not answer upload_status")
        }
        return status
    }

    func startRequest(_ connection: RelayConnection, _ message: RelayMessage) async throws -> UInt32 {
        do {
            return try await connection.start(message)
        } catch let error as RelayClientError {
            throw clientError(error)
        }
    }

    /// Downloads attachment `id` of `size` bytes to `path`, resuming from the bytes already there, and checks it as
    /// its bytes arrive: size, SHA-256 and that it decrypts completely with `identity` (the plaintext is wiped, never
    /// kept). Nothing is at `path` unless every check passed; a file whose size and hash are right but which does not
    /// decrypt throws its `AgeError`. Throws `.usage`-free relay errors: `unknown_attachment` as `.protocol` with
    /// that code.
    func download(
        _ id: [UInt8],
        size: UInt64,
        identity: AgreementKey.Private,
        to path: String,
        name: String,
        connection: RelayConnection
    ) async throws {
        do {
            try await downloadOnce(id, size: size, identity: identity, to: path, name: name, connection: connection)
        } catch is AttachmentCheckFailed {
            // A resumed download whose bytes do not check is fetched once more from the start before it is refused.
            try await downloadOnce(id, size: size, identity: identity, to: path, name: name, connection: connection)
        }
    }

    private func downloadOnce(
        _ id: [UInt8],
        size: UInt64,
        identity: AgreementKey.Private,
        to path: String,
        name: String,
        connection: RelayConnection
    ) async throws {
        let partial = path + ".part"
        var held = UInt64((try? FileManager.default.attributesOfItem(atPath: partial)[.size] as? Int) ?? 0)
        if held > size {
            unlink(partial)
            held = 0
        }
        // The bytes an earlier attempt left are checked first, so the check covers the whole file without a second
        // pass over it once the rest has arrived.
        var check = AttachmentCheck(identity: identity)
        if held > 0 {
            do {
                held = try AttachmentFiles.feed(partial, upTo: held, into: &check) { self.report(.verification, name, $0, size) }
            } catch {
                unlink(partial)
                held = 0
                check = AttachmentCheck(identity: identity)
            }
        }
        let output = try OutputFile(path: partial, append: true)
        var offset = held
        var inflight: [UInt32] = []
        var confirmed = 0
        report(.download, name, held, size)
        while held < size {
            while inflight.count < Self.window(afterConfirming: confirmed), offset < size {
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
            check.update(data.data)
            held += UInt64(data.data.count)
            confirmed += 1
            advanced()
            report(.download, name, held, size)
        }
        try output.close(sync: true)
        do {
            try check.finish(size: size, sha256: id)
        } catch {
            unlink(partial)
            throw error
        }
        // The check ran as the bytes arrived; a progress display shows it complete once it has passed.
        report(.verification, name, size, size)
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

/// The checks a received attachment passes before it is kept, in one pass over its bytes as they come (from the
/// network or from a file): its size, its SHA-256, and that it decrypts completely with the single-use identity the
/// sender gave. The plaintext of each chunk is wiped as soon as it is checked, never kept.
struct AttachmentCheck {
    private let hasher = FileSHA256()
    private var decryptor: AgeDecryptor
    /// Where each piece's plaintext goes to be checked: reused, and wiped when the check ends.
    private let plaintext = ScratchBuffer(count: AgeDecryptor.plaintextCapacity(forFileBytes: AttachmentChunk.maximumLength))
    private var decryptionFailure: AgeError?
    /// Bytes absorbed so far.
    private(set) var count: UInt64 = 0

    init(identity: AgreementKey.Private) {
        decryptor = AgeDecryptor(identity: identity)
    }

    /// Absorbs the file's next bytes. A decryption failure is kept, not thrown: whether the bytes are the sender's
    /// (refused) or damaged on the way (fetched again) is known only once the hash is.
    mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Absorbs the file's next bytes.
    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        hasher.update(bytes)
        count += UInt64(bytes.count)
        guard decryptionFailure == nil else { return }
        do {
            var rest = bytes
            while !rest.isEmpty {
                let piece = UnsafeRawBufferPointer(rebasing: rest[..<min(rest.count, AttachmentChunk.maximumLength)])
                _ = try decryptor.update(piece, into: plaintext.bytes)
                rest = UnsafeRawBufferPointer(rebasing: rest[piece.count...])
            }
        } catch {
            decryptionFailure = error
        }
    }

    /// Throws `AttachmentCheckFailed` unless the bytes are `size` long and hash to `sha256`, then the `AgeError` of
    /// bytes that are the sender's but do not decrypt completely.
    mutating func finish(size: UInt64, sha256: [UInt8]) throws {
        guard count == size, constantTimeEquals(hasher.finalize(), sha256) else { throw AttachmentCheckFailed() }
        if let decryptionFailure { throw decryptionFailure }
        var last = try decryptor.finish()
        secureZero(&last)
    }
}
