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

    /// Strips metadata (unless kept) and encrypts `source` to a fresh single-use identity into `destination`,
    /// streaming: memory stays at about two 1 MiB buffers and one age chunk. `progress` is called with the bytes of
    /// `source` read and its size; `stop` is asked between pieces and ends the work with `CancellationError`. Nothing
    /// is left at `destination` when this throws.
    static func prepare(
        _ source: AttachmentSource,
        into destination: String,
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
            return try encrypt(input, head: head, source, mediaType: mediaType, to: output, at: destination, total: total, progress: progress, stop: stop)
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
        progress: (UInt64, UInt64) -> Void,
        stop: () throws -> Void
    ) throws -> PreparedAttachment {
        let identity = AgreementKey.Private()
        var encryptor = try AgeEncryptor(recipient: identity.publicKey)
        var filter = MetadataFilter()
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
        var consumed: UInt64 = 0
        progress(0, total)
        while !piece.isEmpty {
            try stop()
            let plain = source.keepMetadata ? piece : filter.update(piece)
            try emit(try encryptor.update(plain))
            consumed += UInt64(piece.count)
            progress(min(consumed, total), total)
            piece = try read(input, upTo: readSize, of: source.path).map(Array.init) ?? []
        }
        if !source.keepMetadata { try emit(try encryptor.update(filter.finish())) }
        if filter.uncheckable {
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
    static func verify(_ path: String, identity: AgreementKey.Private, progress: (UInt64, UInt64) -> Void = { _, _ in }) throws {
        guard let input = FileHandle(forReadingAtPath: path) else { throw ClientError(.profileNotWritable, "cannot read \(path)") }
        defer { try? input.close() }
        let total = (try? input.seekToEnd()) ?? 0
        try input.seek(toOffset: 0)
        var decryptor = AgeDecryptor(identity: identity)
        var consumed: UInt64 = 0
        progress(0, total)
        while let data = try input.read(upToCount: readSize), !data.isEmpty {
            var plaintext = try decryptor.update(Array(data))
            secureZero(&plaintext)
            consumed += UInt64(data.count)
            progress(min(consumed, total), total)
        }
        var last = try decryptor.finish()
        secureZero(&last)
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
            var read: UInt64 = 0
            progress(0, total)
            while let data = try input.read(upToCount: readSize), !data.isEmpty {
                try output.write(try decryptor.update(Array(data)))
                read += UInt64(data.count)
                progress(min(read, total), total)
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
