import CurbsideWire
import NIOConcurrencyHelpers
import NIOCore

/// The frames a connection's requests put out, in the order they were made, written on the channel's event loop in
/// batches: what accumulated before the loop got to them goes out with one flush. A client that keeps many sends in
/// flight (an outbox backlog) so costs one socket write per batch, not one per request.
///
/// No task of its own: a request hands its frame straight to the event loop, where a writer task used to be woken
/// first (two thread hops more per request, a good part of a login's context switches). The same pass on the loop
/// arms the connection's request timer (`onDue`) when a request's deadline is earlier than the one it is armed for.
final class OutgoingFrames: Sendable {
    private struct State {
        var frames: [Frame] = []
        /// A pass on the event loop is coming and will take what is queued.
        var scheduled = false
        var finished = false
        /// The earliest deadline asked for since the last pass.
        var due: ContinuousClock.Instant?
        /// The timer armed on the event loop, and when it fires.
        var timer: (at: ContinuousClock.Instant, task: Scheduled<Void>)?
        var closed = false
    }

    private let state = NIOLockedValueBox(State())
    private let channel: any Channel
    private let onDue = NIOLockedValueBox<(@Sendable () -> Void)?>(nil)

    /// How long `finish` waits for the relay's close_notify before it closes the connection regardless.
    static let closeTimeout: TimeAmount = .seconds(5)

    init(channel: any Channel) {
        self.channel = channel
        channel.closeFuture.whenComplete { _ in
            let timer = self.state.withLockedValue { state in
                state.closed = true
                defer { state.timer = nil }
                return state.timer?.task
            }
            timer?.cancel()
        }
    }

    /// What runs when a deadline given to `append` or `check(by:)` has come (on the event loop; it should only
    /// start the work).
    func whenDue(_ body: @escaping @Sendable () -> Void) {
        onDue.withLockedValue { $0 = body }
    }

    /// Queues `frame` behind the ones before it, and asks for `onDue` at `deadline` unless it is armed earlier;
    /// after `finish()` it is dropped.
    func append(_ frame: Frame, due deadline: ContinuousClock.Instant? = nil) {
        let schedule = state.withLockedValue { state in
            guard !state.finished else { return false }
            state.frames.append(frame)
            if let deadline { state.due = min(state.due ?? deadline, deadline) }
            defer { state.scheduled = true }
            return !state.scheduled
        }
        if schedule { channel.eventLoop.execute { self.writeQueued() } }
    }

    /// Asks for `onDue` at `deadline` unless it is armed earlier.
    func check(by deadline: ContinuousClock.Instant) {
        let schedule = state.withLockedValue { state in
            state.due = min(state.due ?? deadline, deadline)
            defer { state.scheduled = true }
            return !state.scheduled
        }
        if schedule { channel.eventLoop.execute { self.writeQueued() } }
    }

    /// No more frames: what is queued is written, then the channel is closed (close_notify goes out after them),
    /// at the latest `closeTimeout` later if the relay does not answer it.
    func finish() {
        let schedule = state.withLockedValue { state in
            guard !state.finished else { return false }
            state.finished = true
            defer { state.scheduled = true }
            return !state.scheduled
        }
        if schedule { channel.eventLoop.execute { self.writeQueued() } }
    }

    /// On the event loop: writes the queued frames with one flush, arms the timer, closes after `finish`.
    private func writeQueued() {
        let (batch, finished, due) = state.withLockedValue { state in
            let batch = state.frames
            state.frames.removeAll(keepingCapacity: true)
            state.scheduled = false
            defer { state.due = nil }
            return (batch, state.finished, state.due)
        }
        if !batch.isEmpty {
            for frame in batch.dropLast() { channel.write(frame, promise: nil) }
            let written = channel.eventLoop.makePromise(of: Void.self)
            // A write that fails leaves the connection unusable: closing it fails the requests waiting on it.
            written.futureResult.whenFailure { [channel] _ in channel.close(promise: nil) }
            channel.writeAndFlush(batch[batch.count - 1], promise: written)
        }
        if let due { arm(at: due) }
        if finished {
            let channel = self.channel
            let deadline = channel.eventLoop.scheduleTask(in: Self.closeTimeout) { channel.close(promise: nil) }
            channel.closeFuture.whenComplete { _ in deadline.cancel() }
            channel.close(promise: nil)
        }
    }

    /// On the event loop: the timer fires at `deadline` unless it is armed for earlier already.
    private func arm(at deadline: ContinuousClock.Instant) {
        let channel = self.channel
        let onDue = self.onDue
        state.withLockedValue { state in
            guard !state.closed else { return }
            if let timer = state.timer {
                guard deadline < timer.at else { return }
                timer.task.cancel()
            }
            let delay = deadline - .now
            let nanoseconds = max(0, delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000)
            let task = channel.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {
                self.state.withLockedValue { $0.timer = nil }
                onDue.withLockedValue { $0 }?()
            }
            state.timer = (deadline, task)
        }
    }
}
