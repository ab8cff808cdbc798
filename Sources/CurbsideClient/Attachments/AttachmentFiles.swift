import CurbsideDigest
import CurbsideWire
import Foundation

/// A file to attach: a clinical image, usually.
public struct AttachmentSource: Sendable, Hashable {
    /// The file to read.
    public let path: String
    /// Shown to the recipient; by default the file's own name.
    public let fileName: String
    /// What the caller says the file is, such as "image/jpeg". The descriptor records the type detected from the
    /// content; this one is checked against it (an image type the content does not bear out is refused) and is
    /// recorded only for content Curbside does not recognise, sent with `keepMetadata`.
    public let mediaType: String?
    /// Send the file as it is: keep EXIF GPS and PNG text chunks, and allow formats Curbside cannot clean.
    public let keepMetadata: Bool

    /// A file at `path`, shown as `fileName` (default: its own name).
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
    /// The phase: which way the bytes move, or what is done to them on this device.
    public enum Direction: String, Sendable {
        case upload, download
        /// Encrypting a file to attach (bytes of the original read).
        case encryption = "encrypt"
        /// Checking that a downloaded file decrypts with the sender's key (bytes read).
        case verification = "check"
        /// Decrypting a received file to save it (bytes read).
        case decryption = "decrypt"
    }
    /// Upload, download, or work on this device.
    public let direction: Direction
    /// The attachment's file name.
    public let fileName: String
    /// Bytes transferred so far (a resumed transfer starts where the last one stopped).
    public let bytes: UInt64
    /// The encrypted file's size (the original's, for encryption).
    public let total: UInt64
}

/// An attachment encrypted on disk, ready to upload.
struct PreparedAttachment: Sendable {
    let path: String
    let size: UInt64
    let sha256: [UInt8]
    let identity: AgreementKey.Private
    let removedMetadata: Set<MetadataFilter.Removed>
    /// Detected from the content (`AttachmentSource.admit`).
    let mediaType: String
    /// The upload begun while it was encrypted, if one was (`Client.uploadWhileEncrypting`, still running or done).
    var earlyUpload: ProvisionalUpload?
}

enum AttachmentFiles {
    static let readSize = 1 << 20

