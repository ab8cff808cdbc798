import CurbsideWire
import NIOCore

/// Splits the decrypted byte stream into relay frames (spec/relay.md §Framing): the channel handler's side of
/// `FrameParser`, which does all the parsing, so production runs the parser the vectors and fuzzing exercise.
///
/// Every byte that arrives moves into the parser at once, and every frame it completes is fired on; nothing stays
/// in the handler's own buffer. A length prefix above the maximum or below 6 throws the parser's `RelayError` as
/// soon as its four bytes are in, before any of the body is buffered. With `limits`, the maximum is the one they
/// hold at the time, and a frame longer than `limits.chargedAbove` must first get its length from `limits.budget`
/// (`relay_busy` otherwise), which it holds until the frame has arrived whole or the decoder is removed. A stream
/// that ends inside a frame throws `malformed_frame`.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame
    private var parser: FrameParser
    private let limits: FrameLimits?
    /// Budget held for the frame being received, and for whom.
    private var charged = 0
    private var chargedOwner = ""

    /// The largest length prefix the decoder accepts now.
    public var maximumLength: Int { limits?.maximumLength ?? parser.maximumLength }

    public init(maximumLength: Int = Frame.protocolMaximumLength) {
        self.parser = FrameParser(maximumLength: maximumLength)
        self.limits = nil
    }

    public init(limits: FrameLimits) {
        self.parser = FrameParser(maximumLength: limits.maximumLength)
        self.limits = limits
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        try take(&buffer, context: context)
        return .needMoreData
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        try take(&buffer, context: context)
        try parser.finish()
        return .needMoreData
    }

    public mutating func decoderRemoved(context: ChannelHandlerContext) {
        releaseCharge()
    }

    /// Moves `buffer`'s bytes into the parser, fires every frame they complete, then charges the budget for the
    /// frame still arriving if it is a large one.
    private mutating func take(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) throws {
        buffer.withUnsafeReadableBytes { parser.append($0) }
        buffer.moveReaderIndex(to: buffer.writerIndex)
        while true {
            if let limits { parser.maximumLength = limits.maximumLength }
            guard let frame = try parser.next() else { break }
            releaseCharge()
            context.fireChannelRead(wrapInboundOut(frame))
        }
        if charged == 0, let limits, let length = parser.announcedLength, length > limits.chargedAbove {
            guard limits.budget.reserve(length, for: limits.owner) else {
                throw RelayError(.relayBusy, "no room for a frame of \(length) bytes now; try again later")
            }
            charged = length
            chargedOwner = limits.owner
        }
    }

    private mutating func releaseCharge() {
        guard charged > 0 else { return }
        limits?.budget.release(charged, for: chargedOwner)
        charged = 0
    }
}
