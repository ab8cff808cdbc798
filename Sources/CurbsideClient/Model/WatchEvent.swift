/// Something `watch` saw happen.
///
/// Events about one message (a consult or reply received, one of yours sent, a receipt or notice about one of
/// yours) carry it as `message`; `--json` spells its fields out beside `event` and `at` (`id`, `peer`, `kind`,
/// `urgency`, `title`, …, as `inbox --json` lists a message), with `step` for receipts and notices. `detail` is
/// a sentence for people, only where there is no message to describe.
public struct WatchEvent: Sendable, Hashable, Codable {
    /// What kind of thing happened. The raw value is the word the CLI prints and `--json` carries as `event`.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
        /// A connection to the relay is up and what waited has been fetched (the detail names the relay).
        case connected
        /// The connection ended (the detail says why).
        case disconnected
        /// A reconnection is scheduled (the detail says when).
        case retrying
        /// A consult or reply was saved (`message`).
        case received
        /// A receipt reached one of your consults or replies (`message`, `step`: delivered, read or failed).
        case receipt
        /// A relay notice about one of your consults or replies (`message`, `step`: delivered_to_device, expired).
        case notice
        /// One of your consults or replies left the outbox (`message`); receipts sent on your behalf are not reported.
        case sent
        /// Envelopes could not be opened (the detail says how many).
        case failed

        /// The raw value, so interpolation prints the word and not the case name.
        public var description: String { rawValue }
    }

    /// What happened.
    public let kind: Kind
    /// A sentence for people, for events without a message; for a failed step, what the other side reported.
    public let detail: String?
    /// Milliseconds since 1970.
    public let at: UInt64
    /// The message it is about, as `inbox` and `status` list it.
    public let message: MessageSummary?
    /// For a receipt or notice: the step of `message`'s timeline it reached.
    public let step: DeliveryState?

    /// An event with a sentence for people and no message.
    public init(kind: Kind, detail: String?, at: UInt64) {
        self.init(kind: kind, detail: detail, at: at, message: nil, step: nil)
    }

    /// An event about `message`.
    public init(kind: Kind, detail: String? = nil, at: UInt64, message: MessageSummary?, step: DeliveryState? = nil) {
        self.kind = kind
        self.detail = detail
        self.at = at
        self.message = message
        self.step = step
    }

    private enum CodingKeys: String, CodingKey {
        case kind = "event"
        case detail, at, step
    }

    /// The message's own keys (none of which is `event`, `detail`, `at` or `step`) sit beside the event's.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .kind)
        try container.encodeIfPresent(detail, forKey: .detail)
        try container.encode(at, forKey: .at)
        try container.encodeIfPresent(step, forKey: .step)
        try message?.encode(to: encoder)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        kind = try container.decode(Kind.self, forKey: .kind)
        detail = try container.decodeIfPresent(String.self, forKey: .detail)
        at = try container.decode(UInt64.self, forKey: .at)
        step = try container.decodeIfPresent(DeliveryState.self, forKey: .step)
        let messageKeys = try decoder.container(keyedBy: MessageKey.self)
        message = messageKeys.contains(MessageKey(stringValue: "id")) ? try MessageSummary(from: decoder) : nil
    }

    private struct MessageKey: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
