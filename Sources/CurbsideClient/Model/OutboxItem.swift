/// A message waiting in the outbox (``Client/outbox()``), or one that just left it (``Client/onSent(_:)``).
public struct OutboxItem: Sendable, Hashable, Codable {
    /// The message id, 32 hex digits.
    public let id: String
    /// Who it is for.
    public let recipient: String
    public let kind: MessageKind
    /// A consult's subject, a reply's first line, or what a receipt is about.
    public let title: String
    /// When it was queued, in milliseconds since 1970.
    public let queuedAt: UInt64
    /// Bytes it takes to send: its attachments' encrypted sizes and its sealed body.
    public let bytes: UInt64
    /// How many files it carries.
    public let attachments: Int
    /// Failed attempts so far.
    public let attempts: Int
    /// Why the last attempt failed, for people; nil before any attempt failed.
    public let lastError: String?
    /// The last failure's `ClientError.Code` number, for code.
    public let lastErrorCode: UInt16?
    /// True while a `send` of it may be with the relay: the request went out and no answer came back yet (or the
    /// process that sent it stopped first). It may be stored already; cancelling it cannot recall it then.
    public let sending: Bool
}
