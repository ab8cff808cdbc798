import CurbsideTestSupport
import CurbsideTransport
import CurbsideWire
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

/// The production frame decoder on `EmbeddedChannel`: NIO's verifier drip-feeds it, the spec's frame vectors run
/// through it as they run through `FrameParser`, and each way a stream can be wrong gives its own error.
@Suite("frame decoder")
struct FrameDecoderTests {
    static let frames = [
        Frame(type: 0x0002, requestID: 0, body: []),
        Frame(type: 0x0016, requestID: 1, body: [0x42]),
        Frame(type: 0x0018, requestID: 0xFFFF_FFFF, body: Array(0..<200).map { UInt8($0) }),
        Frame(type: 0xFFFF, requestID: 7, body: [UInt8](repeating: 0xA5, count: 2500)),
    ]

    /// What a channel with `decoder` fired for `chunks`, written one after the other, then closed; and the first
    /// error it caught, if any (writing stops there).
    static func run(_ chunks: [[UInt8]], _ decoder: FrameDecoder = FrameDecoder()) throws -> ([Frame], RelayError?) {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(decoder))
        var frames: [Frame] = []
        var failure: RelayError?
        func drain() throws {
            while let frame = try channel.readInbound(as: Frame.self) { frames.append(frame) }
        }
        do {
            for chunk in chunks {
                try channel.writeInbound(ByteBuffer(bytes: chunk))
                try drain()
            }
            _ = try channel.finish()
        } catch let error as RelayError {
            failure = error
            _ = try? channel.finish()
        }
        try drain()
        return (frames, failure)
    }

    @Test func nioVerifierDripFeedsAndBatchesFrames() throws {
        let pairs = Self.frames.map { (ByteBuffer(bytes: $0.encoded), [$0]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrameDecoder() }
    }

    /// With limits, frames above `chargedAbove` take their length from the budget while they arrive and give it
    /// back when whole: the verifier's byte-at-a-time delivery leaves nothing held.
    @Test func nioVerifierWithLimitsLeavesTheBudgetEmpty() throws {
        let budget = CountingBudget()
        let limits = FrameLimits(maximumLength: 4096, chargedAbove: 100, budget: budget)
        let pairs = Self.frames.map { (ByteBuffer(bytes: $0.encoded), [$0]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrameDecoder(limits: limits) }
        #expect(budget.reservations > 0, "the large frames were charged while they arrived")
        #expect(budget.held == 0)
    }

    @Test func aStreamSplitAtEveryByteGivesTheSameFrames() throws {
        let stream = Self.frames.flatMap(\.encoded)
        for cut in 0...stream.count {
            let (frames, error) = try Self.run([Array(stream[..<cut]), Array(stream[cut...])])
            #expect(error == nil, "cut at \(cut)")
            #expect(frames == Self.frames, "cut at \(cut)")
        }
    }

    @Test func aLengthAboveTheMaximumIsRefusedFromItsPrefix() throws {
        // 1025 announced, no body sent: refused with four bytes in.
        let (frames, error) = try Self.run([[0, 0, 0x04, 0x01]], FrameDecoder(maximumLength: 1024))
        #expect(frames.isEmpty)
        #expect(error?.code == .frameTooLarge)
        #expect(error?.detail == "frame length 1025 exceeds 1024")
    }

    @Test func theFailureIsStickyForTheRestOfTheStream() throws {
        let valid = Frame(type: 4, requestID: 1, body: []).encoded
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maximumLength: 1024)))
        let first = #expect(throws: RelayError.self) { try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0x04, 0x01] + valid)) }
        #expect(first?.code == .frameTooLarge)
        #expect(try channel.readInbound(as: Frame.self) == nil, "nothing after the refused prefix is read as a frame")
        _ = try? channel.finish()
    }

    @Test(arguments: [
        ([0, 0, 0, 0] as [UInt8], "frame length 0 is below 6"),
        ([0, 0, 0, 5, 0, 1, 0, 0, 0], "frame length 5 is below 6"),
    ])
    func aLengthBelowTheHeaderIsMalformed(_ stream: [UInt8], _ detail: String) throws {
        let (frames, error) = try Self.run([stream])
        #expect(frames.isEmpty)
        #expect(error?.code == .malformedFrame)
        #expect(error?.detail == detail)
    }

    /// Garbage where a frame should start reads as a length prefix: too large here, before any more arrives.
    @Test func garbageInPlaceOfAHeaderIsTooLarge() throws {
        let (frames, error) = try Self.run([Frame(type: 1, requestID: 1, body: [9]).encoded, Array("GET / HTTP/1.1\r\n".utf8)])
        #expect(frames == [Frame(type: 1, requestID: 1, body: [9])])
        #expect(error?.code == .frameTooLarge)
        #expect(error?.detail == "frame length 1195725856 exceeds 4194304")  // "GET " as a big-endian length
    }

    @Test(arguments: [
        ([0, 0] as [UInt8], 2),  // inside the length prefix
        ([0, 0, 0, 10, 0, 1, 0], 7),  // inside the header
        ([0, 0, 0, 10, 0, 1, 0, 0, 0, 1, 0xAA], 11),  // inside the body
    ])
    func aStreamEndingInsideAFrameIsMalformed(_ stream: [UInt8], _ buffered: Int) throws {
        let (frames, error) = try Self.run([stream])
        #expect(frames.isEmpty)
        #expect(error?.code == .malformedFrame)
        #expect(error?.detail == "the stream ended inside a frame (\(buffered) bytes)")
    }

    /// The relay raises the maximum once a login succeeds: later prefixes on the same connection are checked
    /// against the new value.
    @Test func aRaisedMaximumAppliesToTheNextFrame() throws {
        let limits = FrameLimits(maximumLength: 100, chargedAbove: 1 << 20, budget: CountingBudget())
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(limits: limits)))
        let small = Frame(type: 0x10, requestID: 1, body: [UInt8](repeating: 1, count: 94))
        let large = Frame(type: 0x16, requestID: 2, body: [UInt8](repeating: 2, count: 95))
        try channel.writeInbound(ByteBuffer(bytes: small.encoded))
        #expect(try channel.readInbound(as: Frame.self) == small)
        limits.maximumLength = 4096
        try channel.writeInbound(ByteBuffer(bytes: large.encoded))
        #expect(try channel.readInbound(as: Frame.self) == large)
        #expect(try channel.finish().isClean)
    }

    /// Every frame-stream vector of spec/vectors/relay.json, fed to the decoder one byte at a time, gives what
    /// `FrameParser` gives: the same frames and, where the stream breaks framing, the same error.
    @Test func relayVectorsDecodeAsTheParserParsesThem() throws {
        let vectors = try VectorFile<FrameStreamVector>.load("relay.json").cases.filter { $0.kind == "frames" }
        #expect(vectors.count >= 30, "the frame vectors are there")
        for vector in vectors {
            let stream = try #require(vector.stream).bytes
            let maximum = try #require(vector.maximum_length)
            let (frames, error) = try Self.run(stream.map { [$0] }, FrameDecoder(maximumLength: maximum))
            var parser = FrameParser(maximumLength: maximum)
            parser.append(stream)
            var parsed: [Frame] = []
            var parserError: RelayError?
            do {
                while let frame = try parser.next() { parsed.append(frame) }
                try parser.finish()
            } catch {
                parserError = error
            }
            #expect(frames == parsed, "\(vector.name)")
            #expect(error == parserError, "\(vector.name)")
            if let expected = vector.frames, vector.expect == .valid {
                #expect(frames == expected.map(\.frame), "\(vector.name)")
            }
        }
    }
}

/// The fields of a relay vector the frame decoder needs.
struct FrameStreamVector: Decodable, Sendable {
    struct FrameJSON: Decodable, Sendable {
        let type: UInt16, request_id: UInt32, body: Hex
        var frame: Frame { Frame(type: type, requestID: request_id, body: body.bytes) }
    }
    let name: String
    let kind: String
    let maximum_length: Int?
    let stream: Hex?
    let frames: [FrameJSON]?
    let expect: VectorExpectation
}

/// A budget with room for everything, counting what is taken and held. Used from one test's thread only.
final class CountingBudget: FrameBudget, @unchecked Sendable {
    private(set) var held = 0
    private(set) var reservations = 0

    func reserve(_ bytes: Int, for owner: String) -> Bool {
        held += bytes
        reservations += 1
        return true
    }

    func release(_ bytes: Int, for owner: String) {
        held -= bytes
    }
}
