import CurbsideTransport
import CurbsideWire
import NIOCore
import NIOEmbedded
import Testing

@testable import CurbsideRelay

/// The frame decoder's limits: a maximum its owner raises at login, and a budget shared by connections for large
/// frames being received (issue 14 item 7).
@Suite("frame limits and budget")
struct FrameBudgetTests {
    /// The first bytes of a `send` frame announcing `length`.
    static func header(length: Int, requestID: UInt32 = 1) -> [UInt8] {
        var writer = WireWriter()
        writer.writeUInt32(UInt32(length))
        writer.writeUInt16(RelayMessage.FrameType.send.rawValue)
        writer.writeUInt32(requestID)
        return writer.bytes
    }

    func channel(_ limits: FrameLimits) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(limits: limits)))
        return channel
    }

    @Test func theMaximumIsTheOneTheLimitsHoldNow() throws {
        let limits = FrameLimits(maximumLength: 1024, chargedAbove: 100, budget: RelayFrameBudget(capacity: 1 << 20))
        let before = try channel(limits)
        let refused = #expect(throws: RelayError.self) { try before.writeInbound(ByteBuffer(bytes: Self.header(length: 1025))) }
        #expect(refused?.code == .frameTooLarge)
        limits.maximumLength = 4096
        let after = try channel(limits)
        let frame = Frame(type: 0x0016, requestID: 2, body: [UInt8](repeating: 1, count: 2000))
        try after.writeInbound(ByteBuffer(bytes: frame.encoded))
        #expect(try after.readInbound(as: Frame.self) == frame)
    }

    /// A large frame holds its length from the budget while it arrives; another finds no room and is relay_busy;
    /// the budget comes back when the frame is whole, or when its connection goes.
    @Test func largeFramesShareTheBudget() throws {
        let budget = RelayFrameBudget(capacity: 1000)
        let limits = FrameLimits(maximumLength: 4096, chargedAbove: 100, budget: budget)
        let first = try channel(limits), second = try channel(limits), third = try channel(limits)
        let frame = Frame(type: 0x0016, requestID: 3, body: [UInt8](repeating: 7, count: 594))  // length 600
        try first.writeInbound(ByteBuffer(bytes: frame.encoded.prefix(50)))
        #expect(budget.heldBytes == 600)
        let busy = #expect(throws: RelayError.self) { try second.writeInbound(ByteBuffer(bytes: Self.header(length: 500))) }
        #expect(busy?.code == .relayBusy)
        #expect(budget.heldBytes == 600, "a refused frame takes nothing")
        // Small frames are never charged: they pass while the budget is spent.
        let small = Frame(type: 0x0018, requestID: 4, body: [UInt8](repeating: 0, count: 10))
        try third.writeInbound(ByteBuffer(bytes: small.encoded))
        #expect(try third.readInbound(as: Frame.self) == small)
        try first.writeInbound(ByteBuffer(bytes: frame.encoded.dropFirst(50)))
        #expect(try first.readInbound(as: Frame.self) == frame)
        #expect(budget.heldBytes == 0)
        // A frame cut off by its connection's end gives its charge back.
        try third.writeInbound(ByteBuffer(bytes: Self.header(length: 900) + [1, 2, 3]))
        #expect(budget.heldBytes == 900)
        _ = try? third.finish()
        #expect(budget.heldBytes == 0)
    }

    /// One account announcing large frames on many connections (and sending them slowly) holds at most its share;
    /// another account's large frame still finds room (found in review: 32 connections of one account took all).
    @Test func oneAccountHoldsAtMostItsShare() throws {
        let budget = RelayFrameBudget(capacity: 10_000, ownerShare: 2_000)
        let mallory = FrameLimits(maximumLength: 4096, chargedAbove: 100, budget: budget, owner: "account mallory.gp")
        let amara = FrameLimits(maximumLength: 4096, chargedAbove: 100, budget: budget, owner: "account amara.gp")
        let held = try (0..<2).map { _ in try channel(mallory) }
        for connection in held { try connection.writeInbound(ByteBuffer(bytes: Self.header(length: 1000) + [1])) }
        #expect(budget.heldBytes(for: "account mallory.gp") == 2000)
        let third = try channel(mallory)
        let busy = #expect(throws: RelayError.self) { try third.writeInbound(ByteBuffer(bytes: Self.header(length: 1000))) }
        #expect(busy?.code == .relayBusy)
        let colleague = try channel(amara)
        let frame = Frame(type: 0x0016, requestID: 5, body: [UInt8](repeating: 3, count: 1994))  // length 2000
        try colleague.writeInbound(ByteBuffer(bytes: frame.encoded))
        #expect(try colleague.readInbound(as: Frame.self) == frame)
        for connection in held { _ = try? connection.finish() }
        #expect(budget.heldBytes == 0 && budget.heldBytes(for: "account mallory.gp") == 0)
    }
}
