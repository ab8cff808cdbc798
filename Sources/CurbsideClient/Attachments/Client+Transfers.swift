import CurbsideWire
import Foundation

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
                    try checkSendingAllowed()
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
