/// An attachment as the user sees it.
public struct AttachmentInfo: Sendable, Hashable, Codable {
    /// Its place among the message's attachments, from 0.
    public let index: Int
    /// The name its sender gave it (shown, never used as a path as it is).
    public let fileName: String
    /// Its media type, such as "image/jpeg".
    public let mediaType: String
    /// Size of the encrypted file.
    public let size: UInt64
    /// Size of the file it decrypts to — the photo's own size — when the encrypted file is on this device.
    public let contentSize: UInt64?
    /// SHA-256 of the encrypted file, hex: the attachment's id on the relay.
    public let sha256: String
    /// Where its transfer stands.
    public let state: AttachmentState
}
