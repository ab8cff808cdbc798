/// When one consult reached each step that turnaround is measured by, as this profile recorded it.
///
/// For a consult this profile sent: created (its own clock), delivered and read (the recipient's receipts, dated by
/// the recipient), answered (the recipient's first reply in the thread, as the recipient dated it). For one it
/// received: created (the sender's clock), delivered (saved on this device), read (first shown here), answered
/// (this profile's first reply in the thread).
public struct ConsultTimes: Sendable, Hashable, Codable {
    /// The consult's id, 32 hex digits.
    public let id: String
    /// Sent by this profile, or received.
    public let direction: Direction
    /// The other party: the specialist asked, or the colleague who asked.
    public let peer: String
    /// The consult's subject.
    public let subject: String
    /// The consult's urgency.
    public let urgency: Urgency
    /// Milliseconds since 1970 of each step; nil while it is not reached.
    public let created: UInt64
    public let delivered: UInt64?
    public let read: UInt64?
    public let answered: UInt64?

    /// A consult's times; the steps are milliseconds since 1970.
    public init(
        id: String,
        direction: Direction,
        peer: String,
        subject: String,
        urgency: Urgency,
        created: UInt64,
        delivered: UInt64?,
        read: UInt64?,
        answered: UInt64?
    ) {
        self.id = id
        self.direction = direction
        self.peer = peer
        self.subject = subject
        self.urgency = urgency
        self.created = created
        self.delivered = delivered
        self.read = read
        self.answered = answered
    }

    /// Milliseconds from creation to `step`; 0 when the two clocks disagree so far that it would be negative.
    func elapsed(to step: UInt64?) -> UInt64? {
        step.map { $0 >= created ? $0 - created : 0 }
    }
}
