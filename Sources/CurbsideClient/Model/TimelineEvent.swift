/// What happened to a message, in order.
public struct TimelineEvent: Sendable, Hashable, Codable {
    /// The step reached.
    public let kind: DeliveryState
    /// Milliseconds since 1970.
    public let at: UInt64
    /// Why, for a `failed` step: what the relay or the other side reported (sealed in the profile).
    public let detail: String?
}
