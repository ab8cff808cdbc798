import CurbsideWire
import Foundation
import Synchronization

/// An upload opened under a random provisional id before its file's SHA-256 was known (spec/relay.md §Attachments,
/// commit_upload_as): the flush continues it under that id.
struct ProvisionalUpload: Sendable, Hashable {
    let id: [UInt8]
    /// The most bytes it was opened with.
    let bound: UInt64
}

/// What uploading an attachment while it was encrypted left on the relay.
enum EarlyUpload: Sendable {
    /// Committed under its SHA-256: the flush finds it complete.
    case committed
    /// Opened under a provisional id and not committed (the connection dropped): the flush continues it.
    case provisional(ProvisionalUpload)
    /// Nothing to continue: the file is uploaded by its SHA-256 when the consult is flushed, as without this.
    case none
    /// The relay could not be reached: the consult waits in the outbox without another try now.
    case unreachable(ClientError)
}

/// An attachment's encrypted copy while it is being written, for an upload that follows it: the most bytes it can
/// have, how many are written, and, once it is done, its size and SHA-256 (or that it failed). Written by the
/// encrypting thread, read by one uploading task.
final class GrowingFile: Sendable {
    enum Ending: Sendable {
        case complete(size: UInt64, sha256: [UInt8])
        case failed
    }

    struct Snapshot: Sendable {
        var bound: UInt64?
        var written: UInt64 = 0
        var ending: Ending?

        var failed: Bool {
            if case .failed? = ending { true } else { false }
        }
    }

    private struct State {
        var snapshot = Snapshot()
        var waiting: (until: UInt64, continuation: CheckedContinuation<Snapshot, Never>)?
        var outcome: EarlyUpload?
    }

    private let state = Mutex(State())

    /// Before the first byte: the file can have at most `bound` bytes.
    func start(bound: UInt64) { update { $0.bound = bound } }

    /// `total` bytes are written (and readable from the file).
    func wrote(_ total: UInt64) { update { $0.written = total } }

    func finish(_ ending: Ending) { update { $0.ending = ending } }

    private func update(_ change: (inout Snapshot) -> Void) {
        let woken = state.withLock { state -> (CheckedContinuation<Snapshot, Never>, Snapshot)? in
            change(&state.snapshot)
            guard let waiting = state.waiting, Self.ready(state.snapshot, waiting.until) else { return nil }
            state.waiting = nil
            return (waiting.continuation, state.snapshot)
        }
        if let (continuation, snapshot) = woken { continuation.resume(returning: snapshot) }
    }

    private static func ready(_ snapshot: Snapshot, _ until: UInt64) -> Bool {
        snapshot.ending != nil || (snapshot.bound != nil && snapshot.written >= until)
    }

    /// What is known now.
    var now: Snapshot { state.withLock { $0.snapshot } }

    /// What the upload that follows the file achieved, once it has ended.
    var outcome: EarlyUpload? {
        get { state.withLock { $0.outcome } }
        set { state.withLock { $0.outcome = newValue } }
    }

    /// Waits until the bound is known and `until` bytes are written, or the file ended.
    func wait(until: UInt64) async -> Snapshot {
        await withCheckedContinuation { continuation in
            let snapshot = state.withLock { state -> Snapshot? in
                if Self.ready(state.snapshot, until) { return state.snapshot }
                state.waiting = (until, continuation)
                return nil
            }
            if let snapshot { continuation.resume(returning: snapshot) }
        }
    }
}

extension Client {
    /// Uploads the encrypted copy at `path` while it is written (`file` says how far), under the provisional id
    /// `uploadID` (32 random bytes), and commits it under its SHA-256 once it is whole (spec/relay.md §Attachments,
    /// commit_upload_as). On a connection of its own, so the encryption never waits for the relay; a relay without
    /// commit_upload_as, or any refusal, leaves the upload to the flush, by the file's SHA-256, as before. Never
    /// throws: the consult is queued and sent whatever this achieves. Cancelled, it closes its connection at once.
    func uploadWhileEncrypting(_ file: GrowingFile, id uploadID: [UInt8], path: String, name: String) async -> EarlyUpload {
        let outcome = await uploadFollowing(file, id: uploadID, path: path, name: name)
        file.outcome = outcome
        return outcome
    }

    private func uploadFollowing(_ file: GrowingFile, id uploadID: [UInt8], path: String, name: String) async -> EarlyUpload {
        var opened: ProvisionalUpload?
        var reached = false
        do {
            return try await withConnection(shared: false) { connection in
                reached = true
                return try await withTaskCancellationHandler {
                    try await uploadWhileEncrypting(file, id: uploadID, path: path, name: name, opened: &opened, on: connection)
                } onCancel: {
                    Task { await connection.close() }
                }
            }
        } catch let error as ClientError where error.category == .network {
            if !reached { return .unreachable(error) }
            // Dropped part-way: the flush continues from what the relay holds (the copy is finished by then).
            return opened.map(EarlyUpload.provisional) ?? .none
        } catch {
            logger.info("upload while encrypting \(name): \(error)")
            if let opened { try? await forgetUpload(opened.id) }
            return .none
        }
    }

