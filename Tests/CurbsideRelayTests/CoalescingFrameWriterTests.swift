import CurbsideTestSupport
import CurbsideWire
import NIOCore
import NIOEmbedded
import Testing

@testable import CurbsideRelay

/// The relay's writer for the answers of a connection's concurrent sends: every frame handed over goes out once,
/// and frames handed over together share flushes (socket writes) instead of one each.
@Suite("coalescing frame writer")
struct CoalescingFrameWriterTests {
    @Test func framesFromConcurrentTasksGoOutOnceWithFewerFlushes() async throws {
        let (channel, wrapped, counter) = try await FlushCounter.framedChannel()
        let count = 200
        try await wrapped.executeThenClose { _, outbound in
            let writer = CoalescingFrameWriter(outbound)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for n in 0..<count {
                    group.addTask { try await writer.write(Frame(type: 1, requestID: UInt32(n), body: [UInt8(truncatingIfNeeded: n)])) }
                }
                try await group.waitForAll()
            }
        }
        var written: [Frame] = []
        while let frame = try await channel.readOutbound(as: Frame.self) { written.append(frame) }
        #expect(written.map(\.requestID).sorted() == (0..<UInt32(count)).map { $0 }, "each frame exactly once")
        #expect(written.allSatisfy { $0.body == [UInt8(truncatingIfNeeded: $0.requestID)] })
        let flushes = try await counter.count(on: channel)
        #expect(flushes < count, "\(count) frames from concurrent tasks went out in \(flushes) flushes")
    }

    @Test func aFrameAloneIsWrittenBeforeItsWriterReturns() async throws {
        let (channel, wrapped, _) = try await FlushCounter.framedChannel()
        try await wrapped.executeThenClose { _, outbound in
            let writer = CoalescingFrameWriter(outbound)
            for n in 0..<3 {
                try await writer.write(Frame(type: 2, requestID: UInt32(n), body: []))
                // Nobody else writes: the frame is out when write returns, in order.
                let frame = try await channel.waitForOutboundWrite(as: Frame.self)
                #expect(frame.requestID == UInt32(n))
            }
        }
    }
}
