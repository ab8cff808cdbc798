import CurbsideDigest
import CurbsideWire
import Foundation
import NIOConcurrencyHelpers
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Attachment files on the relay's disk: resumable uploads, verified commits, ranged reads.
///
/// A blob is named by its key in the relay store (one per account and attachment id, so two accounts' uploads never
/// share a file). An upload writes to `partial/<key>`; commit checks the declared size and the SHA-256, fsyncs the
/// file, renames it to `complete/<key>` and fsyncs the directory, so a committed blob survives a crash and a partial
/// one never passes for complete. Memory stays flat: chunks go straight to the file. The SHA-256 (`FileSHA256`) is
/// computed as the chunks are written, in order from offset 0, so that commit need not read the file again; an
/// upload whose hash could not follow every byte (written by an earlier relay process, a failed write) is hashed at
/// commit in 1 MiB reads instead. All file work runs on NIO's blocking thread pool, never on an event loop or the
/// cooperative pool. Writes to one upload are serialised with `flock`, so two connections writing the same upload
/// cannot both append at one offset; one relay process owns a data directory, so no other writer changes the bytes a
/// running hash has taken in.
public struct BlobStore: Sendable {
    public enum Failure: Error, Hashable, Sendable, CustomStringConvertible {
        /// A chunk's offset is not where the upload stands; the relay holds `held` bytes.
        case offsetMismatch(held: UInt64)
        /// The chunk would take the upload past its declared size.
        case beyondDeclaredSize(declared: UInt64)
        /// Commit of an upload that is shorter than declared.
        case incomplete(held: UInt64, declared: UInt64)
        /// The bytes' SHA-256 is not the blob's name; the partial upload was discarded.
        case hashMismatch
        /// No such upload or blob.
        case unknown
        /// The file system is full (or the process's file size limit is reached); nothing was kept of the chunk.
        case storageFull
        /// The operating system refused (permissions, I/O error): `errno` and where.
        case io(String)

        public var description: String {
            switch self {
            case .offsetMismatch(let held): "upload offset mismatch: the relay holds \(held) bytes"
            case .beyondDeclaredSize(let declared): "chunk goes past the declared size of \(declared) bytes"
            case .incomplete(let held, let declared): "upload incomplete: \(held) of \(declared) bytes"
            case .hashMismatch: "uploaded bytes do not match their SHA-256"
            case .unknown: "no such upload or blob"
            case .storageFull: "the relay's disk is full"
            case .io(let detail): "disk: \(detail)"
            }
        }
    }

    public let root: String
    private let pool: NIOThreadPool
    private let hashes = RunningHashes()

    /// Creates `root/partial` and `root/complete` (mode 0700) if needed.
    public init(root: String, pool: NIOThreadPool = .singleton) throws {
        self.root = root
        self.pool = pool
        for directory in [root, "\(root)/partial", "\(root)/complete"] {
            if mkdir(directory, 0o700) != 0, errno != EEXIST { throw Self.failure("mkdir \(directory)") }
        }
    }

    /// How many uploads have a hash running (tests check that one is dropped with its upload).
    var _testOnly_runningHashCount: Int { hashes.count }

    private func partial(_ id: Int64) -> String { "\(root)/partial/\(id)" }
    private func complete(_ id: Int64) -> String { "\(root)/complete/\(id)" }

    /// How many bytes of `id` the relay holds: the declared size once complete, the partial length while uploading,
    /// nil if it has neither.
    public func progress(_ id: Int64) async throws -> UInt64? {
        let (partial, complete) = (partial(id), complete(id))
        return try await pool.runIfActive {
            if let size = Self.fileSize(complete) { return size }
            return Self.fileSize(partial)
        }
    }

