/// A pinned colleague.
public struct Contact: Sendable, Hashable, Codable {
    /// The contact's handle.
    public let handle: String
    /// The pinned Ed25519 identity key, hex.
    public let identityKey: String
    /// Whether the safety number was compared and confirmed (`verify(_:safetyNumber:)`).
    public let verified: Bool
    /// A new key the relay presented for this handle, not yet verified; sending is blocked while it is set.
    public let changedKey: String?
    /// The safety number with the pinned key (or with the changed key, when there is one: the number to compare).
    public let safetyNumber: String
    /// When the key was first pinned, milliseconds since 1970.
    public let pinnedAt: UInt64
}
