/// Moving attachment files through the relay (spec/relay.md §Attachments).
///
/// An attachment is named by the SHA-256 of its bytes (the encrypted age file), the `sha256` of its descriptor. The
/// sender opens an upload with the size, writes chunks at the offset the relay holds, and commits; the relay checks
/// size and hash. A `send` names the attachments its envelope refers to, and the recipient downloads them by range.

/// How many bytes one chunk carries at most, up and down.
public enum AttachmentChunk {
    public static let maximumLength = 1 << 20
    static let dataBounds = 1...maximumLength
    static let downloadBounds = 0...maximumLength
}

/// Client → relay: start (or ask about) the upload of the attachment `attachmentID` of `size` bytes.
public struct OpenUpload: Sendable, Hashable, WireCodable {
    public static let wireName = "open_upload"

    public let attachmentID: [UInt8]
    public let size: UInt64

    public init(attachmentID: [UInt8], size: UInt64) {
        precondition(attachmentID.count == 32, "internal error: an attachment id is 32 bytes")
        self.attachmentID = attachmentID
        self.size = size
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        attachmentID = try reader.readBytes(count: 32, "\(field).attachment_id")
        size = try Self.readSize(&reader, "\(field).size")
    }

    /// An attachment's size as the wire gives it: 1 to 2^40 (the most a descriptor allows).
    static func readSize(_ reader: inout WireReader, _ field: String) throws(WireError) -> UInt64 {
        let offset = reader.offset
        let size = try reader.readUInt64(field)
        guard (1...AttachmentDescriptor.maximumSize).contains(size) else {
            throw WireError(.invalidValue, field: field, offset: offset, detail: "size \(size) outside 1...2^40")
        }
        return size
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeBytes(attachmentID)
        writer.writeUInt64(size)
    }
}

/// `commit_upload_as` (spec/relay.md §Attachments): the upload opened as `uploadID` holds the whole file, `size`
/// bytes, whose SHA-256 is `attachmentID`; the relay checks that and names the upload `attachmentID`.
public struct CommitUploadAs: Sendable, Hashable, WireCodable {
    public static let wireName = "commit_upload_as"

    public let uploadID: [UInt8]
    public let attachmentID: [UInt8]
    public let size: UInt64

    public init(uploadID: [UInt8], attachmentID: [UInt8], size: UInt64) {
        precondition(uploadID.count == 32 && attachmentID.count == 32, "internal error: upload and attachment ids are 32 bytes")
        self.uploadID = uploadID
        self.attachmentID = attachmentID
        self.size = size
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        uploadID = try reader.readBytes(count: 32, "\(field).upload_id")
        attachmentID = try reader.readBytes(count: 32, "\(field).attachment_id")
        size = try OpenUpload.readSize(&reader, "\(field).size")
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeBytes(uploadID)
        writer.writeBytes(attachmentID)
        writer.writeUInt64(size)
    }
}

/// Relay → client: where an upload stands.
public struct UploadStatus: Sendable, Hashable, WireCodable {
    public static let wireName = "upload_status"

    public enum State: UInt8, Sendable {
        /// Bytes may still be written; `held` bytes are on the relay's disk.
        case uploading = 1
        /// Committed: size and hash checked, durable, ready to be named by a `send`.
        case complete = 2
    }

    public let size: UInt64
    /// The next chunk must start here.
    public let held: UInt64
    public let state: State
    /// When the relay deletes the upload unless an envelope refers to it; 0 while envelopes refer to it.
    public let expiresAt: Timestamp

    public init(size: UInt64, held: UInt64, state: State, expiresAt: Timestamp) {
        self.size = size
        self.held = held
        self.state = state
        self.expiresAt = expiresAt
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        size = try reader.readUInt64("\(field).size")
        let heldOffset = reader.offset
        held = try reader.readUInt64("\(field).held")
        guard held <= size else {
            throw WireError(.invalidValue, field: "\(field).held", offset: heldOffset, detail: "held \(held) is more than size \(size)")
        }
        state = try reader.readEnum(State.self, "\(field).state")
        expiresAt = try Timestamp(from: &reader, field: "\(field).expires_at")
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeUInt64(size)
        writer.writeUInt64(held)
        writer.writeEnum(state)
        writer.writeUInt64(expiresAt.millisecondsSince1970)
    }
}

