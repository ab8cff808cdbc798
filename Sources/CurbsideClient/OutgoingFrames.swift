import CurbsideWire
import NIOConcurrencyHelpers
import NIOCore

/// The frames a connection's requests put out, in the order they were made, written by one task in batches: what
/// accumulated while the previous batch was being written goes out with one flush. A client that keeps many sends
/// in flight (an outbox backlog) so costs one socket write per batch, not one per request.
final class OutgoingFrames: Sendable {
    private struct State {
        var frames: [Frame] = []
        var finished = false
    }

    private let state = NIOLockedValueBox(State())
    private let signals: AsyncStream<Void>
    private let signal: AsyncStream<Void>.Continuation

    init() {
        (signals, signal) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues `frame` behind the ones before it; after `finish()` it is dropped.
    func append(_ frame: Frame) {
        let appended = state.withLockedValue { state in
            guard !state.finished else { return false }
            state.frames.append(frame)
            return true
        }
        if appended { signal.yield() }
    }

    /// No more frames: `write(to:)` writes what is queued and returns.
    func finish() {
        state.withLockedValue { $0.finished = true }
        signal.finish()
    }

    /// Writes the queued frames as they come, each batch with one flush, until `finish()` (and what was queued
    /// before it is written) or a write fails.
    func write(to outbound: NIOAsyncChannelOutboundWriter<Frame>) async throws {
        for await _ in signals {
            try await writeQueued(to: outbound)
        }
        try await writeQueued(to: outbound)
    }

    private func writeQueued(to outbound: NIOAsyncChannelOutboundWriter<Frame>) async throws {
        let batch = state.withLockedValue { state in
            let batch = state.frames
            state.frames.removeAll(keepingCapacity: true)
            return batch
        }
        if !batch.isEmpty { try await outbound.write(contentsOf: batch) }
    }
}
