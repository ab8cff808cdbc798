import CurbsideTestSupport
import CurbsideWire
import NIOCore
import NIOEmbedded
import Testing

@testable import CurbsideClient

/// The client's queue of request frames: written in the order the requests were made, what accumulated going out
/// with one flush, nothing after `finish()`.
@Suite("outgoing frames")
struct OutgoingFramesTests {
    @Test func queuedFramesGoOutInOrderInOneFlush() async throws {
        let (channel, wrapped, counter) = try await FlushCounter.framedChannel()
        let frames = OutgoingFrames()
        for n in 0..<50 { frames.append(Frame(type: 3, requestID: UInt32(n), body: [UInt8(n)])) }
        frames.finish()
        frames.append(Frame(type: 3, requestID: 999, body: []))  // after finish: dropped
        try await wrapped.executeThenClose { _, outbound in
            try await frames.write(to: outbound)
        }
        var written: [UInt32] = []
        while let frame = try await channel.readOutbound(as: Frame.self) { written.append(frame.requestID) }
        #expect(written == (0..<50).map { UInt32($0) })
        #expect(try await counter.count(on: channel) == 1)
    }

    @Test func framesAppendedWhileWritingFollowInOrder() async throws {
        let (channel, wrapped, _) = try await FlushCounter.framedChannel()
        let frames = OutgoingFrames()
        try await wrapped.executeThenClose { _, outbound in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await frames.write(to: outbound) }
                for n in 0..<300 {
                    frames.append(Frame(type: 3, requestID: UInt32(n), body: []))
                    if n % 7 == 0 { await Task.yield() }
                }
                frames.finish()
                try await group.waitForAll()
            }
        }
        var written: [UInt32] = []
        while let frame = try await channel.readOutbound(as: Frame.self) { written.append(frame.requestID) }
        #expect(written == (0..<300).map { UInt32($0) })
    }
}
