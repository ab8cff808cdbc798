/// What ``Client/prune(sentStoredBefore:)`` deleted from the profile.
public struct PruneReport: Sendable, Hashable, Codable {
    /// Encrypted copies of sent attachments no longer needed (delivered, expired, or stored long enough ago).
    public var sentCopies = 0
    /// Files in the profile's attachments folder that no message refers to: left by an interrupted send, a
    /// cancelled or discarded message, or a download that never completed.
    public var leftovers = 0
    /// Bytes freed in all.
    public var bytes: UInt64 = 0

    public init() {}
}
