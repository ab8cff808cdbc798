import CurbsideWire
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Attachment files on the relay's disk: resumable uploads, verified commits, ranged reads.
///
/// A blob is named by the SHA-256 of its bytes (the attachment descriptor's `sha256`). An upload writes to
/// `partial/<hex>`; commit checks the declared size and the hash, fsyncs the file, renames it to `complete/<hex>`
/// and fsyncs the directory, so a committed blob survives a crash and a partial one never passes for complete.
/// Memory stays flat: chunks go straight to the file and the hash is computed in 64 KiB reads. All file work runs
/// on NIO's blocking thread pool, never on an event loop or the cooperative pool.
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
        /// The operating system refused (disk full, permissions): `errno` and where.
        case io(String)

        public var description: String {
            switch self {
            case .offsetMismatch(let held): "upload offset mismatch: the relay holds \(held) bytes"
            case .beyondDeclaredSize(let declared): "chunk goes past the declared size of \(declared) bytes"
            case .incomplete(let held, let declared): "upload incomplete: \(held) of \(declared) bytes"
            case .hashMismatch: "uploaded bytes do not match their SHA-256"
            case .unknown: "no such upload or blob"
            case .io(let detail): "disk: \(detail)"
            }
        }
    }

    public let root: String
    private let pool: NIOThreadPool

    /// Creates `root/partial` and `root/complete` (mode 0700) if needed.
    public init(root: String, pool: NIOThreadPool = .singleton) throws {
        self.root = root
        self.pool = pool
        for directory in [root, "\(root)/partial", "\(root)/complete"] {
            if mkdir(directory, 0o700) != 0, errno != EEXIST {
                throw Failure.io("mkdir \(directory): \(String(cString: strerror(errno)))")
            }
        }
    }

    private func partial(_ id: EnvelopeID) -> String { "\(root)/partial/\(id)" }
    private func complete(_ id: EnvelopeID) -> String { "\(root)/complete/\(id)" }

    /// How many bytes of `id` the relay holds: the declared size once complete, the partial length while uploading,
    /// nil if it has neither.
    public func progress(_ id: EnvelopeID) async throws -> UInt64? {
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
    public func write(_ bytes: [UInt8], at offset: UInt64, to id: EnvelopeID, declaredSize: UInt64) async throws {
        let path = partial(id)
        try await pool.runIfActive {
            let fd = open(path, O_WRONLY | O_CREAT, 0o600)
            guard fd >= 0 else { throw Failure.io("open \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw Failure.io("stat: \(String(cString: strerror(errno)))") }
            let held = UInt64(info.st_size)
            guard offset == held else { throw Failure.offsetMismatch(held: held) }
            guard held + UInt64(bytes.count) <= declaredSize else { throw Failure.beyondDeclaredSize(declared: declaredSize) }
            var written = 0
            while written < bytes.count {
                let n = bytes[written...].withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(held) + off_t(written)) }
                guard n > 0 else {
                    // Leave the file at its last good length, so the client resumes from a true offset.
                    _ = ftruncate(fd, off_t(held))
                    throw Failure.io("write: \(String(cString: strerror(errno)))")
                }
                written += n
            }
        }
    }

    /// Checks size and hash, makes the blob durable and visible; idempotent once committed.
    public func commit(_ id: EnvelopeID, declaredSize: UInt64) async throws {
        let (partial, complete, directory) = (partial(id), complete(id), "\(root)/complete")
        try await pool.runIfActive {
            if Self.fileSize(complete) != nil { return }
            guard let held = Self.fileSize(partial) else { throw Failure.unknown }
            guard held == declaredSize else { throw Failure.incomplete(held: held, declared: declaredSize) }
            let fd = open(partial, O_RDONLY)
            guard fd >= 0 else { throw Failure.io("open \(partial): \(String(cString: strerror(errno)))") }
            var hasher = SHA256()
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let n = systemRead(fd, &chunk, chunk.count)
                if n < 0 { close(fd); throw Failure.io("read: \(String(cString: strerror(errno)))") }
                if n == 0 { break }
                chunk.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
            let synced = fsync(fd) == 0
            close(fd)
            guard constantTimeEquals(hasher.finalize(), id.bytes) else {
                unlink(partial)
                throw Failure.hashMismatch
            }
            guard synced, rename(partial, complete) == 0 else { throw Failure.io("commit: \(String(cString: strerror(errno)))") }
            let directoryFD = open(directory, O_RDONLY)
            if directoryFD >= 0 {
                _ = fsync(directoryFD)
                close(directoryFD)
            }
        }
    }

    /// Up to `length` bytes of committed blob `id` from `offset` (fewer at the end).
    public func read(_ id: EnvelopeID, from offset: UInt64, length: Int) async throws -> [UInt8] {
        let path = complete(id)
        return try await pool.runIfActive {
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else { throw Failure.unknown }
            defer { close(fd) }
            var out = [UInt8](repeating: 0, count: length)
            var got = 0
            while got < length {
                let n = out[got...].withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset) + off_t(got)) }
                if n < 0 { throw Failure.io("read: \(String(cString: strerror(errno)))") }
                if n == 0 { break }
                got += n
            }
            return Array(out[0..<got])
        }
    }

    /// Removes blob `id`, committed or partial.
    public func delete(_ id: EnvelopeID) async throws {
        let (partial, complete) = (partial(id), complete(id))
        try await pool.runIfActive {
            unlink(partial)
            unlink(complete)
        }
    }

    private static func fileSize(_ path: String) -> UInt64? {
        var info = stat()
        return stat(path, &info) == 0 ? UInt64(info.st_size) : nil
    }
}

/// POSIX read(2); named apart because `BlobStore.read` shadows it inside the type.
private func systemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(fd, buffer, count)
}
