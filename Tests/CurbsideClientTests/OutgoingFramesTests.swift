import CurbsideTestSupport
import CurbsideWire
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing

@testable import CurbsideClient

/// The client's queue of request frames: written in the order the requests were made, what accumulated going out
/// with one flush, nothing after `finish()`, which closes the channel; the timer runs at the earliest deadline asked.
@Suite("outgoing frames")
struct OutgoingFramesTests {
    @Test func queuedFramesGoOutInOrderInOneFlush() async throws {
        let (channel, _, counter) = try await FlushCounter.framedChannel()
        let frames = OutgoingFrames(channel: channel)
        // Queued while the event loop is busy: all of them wait for one pass.
        try await channel.eventLoop.submit {
            for n in 0..<50 { frames.append(Frame(type: 3, requestID: UInt32(n), body: [UInt8(n)])) }
            frames.finish()
            frames.append(Frame(type: 3, requestID: 999, body: []))  // after finish: dropped
        }.get()
        try await channel.closeFuture.get()
        var written: [UInt32] = []
        while let frame = try await channel.readOutbound(as: Frame.self) { written.append(frame.requestID) }
        #expect(written == (0..<50).map { UInt32($0) })
        #expect(try await counter.count(on: channel) == 1)
    }

    @Test func framesAppendedWhileWritingFollowInOrder() async throws {
        let (channel, _, _) = try await FlushCounter.framedChannel()
        let frames = OutgoingFrames(channel: channel)
        for n in 0..<300 {
            frames.append(Frame(type: 3, requestID: UInt32(n), body: []))
            if n % 7 == 0 { await Task.yield() }
        }
        frames.finish()
        try await channel.closeFuture.get()
        var written: [UInt32] = []
        while let frame = try await channel.readOutbound(as: Frame.self) { written.append(frame.requestID) }
        #expect(written == (0..<300).map { UInt32($0) })
    }

    @Test func theTimerRunsAtTheEarliestDeadline() async throws {
        let (channel, _, _) = try await FlushCounter.framedChannel()
        let frames = OutgoingFrames(channel: channel)
        let fired = NIOLockedValueBox(0)
        frames.whenDue { fired.withLockedValue { $0 += 1 } }
        let start = ContinuousClock.now
        frames.append(Frame(type: 3, requestID: 1, body: []), due: start + .seconds(60))
        frames.append(Frame(type: 3, requestID: 2, body: []), due: start + .seconds(2))
        try await channel.eventLoop.submit {}.get()
        await channel.testingEventLoop.advanceTime(by: .milliseconds(500))
        #expect(fired.withLockedValue { $0 } == 0)
        await channel.testingEventLoop.advanceTime(by: .seconds(2))
        #expect(fired.withLockedValue { $0 } == 1, "the later deadline's timer was replaced by the earlier one's")
        await channel.testingEventLoop.advanceTime(by: .seconds(60))
        #expect(fired.withLockedValue { $0 } == 1)
        frames.finish()
        try await channel.closeFuture.get()
    }
}