    /// Appends `bytes` at `offset` to the upload of `id`, creating it at offset 0.
    ///
    /// - Throws: `offsetMismatch(held:)` unless `offset` is exactly what the relay holds (so a client that lost
    ///   track resumes from the relay's answer), `beyondDeclaredSize` past `declaredSize`.
    public func write(_ bytes: [UInt8], at offset: UInt64, to id: Int64, declaredSize: UInt64) async throws {
        let path = partial(id)
        try await pool.runIfActive {
            // Only the first chunk creates the file: a late chunk for a committed or discarded upload finds nothing.
            let fd = open(path, offset == 0 ? O_WRONLY | O_CREAT : O_WRONLY, 0o600)
            guard fd >= 0 else {
                if errno == ENOENT { throw Failure.offsetMismatch(held: 0) }
                throw Self.failure("open \(path)")
            }
            defer { close(fd) }
            guard flock(fd, LOCK_EX) == 0 else { throw Self.failure("lock \(path)") }
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw Self.failure("stat \(path)") }
            let held = UInt64(info.st_size)
            guard offset == held else { throw Failure.offsetMismatch(held: held) }
            guard held + UInt64(bytes.count) <= declaredSize else { throw Failure.beyondDeclaredSize(declared: declaredSize) }
            // Taken out while the chunk is written: a write that fails leaves no hash behind, and commit hashes the file.
            let running = hashes.take(id, at: held)
            var written = 0
            while written < bytes.count {
                let n = bytes[written...].withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(held) + off_t(written)) }
                guard n > 0 else {
                    let failure = Self.failure("write")
                    // Leave the file at its last good length, so the client resumes from a true offset.
                    _ = ftruncate(fd, off_t(held))
                    throw failure
                }
                written += n
            }
            if let running {
                running.update(bytes)
                hashes.put(running, for: id, at: held + UInt64(bytes.count))
            }
        }
    }

    /// Checks size and hash, makes the blob durable and visible; idempotent once committed.
    public func commit(_ id: Int64, declaredSize: UInt64, sha256: [UInt8]) async throws {
        let (partial, complete, directory) = (partial(id), complete(id), "\(root)/complete")
        try await pool.runIfActive {
            if Self.fileSize(complete) != nil { return }
            let fd = open(partial, O_RDONLY)
            guard fd >= 0 else {
                if errno == ENOENT { throw Failure.incomplete(held: 0, declared: declaredSize) }
                throw Self.failure("open \(partial)")
            }
            // Waits for a chunk being written to finish; chunks that come later find the file gone.
            guard flock(fd, LOCK_EX) == 0 else { close(fd); throw Self.failure("lock \(partial)") }
            var info = stat()
            guard fstat(fd, &info) == 0 else { close(fd); throw Self.failure("stat") }
            guard UInt64(info.st_size) == declaredSize else {
                close(fd)
                throw Failure.incomplete(held: UInt64(info.st_size), declared: declaredSize)
            }
            // The hash taken in as the chunks were written, if it followed every byte of the file; else the file's.
            let hasher: FileSHA256
            if let running = hashes.take(id, at: declaredSize) {
                hasher = running
            } else {
                hasher = FileSHA256()
                var chunk = [UInt8](repeating: 0, count: 1 << 20)
                while true {
                    let n = systemRead(fd, &chunk, chunk.count)
                    if n < 0 { close(fd); throw Self.failure("read") }
                    if n == 0 { break }
                    chunk.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                }
            }
            let synced = fsync(fd) == 0
            guard constantTimeEquals(hasher.finalize(), sha256) else {
                unlink(partial)
                close(fd)
                throw Failure.hashMismatch
            }
            guard synced, rename(partial, complete) == 0 else {
                let failure = Self.failure("commit")
                close(fd)
                throw failure
            }
            close(fd)
            // The rename is durable only once the directory is: until then the commit is not confirmed.
            let directoryFD = open(directory, O_RDONLY)
            guard directoryFD >= 0 else { throw Self.failure("open \(directory)") }
            defer { close(directoryFD) }
            guard fsync(directoryFD) == 0 else { throw Self.failure("fsync \(directory)") }
        }
    }

    /// Up to `length` bytes of committed blob `id` from `offset` (fewer at the end).
    public func read(_ id: Int64, from offset: UInt64, length: Int) async throws -> [UInt8] {
        let path = complete(id)
        return try await pool.runIfActive {
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else { throw Failure.unknown }
            defer { close(fd) }
            return try Self.readBytes(fd, from: offset, length: length)
        }
    }

    /// Up to `length` bytes the relay holds of `id` from `offset`, committed or not: the committed blob if there is
    /// one, else the partial upload (fewer at the end, none if there is neither). For copying a relay's attachments
    /// elsewhere (`RelayMigration`), never for serving a download.
    public func readHeld(_ id: Int64, from offset: UInt64, length: Int) async throws -> [UInt8] {
        let (partial, complete) = (partial(id), complete(id))
        return try await pool.runIfActive {
            var fd = open(complete, O_RDONLY)
            if fd < 0, errno == ENOENT { fd = open(partial, O_RDONLY) }
            guard fd >= 0 else {
                if errno == ENOENT { return [] }
                throw Self.failure("open \(partial)")
            }
            defer { close(fd) }
            return try Self.readBytes(fd, from: offset, length: length)
        }
    }

    /// Up to `length` bytes of the open file `fd` from `offset`; fewer at its end.
    private static func readBytes(_ fd: Int32, from offset: UInt64, length: Int) throws -> [UInt8] {
        // Read straight into uninitialised room: zeroing a 1 MiB chunk first was 4 % of the relay's download CPU.
        try [UInt8](unsafeUninitializedCapacity: length) { out, initialized in
            while initialized < length {
                let n = pread(fd, out.baseAddress! + initialized, length - initialized, off_t(offset) + off_t(initialized))
                if n < 0 { throw failure("read") }
                if n == 0 { break }
                initialized += n
            }
        }
    }

    /// Removes blobs, committed or partial.
    public func delete(_ ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        let paths = ids.flatMap { [partial($0), complete($0)] }
        let hashes = self.hashes
        try await pool.runIfActive {
            for path in paths { unlink(path) }
            for id in ids { hashes.forget(id) }
        }
    }

    /// The keys of every file, partial or complete. Listing the files before reading the store's keys, and removing
    /// those the store does not know, never removes a new upload's file: its row is written before its first chunk.
    public func fileKeys() async throws -> Set<Int64> {
        let root = self.root
        return try await pool.runIfActive {
            var keys: Set<Int64> = []
            for directory in ["\(root)/partial", "\(root)/complete"] {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                    if let key = Int64(name) { keys.insert(key) }
                }
            }
            return keys
        }
    }

    /// Removes the files of keys in `files` that are not in `keep` (what a crash or a race left between the store
    /// forgetting an attachment and its file being unlinked). Returns how many keys were removed.
    @discardableResult
    public func removeFiles(_ files: Set<Int64>, notIn keep: Set<Int64>) async throws -> Int {
        let orphans = files.subtracting(keep)
        try await delete(Array(orphans))
        return orphans.count
    }

    /// Bytes free for the relay on the file system holding the blobs (what an unprivileged writer may use).
    public func availableBytes() async throws -> UInt64 {
        let root = self.root
        return try await pool.runIfActive {
            var info = statvfs()
            guard statvfs(root, &info) == 0 else { throw Self.failure("statvfs \(root)") }
            return UInt64(info.f_bavail) * UInt64(info.f_frsize)
        }
    }

    /// The failure for the current `errno`: `storageFull` for a full disk, quota or file size limit.
    private static func failure(_ doing: String) -> Failure {
        switch errno {
        case ENOSPC, EDQUOT, EFBIG: .storageFull
        default: .io("\(doing): \(String(cString: strerror(errno)))")
        }
    }

    private static func fileSize(_ path: String) -> UInt64? {
        var info = stat()
        return stat(path, &info) == 0 ? UInt64(info.st_size) : nil
    }
}