    private func uploadWhileEncrypting(
        _ file: GrowingFile,
        id uploadID: [UInt8],
        path: String,
        name: String,
        opened: inout ProvisionalUpload?,
        on connection: RelayConnection
    ) async throws -> EarlyUpload {
        // A relay with commit_upload_as answers unknown_attachment for an id never opened; an older one
        // answers unknown_frame_type, and then the file is uploaded by its hash once it is encrypted.
        let probe = try await startRequest(
            connection,
            .commitUploadAs(CommitUploadAs(uploadID: secureRandomBytes(count: 32), attachmentID: secureRandomBytes(count: 32), size: 1))
        )
        let started = await file.wait(until: 0)
        // A file encrypted before the connection was up still goes this way; one that failed does not.
        guard let bound = started.bound, !started.failed else {
            _ = try? await connection.result(of: probe)
            return .none
        }
        let open = try await startRequest(connection, .openUpload(OpenUpload(attachmentID: uploadID, size: bound)))
        do {
            _ = try await connection.result(of: probe)
            throw ClientError(.protocolViolation, "the relay committed an upload that was never opened")
        } catch RelayClientError.refused(let refusal) where refusal.code == .unknownAttachment {
            // The relay has commit_upload_as.
        } catch RelayClientError.refused(let refusal) where refusal.code == .unknownFrameType {
            _ = try? await connection.result(of: open)
            _ = try? await connection.request(.abandonUpload(attachmentID: uploadID))
            return .none
        }
        guard case .uploadStatus(let status) = try await connection.result(of: open), status.held == 0 else {
            throw ClientError(.protocolViolation, "the relay did not open a new upload")
        }
        let upload = ProvisionalUpload(id: uploadID, bound: bound)
        opened = upload
        return try await followWhileWritten(file, path: path, upload: upload, name: name, connection: connection)
    }

    /// Sends each chunk of the file once it is written, then commits it under its SHA-256. Chunks and the window
    /// grow as in `upload` (a poor link loses no more to a drop than there).
    private func followWhileWritten(
        _ file: GrowingFile,
        path: String,
        upload: ProvisionalUpload,
        name: String,
        connection: RelayConnection
    ) async throws -> EarlyUpload {
        guard let input = FileHandle(forReadingAtPath: path) else { throw ClientError(.profileNotWritable, "cannot read \(path)") }
        defer { try? input.close() }
        var offset: UInt64 = 0
        var inflight: [UInt32] = []
        var confirmed = 0
        while true {
            let chunk = UInt64(Self.chunkSize(afterConfirming: confirmed))
            // Waits for the file only with nothing in flight; otherwise for the relay's oldest answer.
            let known = inflight.isEmpty ? await file.wait(until: offset + chunk) : file.now
            if known.failed {
                try await abandon(upload, after: inflight, on: connection)
                return .none
            }
            guard known.written <= upload.bound else {
                // Longer than the plaintext allowed (the original grew while it was read): by its hash, later.
                try await abandon(upload, after: inflight, on: connection)
                return .none
            }
            let end: UInt64? = if case .complete(let size, _)? = known.ending { size } else { nil }
            let available = min(known.written, offset + chunk) - offset
            if inflight.count < Self.window(afterConfirming: confirmed), available == chunk || (end != nil && available > 0) {
                try checkSendingAllowed()
                let data = try [UInt8](unsafeUninitializedCapacity: Int(available)) { buffer, initialized in
                    initialized = pread(input.fileDescriptor, buffer.baseAddress, Int(available), off_t(offset))
                    guard initialized == Int(available) else { throw ClientError(.profileDamaged, "cannot read \(path) back") }
                }
                inflight.append(try await startRequest(connection, .uploadChunk(try UploadChunk(attachmentID: upload.id, offset: offset, data: data))))
                offset += available
                continue
            }
            if let first = inflight.first {
                inflight.removeFirst()
                guard case .uploadStatus(let status) = try await result(first, on: connection) else {
                    throw ClientError(.protocolViolation, "the relay did not answer upload_status")
                }
                confirmed += 1
                // Progress is shown once the encryption's own is done, so that the two do not take turns on one line.
                if let end { report(.upload, name, status.held, end) }
                continue
            }
            // Nothing in flight and nothing more to send: the file is still being written, or it is whole.
            guard case .complete(let size, let sha256)? = known.ending else { continue }
            guard offset == size else { throw ClientError(.profileDamaged, "\(path) ended at \(known.written) bytes, not \(size)") }
            let commit = CommitUploadAs(uploadID: upload.id, attachmentID: sha256, size: size)
            guard case .uploadStatus(let status) = try await result(try await startRequest(connection, .commitUploadAs(commit)), on: connection),
                status.state == .complete
            else {
                throw ClientError(.protocolViolation, "the relay did not answer the commit")
            }
            report(.upload, name, size, size)
            return .committed
        }
    }

    private func result(_ request: UInt32, on connection: RelayConnection) async throws -> RelayMessage {
        do {
            return try await connection.result(of: request)
        } catch let error as RelayClientError {
            throw clientError(error)
        }
    }

    /// The encryption stopped: the relay forgets the provisional upload (or is told at the next sync).
    private func abandon(_ upload: ProvisionalUpload, after inflight: [UInt32], on connection: RelayConnection) async throws {
        for request in inflight { _ = try? await connection.result(of: request) }
        do {
            _ = try await request(connection, .abandonUpload(attachmentID: upload.id))
        } catch {
            try await forgetUpload(upload.id)
        }
    }

    /// Records an upload for the relay to forget at the next sync (`abandonUploads`).
    private func forgetUpload(_ id: [UInt8]) async throws {
        try await database.writer.write { db in try AbandonedUploadStore.add(db, [id], at: .now()) }
    }
}
