/// Something `watch` saw happen.
public struct WatchEvent: Sendable, Hashable, Codable {
    /// What kind of thing happened. The raw value is the word the CLI prints and `--json` carries as `event`.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
        /// A connection to the relay is up (the detail names the relay).
        case connected
        /// The connection ended (the detail says why).
        case disconnected
        /// A reconnection is scheduled (the detail says when).
        case retrying
        /// New consults or replies were saved.
        case received
        /// Receipts were applied to sent messages.
        case receipt
        /// Relay notices (delivered to device, expired, rejected) were applied.
        case notice
        /// Messages left the outbox.
        case sent
        /// Envelopes could not be opened.
        case failed

        /// The raw value, so interpolation prints the word and not the case name.
        public var description: String { rawValue }
    }

    /// What happened.
    public let kind: Kind
    /// A sentence for people.
    public let detail: String
    /// Milliseconds since 1970.
    public let at: UInt64

    private enum CodingKeys: String, CodingKey {
        case kind = "event"
        case detail, at
    }
}
