import CurbsideWire
import NIOConcurrencyHelpers
import NIOCore

/// Writes frames that several tasks produce at once — a connection's concurrent sends, answered as their commits
/// finish — so that frames ready together go out together: one flush, one socket write, where each `write` on its
/// own would cost a flush, a system call and a wake-up of the client for every answer.
///
/// A task that finds another task writing leaves its frame to it and returns; the writing task writes everything
/// that waits, in the order it was handed over, and goes on until nothing is left. So a frame has been written, or
/// the write failed, once every task that handed one over has returned. The task that writes waits for the channel
/// as `NIOAsyncChannelOutboundWriter.write` does (back-pressure); the others are bounded by the sends a connection
/// may keep in flight.
final class CoalescingFrameWriter: Sendable {
    private struct State {
        var waiting: [Frame] = []
        var writing = false
    }

    private let outbound: NIOAsyncChannelOutboundWriter<Frame>
    private let state = NIOLockedValueBox(State())

    init(_ outbound: NIOAsyncChannelOutboundWriter<Frame>) {
        self.outbound = outbound
    }

    /// Writes `frame`, with whatever else waits, or leaves it to the task that is writing.
    ///
    /// - Throws: the channel's error, to the task that was writing (frames waiting then are not written: the
    ///   connection has failed).
    func write(_ frame: Frame) async throws {
        let writes = state.withLockedValue { state in
            state.waiting.append(frame)
            guard !state.writing else { return false }
            state.writing = true
            return true
        }
        guard writes else { return }
        // The commit that settled this send usually settled others of the connection too, whose tasks are ready to
        // run: let them hand their frames over first.
        await Task.yield()
        while true {
            let batch = state.withLockedValue { state in
                let batch = state.waiting
                state.waiting.removeAll(keepingCapacity: true)
                if batch.isEmpty { state.writing = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            do {
                try await outbound.write(contentsOf: batch)
            } catch {
                state.withLockedValue { $0.writing = false }
                throw error
            }
        }
    }
}
