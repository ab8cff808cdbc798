/// Limits on what a message's attachments may make this device download (spec/envelope.md §Receiving).
public struct AttachmentLimits: Sendable, Hashable, Codable {
    /// The largest single attachment fetched; a larger one is refused with an `attachment_unavailable` receipt.
    public var bytesPerAttachment: UInt64
    /// Attachment bytes fetched from one sender in any 24 hours; beyond it, attachments are refused likewise.
    public var bytesPerSenderPerDay: UInt64

    /// Limits of `bytesPerAttachment` per file and `bytesPerSenderPerDay` per sender.
    public init(bytesPerAttachment: UInt64, bytesPerSenderPerDay: UInt64) {
        self.bytesPerAttachment = bytesPerAttachment
        self.bytesPerSenderPerDay = bytesPerSenderPerDay
    }

    /// 512 MiB per attachment, 2 GiB per sender per day.
    public static let standard = AttachmentLimits(bytesPerAttachment: 512 << 20, bytesPerSenderPerDay: 2 << 30)
}
