/// One consult or reply as listed.
public struct MessageSummary: Sendable, Hashable, Codable {
    /// The message id, 32 hex digits (`MessageID`); a consult's id is also its thread's.
    public let id: String
    /// The thread's id, 32 hex digits: the id of the consult that started it.
    public let thread: String
    /// Received or sent.
    public let direction: Direction
    /// The other party's handle: the sender of a received message, the recipient of a sent one.
    public let peer: String
    /// Consult, reply or receipt.
    public let kind: MessageKind
    /// The consult's subject, a reply's first line, or what a receipt reports.
    public let title: String
    /// A consult's urgency; nil for replies and receipts.
    public let urgency: Urgency?
    /// When its sender wrote it, milliseconds since 1970 (the sender's clock).
    public let createdAt: UInt64
    /// The latest thing that happened to it.
    public let state: DeliveryState
    /// The sender's key differs from the pinned one: the content stays hidden until it is verified.
    public let untrusted: Bool
    /// A received consult or reply not yet shown (`show` marks it read and sends its read receipt); nil for what
    /// this profile sent, and for receipts.
    public let unread: Bool?
    /// A reply's thread subject: the subject of the consult it answers, when this profile holds that consult.
    public let consultSubject: String?
    /// Its attachments, in order; nil when it has none.
    public let attachments: [AttachmentInfo]?
}
