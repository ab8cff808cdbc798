/// A step in a message's timeline; the latest one is where the message stands.
///
/// Sent messages go `created`, `stored` (the relay has it), `deliveredToDevice`, `delivered` (the recipient saved
/// it), `read`, `answered`; received ones are `received`, then `read` once shown. `expired` and `failed` end a
/// timeline early and carry a detail. The raw value is the word the CLI prints and `--json` carries, and the value
/// the profile database stores.
public enum DeliveryState: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// Written and queued in the outbox.
    case created
    /// Acknowledged `stored` by the relay.
    case stored
    /// The relay handed it to the recipient's device (a relay notice).
    case deliveredToDevice = "delivered_to_device"
    /// The recipient's device saved it (a `delivered` receipt).
    case delivered
    /// Shown to its recipient (a `read` receipt, or this profile showed a received message).
    case read
    /// The recipient replied in its thread.
    case answered
    /// Received by this profile.
    case received
    /// The relay dropped it unfetched after its lifetime.
    case expired
    /// It could not be delivered or opened; the event's detail says why.
    case failed

    /// The raw value, so interpolation prints the word and not the case name.
    public var description: String { rawValue }
}
