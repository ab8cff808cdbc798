/// What a sync did.
public struct SyncReport: Sendable, Hashable, Encodable {
    /// Consults and replies that left the outbox (acknowledged `stored` by the relay).
    public var sent = 0
    /// Receipts this device sent by itself (delivered, read), stored by the relay.
    public var receiptsSent = 0
    /// Messages still in the outbox.
    public var queued = 0
    /// Why the last message that did not go waits: the relay could not be reached, or refused it
    /// (``ClientError/relayError`` then says how).
    public var queueError: ClientError?
    /// New consults and replies, and receipts and notices applied.
    public var received = 0
    /// Receipts applied to sent messages.
    public var receipts = 0
    /// Relay notices applied (delivered to device, expired, rejected).
    public var notices = 0
    /// Envelopes that could not be opened (recorded, acknowledged, reported to the sender where possible).
    public var failed = 0
    /// Whether the relay was reached at all.
    public var reachedRelay = false

    public init() {}
}
