import CurbsideWire

/// What one flush of the outbox did with one queued message.
///
/// Decide on the case and on the error's `code` (and `relayError?.code`), never on its message.
public enum DeliveryResult: Sendable, Hashable {
    /// The relay stored it (a resend of the same envelope is answered the same way); it left the outbox.
    case stored(StoredReceipt)
    /// It waits in the outbox for the relay (a `.network` code: unreachable, busy, the recipient's keys expired) or
    /// for the user (`.keyChanged`: verifying the new key sends it). A later flush sends it.
    case queued(ClientError)
    /// It could not be sent as it is: the relay refused it (`.refused`, with the relay's code), the recipient is not
    /// registered (`.unknownRecipient`), or it cannot be sealed. It stays in the outbox until the user discards it.
    case refused(ClientError)
    /// An automatic receipt that failed ``Client/receiptAttempts`` times: given up and removed from the outbox.
    case abandoned(ClientError)

    /// Why it is not stored, when it is not.
    public var error: ClientError? {
        switch self {
        case .stored: nil
        case .queued(let error), .refused(let error), .abandoned(let error): error
        }
    }
}

/// What one flush of the outbox did, message by message in the order they were queued.
struct OutboxFlush: Sendable {
    /// One result per message tried, in queue order; a message tried again after a reconnection keeps its place
    /// and its latest result.
    private(set) var results: [(id: MessageID, kind: MessageKind, result: DeliveryResult)] = []
    /// The network failure that ended the flush: the messages after the one it names were not tried and wait.
    var interruption: ClientError?
    /// How many messages the outbox held when the flush ended.
    var remaining = 0

    mutating func record(_ id: MessageID, kind: MessageKind, _ result: DeliveryResult) {
        if let index = results.firstIndex(where: { $0.id == id }) {
            results[index].result = result
        } else {
            results.append((id, kind, result))
        }
    }

    /// Adds a later flush of the same outbox (after a reconnection): its results replace earlier ones.
    mutating func merge(_ later: OutboxFlush) {
        for (id, kind, result) in later.results { record(id, kind: kind, result) }
        interruption = later.interruption
        remaining = later.remaining
    }

    func result(of id: MessageID) -> DeliveryResult? {
        results.first { $0.id == id }?.result
    }
}

extension SyncReport {
    /// Counts what a flush sent (consults and replies apart from automatic receipts) and says why the last message
    /// that did not go waits.
    mutating func add(_ flush: OutboxFlush) {
        for (_, kind, result) in flush.results {
            switch result {
            case .stored where kind == .receipt: receiptsSent += 1
            case .stored: sent += 1
            case .queued(let error), .refused(let error): queueError = error
            case .abandoned: break
            }
        }
        queued = flush.remaining
    }
}
