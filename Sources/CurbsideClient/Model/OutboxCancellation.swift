/// What ``Client/cancelQueued(_:evenIfSending:)`` did.
public enum OutboxCancellation: String, Sendable, Hashable, Codable {
    /// It was in the outbox and no `send` of it had gone to the relay: it is deleted — message, timeline and
    /// encrypted attachments — and its recipient will never receive it.
    case cancelled
    /// A `send` of it had gone to the relay without an answer yet; it was deleted anyway (`evenIfSending`), but the
    /// relay may have stored it, and a stored message cannot be recalled.
    case cancelledButMayBeStored = "cancelled_but_may_be_stored"
    /// A `send` of it is with the relay and `evenIfSending` was false: nothing was changed.
    case sending
    /// The relay stored it already: it cannot be recalled, and nothing was changed.
    case alreadyStored = "already_stored"
    /// This profile holds no queued or sent message with that id (it may never have been queued).
    case notQueued = "not_queued"
}
