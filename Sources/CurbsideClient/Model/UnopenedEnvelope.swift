/// An envelope that reached this device and could not be opened (spec/envelope.md §Receiving): the relay-named
/// sender was told through a `rejected` notice; the user should ask them to send it again.
public struct UnopenedEnvelope: Sendable, Hashable, Codable {
    /// The profile's number for this record, increasing with each one (``Client/markUnopenedShown(through:)``).
    public let sequence: Int64
    /// The sender as the relay named it (the account that sent it; nothing inside the envelope could be trusted).
    public let sender: String
    /// Milliseconds since 1970, when this device received it.
    public let at: UInt64
    /// Why it could not be opened, as its sender was told: decide on this.
    public let reason: RejectionReason
    /// The check that failed, for a diagnosis: an error identifier of spec/errors.md such as `unknown_prekey`, or
    /// `sender_mismatch`. For people and support requests, not for deciding.
    public let detail: String
    /// Whether `inbox` has reported it already.
    public let shown: Bool
}
