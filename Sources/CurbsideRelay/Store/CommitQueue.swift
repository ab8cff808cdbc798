import GRDB
import NIOConcurrencyHelpers

/// Group commit for the SQLite store's sends, run on GRDB's writer with no task, actor or continuation per send:
/// a send handed over while a transaction is being written and fsynced waits here and goes into the next one, so
/// one fsync makes a batch durable.
///
/// A send is settled where its transaction finishes, on the writer: its `SendSettlement` is called with
/// the outcome (or the transaction's error), the frames those calls gather are written, and only then are callers of
/// `enqueue` resumed. The relay's pipelined sends need nothing else, so a send costs one hand-over to the writer and
/// one to the event loops that write its push and answer. Waiting for the outcome in a task (`enqueue`, and before
/// this, every send through an actor) costs a continuation, and a thread to wake, per send.
///
/// The next batch is written by another job on the writer's queue, behind whatever the queue already holds (an
/// acknowledgement, an upload's commit), so a stream of sends never keeps other writes waiting.
final class CommitQueue: Sendable {
    private struct Pending {
        let item: Submission
        let settle: SendSettlement?
        let caller: CheckedContinuation<EnqueueOutcome, any Error>?
    }

    private struct State {
        var pending: [Pending] = []
        /// A job on the writer's queue will take what is pending.
        var scheduled = false
        var transactions = 0
        var items = 0
    }

    private let database: any DatabaseWriter
    private let state = NIOLockedValueBox(State())

    init(_ database: any DatabaseWriter) {
        self.database = database
    }

    /// Transactions written and envelopes in them.
    var statistics: (transactions: Int, envelopes: Int) {
        state.withLockedValue { ($0.transactions, $0.items) }
    }

    /// Hands `item` to the next transaction; `settle` is called on the writer once it has committed or failed.
    func submit(_ item: Submission, settle: @escaping SendSettlement) {
        hand(Pending(item: item, settle: settle, caller: nil))
    }

    /// Stores `item` in the next transaction; returns its outcome once that has committed, after `whenCommitted`.
    func enqueue(_ item: Submission, whenCommitted: SendCompletion?) async throws -> EnqueueOutcome {
        var settle: SendSettlement?
        if let whenCommitted {
            settle = { result, writes in
                if case .success(let outcome) = result { whenCommitted(outcome, &writes) }
            }
        }
        return try await withCheckedThrowingContinuation { (caller: CheckedContinuation<EnqueueOutcome, any Error>) in
            hand(Pending(item: item, settle: settle, caller: caller))
        }
    }

    private func hand(_ pending: Pending) {
        let schedule = state.withLockedValue { state in
            state.pending.append(pending)
            defer { state.scheduled = true }
            return !state.scheduled
        }
        if schedule { database.asyncWriteWithoutTransaction { self.write($0) } }
    }

    /// On the writer: everything pending in one transaction, settled; then the next job if more came meanwhile.
    private func write(_ db: Database) {
        let batch = state.withLockedValue { state in
            defer { state.pending.removeAll(keepingCapacity: true) }
            return state.pending
        }
        let results: [Result<EnqueueOutcome, any Error>]
        do {
            var outcomes: [EnqueueOutcome] = []
            try db.inTransaction {
                outcomes = try SQLiteRelayStore.insert(batch.map(\.item), into: db)
                return .commit
            }
            results = outcomes.map { .success($0) }
        } catch let error as DatabaseError {
            results = Array(repeating: .failure(SQLiteRelayStore.storageError(error)), count: batch.count)
        } catch {
            results = Array(repeating: .failure(error), count: batch.count)
        }
        var writes = DurableWrites()
        for (pending, result) in zip(batch, results) { pending.settle?(result, &writes) }
        writes.flush()
        for (pending, result) in zip(batch, results) { pending.caller?.resume(with: result) }
        let more = state.withLockedValue { state in
            state.transactions += 1
            state.items += batch.count
            state.scheduled = !state.pending.isEmpty
            return state.scheduled
        }
        if more { database.asyncWriteWithoutTransaction { self.write($0) } }
    }
}
