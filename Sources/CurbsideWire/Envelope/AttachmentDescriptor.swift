/// What the sender says about one attached file (spec/envelope.md §Attachment descriptor).
///
/// The file travels separately as an age v1 file encrypted to a one-time X25519 identity; the identity's secret
/// key travels here, inside the signed and encrypted message, together with the file's size and SHA-256.
public struct AttachmentDescriptor: Sendable, Hashable, WireCodable {
    public static let wireName = "attachment"
    static let mediaTypeBounds = 1...127
    static let fileNameBounds = 0...255
    /// Files up to 1 TiB.
    public static let maximumSize: UInt64 = 1 << 40

    /// Size of the encrypted (age) file in bytes.
    public let size: UInt64
    /// SHA-256 of the encrypted file.
    public let sha256: [UInt8]
    /// Such as "image/jpeg".
    public let mediaType: String
    /// The sender's file name, for display only.
    public let fileName: String
    /// The one-time age identity that decrypts the file.
    public let ageIdentity: AgreementKey.Private

    /// - Throws: `WireError` naming the field that is out of bounds or malformed.
    public init(
        size: UInt64,
        sha256: [UInt8],
        mediaType: String,
        fileName: String,
        ageIdentity: AgreementKey.Private
    ) throws(WireError) {
        guard (1...Self.maximumSize).contains(size) else {
            throw WireError(.invalidValue, field: "attachment.size", offset: nil, detail: "size \(size) outside 1...2^40")
        }
        guard sha256.count == SHA256.byteCount else {
            throw WireError(.lengthOutOfBounds, field: "attachment.sha256", offset: nil, detail: "\(sha256.count) bytes")
        }
        try Text.check(mediaType, field: "attachment.media_type", bounds: Self.mediaTypeBounds)
        try Text.check(fileName, field: "attachment.file_name", bounds: Self.fileNameBounds)
        self.size = size
        self.sha256 = sha256
        self.mediaType = mediaType
        self.fileName = fileName
        self.ageIdentity = ageIdentity
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        let sizeOffset = reader.offset
        size = try reader.readUInt64("\(field).size")
        guard (1...Self.maximumSize).contains(size) else {
            throw WireError(.invalidValue, field: "\(field).size", offset: sizeOffset, detail: "size \(size) outside 1...2^40")
        }
        sha256 = try reader.readBytes(count: SHA256.byteCount, "\(field).sha256")
        mediaType = try reader.readText("\(field).media_type", bounds: Self.mediaTypeBounds)
        fileName = try reader.readText("\(field).file_name", bounds: Self.fileNameBounds)
        let secret = try reader.readSecret(count: AgreementKey.byteCount, "\(field).age_identity")
        ageIdentity = try! AgreementKey.Private(rawRepresentation: secret)
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeUInt64(size)
        writer.writeBytes(sha256)
        writer.writeText(mediaType, bounds: Self.mediaTypeBounds)
        writer.writeText(fileName, bounds: Self.fileNameBounds)
        writer.writeSecret(ageIdentity.rawRepresentation)
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.size == rhs.size && lhs.sha256 == rhs.sha256 && lhs.mediaType == rhs.mediaType
            && lhs.fileName == rhs.fileName && lhs.ageIdentity == rhs.ageIdentity
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(sha256)
    }
}
