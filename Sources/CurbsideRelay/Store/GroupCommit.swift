import CurbsideWire

/// Group commit for sends: while one transaction is being written and fsynced, sends that arrive wait and are
/// then written together in the next one. Each caller returns only once its own envelope is durable.
///
/// The first caller to find no write in progress leads: it writes its batch, then hands the lead to the first
/// waiting caller, which writes everything that waited in the next transaction. No caller writes more than the
/// batch its own envelope is in, so none is held up by later load, and no task is spawned.
///
/// The PostgreSQL store's; the SQLite store has `CommitQueue`, which runs on GRDB's writer with no task per send.
///
/// A caller may hand over a completion with its item: the batch's completions run once its write has returned
/// (`BatchCompletion`), before any caller is resumed.
actor GroupCommit {
    typealias Item = Submission

    /// What a waiting caller is told: its batch committed (or failed), or it leads the next one.
    private enum Turn: Sendable {
        case finished(Result<EnqueueOutcome, any Error>)
        case lead
    }

    /// A caller waiting for the transaction in progress to finish. A struct, not a tuple: tuples of these types are
    /// copied through runtime metadata, which showed in the instructions per send.
    private struct Waiter {
        let item: Item
        let completion: SendCompletion?
        let turn: CheckedContinuation<Turn, Never>
    }

    private let write: @Sendable ([Item]) async throws -> [EnqueueOutcome]
    private var waiting: [Waiter] = []
    private var writing = false
    /// Batches written and envelopes in them, for tests and `relay status`.
    private(set) var transactions = 0
    private(set) var items = 0
    /// Sends waiting for the transaction in progress to finish.
    var waitingCount: Int { waiting.count }

    /// `write` writes a batch in one transaction and returns once it has committed.
    init(write: @escaping @Sendable (_ batch: [Item]) async throws -> [EnqueueOutcome]) {
        self.write = write
    }

    func enqueue(_ item: Item, whenCommitted completion: SendCompletion? = nil) async throws -> EnqueueOutcome {
        if writing {
            let turn = await withCheckedContinuation { waiting.append(Waiter(item: item, completion: completion, turn: $0)) }
            if case .finished(let result) = turn { return try result.get() }
            // Handed the lead: this item was left out of `waiting` for us to write now, with everyone behind it.
        } else {
            writing = true
        }
        let followers = waiting
        waiting = []
        var batch = [item]
        var whenCommitted = BatchCompletion(completions: [completion])
        batch.reserveCapacity(followers.count + 1)
        whenCommitted.completions.reserveCapacity(followers.count + 1)
        for follower in followers {
            batch.append(follower.item)
            whenCommitted.completions.append(follower.completion)
        }
        let results: [Result<EnqueueOutcome, any Error>]
        do {
            let outcomes = try await write(batch)
            whenCommitted.run(outcomes)
            results = outcomes.map { .success($0) }
        } catch {
            results = Array(repeating: .failure(error), count: batch.count)
        }
        transactions += 1
        items += batch.count
        for (follower, result) in zip(followers, results.dropFirst()) {
            follower.turn.resume(returning: .finished(result))
        }
        if waiting.isEmpty {
            writing = false
        } else {
            waiting.removeFirst().turn.resume(returning: .lead)
        }
        return try results[0].get()
    }
}

/// The completions of a batch's sends (`RelayStore.enqueue(_:whenCommitted:)`), run together once it has committed:
/// each with its send's outcome, in batch order, then the frames they gathered written, one flush per channel.
struct BatchCompletion: Sendable {
    var completions: [SendCompletion?] = []

    func run(_ outcomes: [EnqueueOutcome]) {
        guard completions.contains(where: { $0 != nil }) else { return }
        var writes = DurableWrites()
        for (completion, outcome) in zip(completions, outcomes) { completion?(outcome, &writes) }
        writes.flush()
    }
}
