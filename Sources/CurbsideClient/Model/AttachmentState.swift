/// Where one attachment stands.
///
/// Sent attachments are `ready` (encrypted on disk), `uploaded`, then `discarded` (the copy deleted once delivered); received ones are `saved`, or one of the
/// reasons they were not (their sender got a `failed` receipt naming it). The raw value is the word the CLI prints
/// and `--json` carries, and the value the profile database stores.
public enum AttachmentState: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// Sent: encrypted on disk, not yet on the relay.
    case ready
    /// Sent: on the relay.
    case uploaded
    /// Sent: its recipient's device has it (or the relay's lifetime for it passed), so the encrypted copy on this
    /// device was deleted.
    case discarded
    /// Received: downloaded and checked.
    case saved
    /// Received: not on the relay any more, or not fetched (no connection).
    case unavailable
    /// Received: its size, SHA-256 or encryption did not check.
    case corrupt
    /// Received: larger than `AttachmentLimits.bytesPerAttachment`, not downloaded.
    case tooLarge = "too_large"
    /// Received: past `AttachmentLimits.bytesPerSenderPerDay` for its sender, not downloaded.
    case overSenderLimit = "over_sender_limit"

    /// The raw value, so interpolation prints the word and not the case name.
    public var description: String { rawValue }

    /// Whether the encrypted file is on this device, so it can be decrypted or copied.
    var hasFile: Bool { self == .ready || self == .uploaded || self == .saved }
}
