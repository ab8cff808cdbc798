/// Where a send stands when the call returns.
public struct SendOutcome: Sendable, Hashable, Codable {
    /// The message id, 32 hex digits (`MessageID`): the same whether it went now or goes out later.
    public let id: String
    /// True once the relay acknowledged it `stored`; false while it waits in the outbox.
    public let stored: Bool
    /// Why it waits, when it does, for people.
    public let waiting: String?
    /// Why it waits, when it does, for code: decide on `reason.code` (and `reason.relayError?.code`).
    public var reason: ClientError?
    /// What was removed from attachments before encryption, such as "forearm.jpg: GPS location".
    public var removedMetadata: [String] = []

    private enum CodingKeys: String, CodingKey { case id, stored, waiting, removedMetadata }

    init(id: String, stored: Bool, waiting: String?, reason: ClientError? = nil) {
        self.id = id
        self.stored = stored
        self.waiting = waiting
        self.reason = reason
    }

    func noting(_ prepared: [(PreparedAttachment, AttachmentSource)]) -> SendOutcome {
        var copy = self
        copy.removedMetadata = prepared.flatMap { file, source in file.removedMetadata.sorted().map { "\(source.fileName): \($0)" } }
        return copy
    }
}