/// The SHA-256 of each upload in progress, over the bytes written to it so far, so that commit need not read the
/// file again. At most `capacity` are kept (an upload beyond them is hashed at commit); each is about 200 bytes.
///
/// A lock, not an actor: it is used from the blocking thread pool, inside the upload file's `flock`, and each section
/// only moves a hasher in or out of the table.
final class RunningHashes: Sendable {
    static let capacity = 4096

    /// One upload's hash and how many bytes of the file it has taken in.
    private struct Entry: @unchecked Sendable {
        // Only ever used by the one thread that took it out of the table, under the upload file's flock.
        let hasher: FileSHA256
        let count: UInt64
    }

    private let table = NIOLockedValueBox<[Int64: Entry]>([:])

    /// Removes and returns the hash of `id` if it has taken in exactly the first `offset` bytes; a new hash at offset
    /// 0; nil otherwise (its hash is then computed from the file at commit).
    func take(_ id: Int64, at offset: UInt64) -> FileSHA256? {
        let entry = table.withLockedValue { $0.removeValue(forKey: id) }
        if let entry, entry.count == offset { return entry.hasher }
        return offset == 0 ? FileSHA256() : nil
    }

    /// Keeps `hasher` as the hash of the first `count` bytes of `id`, unless the table is full.
    func put(_ hasher: FileSHA256, for id: Int64, at count: UInt64) {
        let entry = Entry(hasher: hasher, count: count)
        table.withLockedValue { if $0.count < Self.capacity { $0[id] = entry } }
    }

    /// Drops the hash of `id` (its file is deleted).
    func forget(_ id: Int64) {
        _ = table.withLockedValue { $0.removeValue(forKey: id) }
    }

    /// How many uploads have a running hash (for tests).
    var count: Int { table.withLockedValue { $0.count } }
}

/// POSIX read(2); named apart because `BlobStore.read` shadows it inside the type.
private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(fd, buffer, count)
}