/// Client → relay: bytes of an open upload, which must start at the offset the relay holds.
public struct UploadChunk: Sendable, Hashable, WireCodable {
    public static let wireName = "upload_chunk"

    public let attachmentID: [UInt8]
    public let offset: UInt64
    public let data: [UInt8]

    /// - Throws: `WireError.lengthOutOfBounds` for no data or more than `AttachmentChunk.maximumLength` bytes.
    public init(attachmentID: [UInt8], offset: UInt64, data: [UInt8]) throws(WireError) {
        precondition(attachmentID.count == 32, "internal error: an attachment id is 32 bytes")
        guard AttachmentChunk.dataBounds.contains(data.count) else {
            throw WireError(.lengthOutOfBounds, field: "upload_chunk.data", offset: nil, detail: "\(data.count) bytes")
        }
        self.attachmentID = attachmentID
        self.offset = offset
        self.data = data
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        attachmentID = try reader.readBytes(count: 32, "\(field).attachment_id")
        offset = try reader.readUInt64("\(field).offset")
        data = try reader.readOpaque("\(field).data", bounds: AttachmentChunk.dataBounds)
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeBytes(attachmentID)
        writer.writeUInt64(offset)
        writer.writeOpaque(data, bounds: AttachmentChunk.dataBounds)
    }
}

/// Client → relay: up to `length` bytes of an attachment from `offset`.
public struct DownloadRequest: Sendable, Hashable, WireCodable {
    public static let wireName = "download"

    public let attachmentID: [UInt8]
    public let offset: UInt64
    public let length: UInt32

    public init(attachmentID: [UInt8], offset: UInt64, length: UInt32) {
        precondition(attachmentID.count == 32, "internal error: an attachment id is 32 bytes")
        precondition(AttachmentChunk.dataBounds.contains(Int(length)), "internal error: download length out of bounds")
        self.attachmentID = attachmentID
        self.offset = offset
        self.length = length
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        attachmentID = try reader.readBytes(count: 32, "\(field).attachment_id")
        offset = try reader.readUInt64("\(field).offset")
        let lengthOffset = reader.offset
        length = try reader.readUInt32("\(field).length")
        guard AttachmentChunk.dataBounds.contains(Int(length)) else {
            throw WireError(.invalidValue, field: "\(field).length", offset: lengthOffset, detail: "length \(length) outside 1...2^20")
        }
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeBytes(attachmentID)
        writer.writeUInt64(offset)
        writer.writeUInt32(length)
    }
}

/// Relay → client: bytes of an attachment; fewer than asked (none at all) only at its end.
public struct AttachmentData: Sendable, Hashable, WireCodable {
    public static let wireName = "attachment_data"

    /// The attachment's whole size.
    public let size: UInt64
    public let offset: UInt64
    public let data: [UInt8]

    public init(size: UInt64, offset: UInt64, data: [UInt8]) {
        precondition(offset + UInt64(data.count) <= size, "internal error: data past the attachment's end")
        self.size = size
        self.offset = offset
        self.data = data
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        size = try reader.readUInt64("\(field).size")
        offset = try reader.readUInt64("\(field).offset")
        let dataOffset = reader.offset
        data = try reader.readOpaque("\(field).data", bounds: AttachmentChunk.downloadBounds)
        guard offset <= size, UInt64(data.count) <= size - offset else {
            throw WireError(.invalidValue, field: "\(field).data", offset: dataOffset, detail: "range ends past size \(size)")
        }
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeUInt64(size)
        writer.writeUInt64(offset)
        writer.writeOpaque(data, bounds: AttachmentChunk.downloadBounds)
    }
}