    /// Opens a file the user named to attach, refusing what is not a regular file in words a person understands.
    static func openForReading(_ path: String) throws -> FileHandle {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ClientError(.fileNotAccessible, "cannot read \(path): \(String(cString: strerror(errno)))", hint: "check the file's name")
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw ClientError(.fileNotAccessible, "\(path) is a directory, not a file", hint: "give the image file itself")
        default: throw ClientError(.fileNotAccessible, "\(path) is not a regular file", hint: "give the image file itself")
        }
        guard let input = FileHandle(forReadingAtPath: path) else {
            throw ClientError(.fileNotAccessible, "cannot read \(path): \(String(cString: strerror(errno)))", hint: "check the file's permissions")
        }
        return input
    }

    /// Reads up to `count` bytes of the file at `path`; a failed read is said as the system says it.
    static func read(_ input: FileHandle, upTo count: Int, of path: String) throws -> Data? {
        do {
            return try input.read(upToCount: count)
        } catch {
            let code = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError)?.code ?? Int(EIO)
            throw ClientError(.fileNotAccessible, "cannot read \(path): \(String(cString: strerror(Int32(code))))")
        }
    }

    /// Reads from `fd` into `buffer` until it is full or the file ends; returns how many bytes it read.
    static func fill(_ buffer: UnsafeMutableRawBufferPointer, from fd: Int32, of path: String) throws -> Int {
        var got = 0
        while got < buffer.count {
            let n = Glibc.read(fd, buffer.baseAddress! + got, buffer.count - got)
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                throw ClientError(.fileNotAccessible, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            got += n
        }
        return got
    }

    /// Strips metadata (unless kept) and encrypts `source` to a fresh single-use identity into `destination`,
    /// streaming: memory stays at about two 1 MiB buffers and one age chunk. `progress` is called with the bytes of
    /// `source` read and its size; `stop` is asked between pieces and ends the work with `CancellationError`. Nothing
    /// is left at `destination` when this throws. `growing`, if given, learns how far the file is written as it is
    /// (an upload follows it), its bound before the first byte, and its size and SHA-256 once it is whole (before the
    /// copy is synced); when this throws, the caller tells it the file failed.
    static func prepare(
        _ source: AttachmentSource,
        into destination: String,
        growing: GrowingFile? = nil,
        progress: (UInt64, UInt64) -> Void = { _, _ in },
        stop: () throws -> Void = {}
    ) throws -> PreparedAttachment {
        let input = try openForReading(source.path)
        defer { try? input.close() }
        let total = (try? input.seekToEnd()) ?? 0
        try input.seek(toOffset: 0)
        // The content decides, not the name: the first bytes are read and judged before anything is written.
        var head: [UInt8] = []
        while head.count < ContentFormat.headLength, let data = try read(input, upTo: ContentFormat.headLength - head.count, of: source.path), !data.isEmpty {
            head += data
        }
        let mediaType = try source.admit(head: head)
        let output = try OutputFile(path: destination)
        do {
            return try encrypt(
                input, head: head, source, mediaType: mediaType, to: output, at: destination, total: total, growing: growing,
                progress: progress, stop: stop
            )
        } catch {
            try? output.close(sync: false)
            unlink(destination)
            throw error
        }
    }

    private static func encrypt(
        _ input: FileHandle,
        head: [UInt8],
        _ source: AttachmentSource,
        mediaType: String,
        to output: OutputFile,
        at destination: String,
        total: UInt64,
        growing: GrowingFile?,
        progress: (UInt64, UInt64) -> Void,
        stop: () throws -> Void
    ) throws -> PreparedAttachment {
        let identity = AgreementKey.Private()
        var encryptor = try AgeEncryptor(recipient: identity.publicKey)
        growing?.start(bound: encryptedSizeBound(header: encryptor.header.count, plaintext: total))
        var filter = MetadataFilter()
        let hasher = FileSHA256()
        var size: UInt64 = 0
        // One buffer for what is read and one for its ciphertext, reused for every piece.
        let piece = ScratchBuffer(count: readSize)
        let sealed = ScratchBuffer(count: AgeEncryptor.sealedCapacity(forPlaintext: readSize))
        func emit(_ bytes: UnsafeRawBufferPointer) throws {
            guard !bytes.isEmpty else { return }
            hasher.update(bytes)
            size += UInt64(bytes.count)
            try output.write(bytes)
            growing?.wrote(size)
        }
        func encrypt(_ plain: UnsafeRawBufferPointer) throws {
            // A filtered piece may be longer than what was read (never by much): its ciphertext gets its own array.
            if plain.count > readSize {
                let out = try encryptor.update(plain)
                try out.withUnsafeBytes { try emit($0) }
            } else {
                try emit(sealed.prefix(try encryptor.update(plain, into: sealed.bytes)))
            }
        }
        try encryptor.header.withUnsafeBytes { try emit($0) }
        var consumed: UInt64 = 0
        var count = head.count
        piece.bytes.copyBytes(from: head)
        let fd = input.fileDescriptor
        progress(0, total)
        while count > 0 {
            try stop()
            let read = piece.prefix(count)
            if source.keepMetadata {
                try encrypt(read)
            } else {
                var plain = filter.update(Array(read))
                try plain.withUnsafeBytes { try encrypt($0) }
                secureZero(&plain)
            }
            consumed += UInt64(count)
            progress(min(consumed, total), total)
            count = try fill(piece.bytes, from: fd, of: source.path)
        }
        if !source.keepMetadata {
            var plain = filter.finish()
            try plain.withUnsafeBytes { try encrypt($0) }
            secureZero(&plain)
        }
        if filter.uncheckable {
            throw ClientError(
                .unsupportedAttachment,
                "\(source.fileName) has more metadata than Curbside can check for location data",
                hint: "re-save the photo without metadata, or send it as it is with --keep-metadata"
            )
        }
        try encryptor.finish().withUnsafeBytes { try emit($0) }
        let sha256 = hasher.finalize()
        // The upload that follows may commit while the copy is synced: the message is queued only after both.
        growing?.finish(.complete(size: size, sha256: sha256))
        try output.close(sync: true)
        return PreparedAttachment(
            path: destination,
            size: size,
            sha256: sha256,
            identity: identity,
            removedMetadata: filter.removed,
            mediaType: mediaType
        )
    }

    /// The most bytes an age file with a header (and nonce) of `header` bytes has for `plaintext` bytes: each 64 KiB
    /// chunk, and the final one (empty only for an empty file), adds a 16-byte tag. The metadata filter never makes
    /// a file longer, so this bounds a filtered file too (spec/attachments.md §Transfer and resumption).
    static func encryptedSizeBound(header: Int, plaintext: UInt64) -> UInt64 {
        let chunk = UInt64(AgeEncryptor.chunkSize), tag = UInt64(ChaChaPoly.tagByteCount)
        return UInt64(header) + plaintext + tag * max(1, (plaintext + chunk - 1) / chunk)
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

    /// Checks a received attachment kept at `path` in one pass: its size, its SHA-256 and that it decrypts completely
    /// with `identity`, keeping none of the plaintext. Throws `AttachmentCheckFailed` for a wrong size or hash, the
    /// `AgeError` for bytes that hash right but do not decrypt.
    static func check(
        _ path: String,
        size: UInt64,
        sha256: [UInt8],
        identity: AgreementKey.Private,
        progress: (UInt64, UInt64) -> Void = { _, _ in }
    ) throws {
        var check = AttachmentCheck(identity: identity)
        progress(0, size)
        _ = try feed(path, upTo: .max, into: &check) { progress(min($0, size), size) }
        try check.finish(size: size, sha256: sha256)
    }

    /// Passes the first `limit` bytes of the file at `path` (all of it if shorter) through `check`; returns how many.
    static func feed(
        _ path: String,
        upTo limit: UInt64,
        into check: inout AttachmentCheck,
        progress: (UInt64) -> Void = { _ in }
    ) throws -> UInt64 {
        guard let input = FileHandle(forReadingAtPath: path) else { throw ClientError(.profileNotWritable, "cannot read \(path)") }
        defer { try? input.close() }
        let piece = ScratchBuffer(count: readSize)
        var fed: UInt64 = 0
        while fed < limit {
            let wanted = Int(min(UInt64(readSize), limit - fed))
            let count = try fill(UnsafeMutableRawBufferPointer(rebasing: piece.bytes[..<wanted]), from: input.fileDescriptor, of: path)
            guard count > 0 else { break }
            check.update(piece.prefix(count))
            fed += UInt64(count)
            progress(fed)
        }
        return fed
    }

    /// Decrypts the age file at `path` with `identity` into `destination`, streaming; nothing is left at
    /// `destination` if the file does not decrypt completely.
    static func decrypt(
        _ path: String,
        identity: AgreementKey.Private,
        to destination: String,
        progress: (UInt64, UInt64) -> Void = { _, _ in }
    ) throws {
        guard let input = FileHandle(forReadingAtPath: path) else { throw ClientError(.profileNotWritable, "cannot read \(path)") }
        defer { try? input.close() }
        let total = (try? input.seekToEnd()) ?? 0
        try input.seek(toOffset: 0)
        // A new name nobody else can have made: never a file or link someone placed at a predictable path.
        let temporary = destination + ".\(UInt32.random(in: 0...UInt32.max)).part"
        let output = try OutputFile(path: temporary, exclusive: true)
        do {
            var decryptor = AgeDecryptor(identity: identity)
            // One buffer for what is read and one for its plaintext, reused for every piece and wiped at the end.
            let piece = ScratchBuffer(count: readSize)
            let plain = ScratchBuffer(count: AgeDecryptor.plaintextCapacity(forFileBytes: readSize))
            var read: UInt64 = 0
            progress(0, total)
            while case let count = try fill(piece.bytes, from: input.fileDescriptor, of: path), count > 0 {
                try output.write(plain.prefix(try decryptor.update(piece.prefix(count), into: plain.bytes)))
                read += UInt64(count)
                progress(min(read, total), total)
            }
            var last = try decryptor.finish()
            try output.write(last)
            secureZero(&last)
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
        try bytes.withUnsafeBytes { try write($0) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var written = 0
        while written < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + written, bytes.count - written)
            guard n > 0 else {
                if n < 0, errno == EINTR { continue }
                throw ClientError(.fileNotAccessible, "cannot write: \(String(cString: strerror(errno)))")
            }
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

/// Memory a streaming loop reuses for every piece it moves (a read, its ciphertext or its plaintext) instead of a new
/// array per piece: a fresh 1 MiB buffer per piece had the kernel fault in and zero new pages for every MiB. It may
/// hold plaintext, so it is wiped before it is freed.
final class ScratchBuffer {
    /// The memory; valid until the buffer is freed.
    let bytes: UnsafeMutableRawBufferPointer

    init(count: Int) {
        bytes = .allocate(byteCount: count, alignment: 64)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
    }

    /// The first `count` bytes.
    func prefix(_ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[..<count])
    }

    deinit {
        secureZero(bytes)
        bytes.deallocate()
    }
}
