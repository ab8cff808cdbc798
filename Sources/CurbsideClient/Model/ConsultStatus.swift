/// A consult's timeline and time to answer, for `status`.
public struct ConsultStatus: Sendable, Hashable, Codable {
    /// The message as `status` lists it.
    public let summary: MessageSummary
    /// What happened to it, oldest first.
    public let timeline: [TimelineEvent]
    /// First time each step was reached (milliseconds since 1970), nil while not reached.
    public let created: UInt64?
    /// Acknowledged `stored` by the relay.
    public let stored: UInt64?
    /// Handed to the recipient's device by the relay.
    public let deliveredToDevice: UInt64?
    /// Saved by the recipient's device (its `delivered` receipt).
    public let delivered: UInt64?
    /// Shown to the recipient (its `read` receipt).
    public let read: UInt64?
    /// The recipient's first reply in the thread, as the recipient dated it.
    public let answered: UInt64?
    /// answered − created, in milliseconds.
    public let timeToAnswer: UInt64?
    /// Still in the outbox.
    public let queued: Bool
}
