/// A consult or reply with its full text.
public struct ShownMessage: Sendable, Hashable, Codable {
    /// The message as `inbox` or `status` lists it.
    public let summary: MessageSummary
    /// A consult's subject.
    public let subject: String?
    /// The specialty a consult asks.
    public let specialty: String?
    /// A consult's question.
    public let question: String?
    /// A consult's case summary.
    public let clinicalSummary: String?
    /// A reply's text, or what a receipt reports.
    public let text: String?
    /// The id of the message a reply answers.
    public let inReplyTo: String?
    /// What happened to it, oldest first.
    public let timeline: [TimelineEvent]
    /// Its attachments, in order.
    public let attachments: [AttachmentInfo]
}
