import CurbsideWire
import CurbsideTLS
import NIOCore

/// Room for the frames being received on many connections at once: the relay's budget for buffered frame bytes.
///
/// Called from decoders on event loops, which must not wait: implementations answer at once.
public protocol FrameBudget: AnyObject, Sendable {
    /// Takes `bytes` from the budget for `owner` (an account, or an address before login); false (nothing taken)
    /// if they are not there, in all or within the owner's share.
    func reserve(_ bytes: Int, for owner: String) -> Bool
    /// Gives back bytes taken by `reserve` for the same owner.
    func release(_ bytes: Int, for owner: String)
}

/// The limits one connection's `FrameDecoder` applies, which its owner may change while the connection runs (the
/// relay raises the maximum once a login succeeds). Bound to the connection's event loop, like the decoder.
public final class FrameLimits {
    /// The largest length prefix accepted now.
    public var maximumLength: Int
    /// A frame longer than this is charged to `budget` from its length prefix until it has arrived whole.
    public let chargedAbove: Int
    public let budget: any FrameBudget
    /// Whom charges are made for: the peer's address, then its account once it has logged in.
    public var owner: String

    public init(maximumLength: Int, chargedAbove: Int, budget: any FrameBudget, owner: String = "") {
        self.maximumLength = maximumLength
        self.chargedAbove = chargedAbove
        self.budget = budget
        self.owner = owner
    }
}

@available(*, unavailable)
extension FrameLimits: Sendable {}

/// Splits the decrypted byte stream into relay frames (spec/relay.md §Framing).
///
/// A length prefix above the maximum or below 6 throws a `RelayError` as soon as its four bytes are in, before any
/// of the body is buffered. With `limits`, the maximum is the one they hold at the time, and a frame longer than
/// `limits.chargedAbove` must first get its length from `limits.budget` (`relay_busy` otherwise), which it holds
/// until the frame has arrived whole or the decoder is removed.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame
    public let maximumLength: Int
    private let limits: FrameLimits?
    /// Budget held for the frame being received, and for whom.
    private var charged = 0
    private var chargedOwner = ""

    public init(maximumLength: Int = Frame.protocolMaximumLength) {
        self.maximumLength = maximumLength
        self.limits = nil
    }

    public init(limits: FrameLimits) {
        self.maximumLength = limits.maximumLength
        self.limits = limits
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self).map(Int.init) else {
            return .needMoreData
        }
        let maximum = limits?.maximumLength ?? maximumLength
        guard length <= maximum else {
            throw RelayError(.frameTooLarge, "frame length \(length) exceeds \(maximum)")
        }
        guard length >= Frame.headerByteCount else {
            throw RelayError(.malformedFrame, "frame length \(length) is below 6")
        }
        guard buffer.readableBytes >= Frame.lengthPrefixByteCount + length else {
            if charged == 0, let limits, length > limits.chargedAbove {
                guard limits.budget.reserve(length, for: limits.owner) else {
                    throw RelayError(.relayBusy, "no room for a frame of \(length) bytes now; try again later")
                }
                charged = length
                chargedOwner = limits.owner
            }
            return .needMoreData
        }
        buffer.moveReaderIndex(forwardBy: Frame.lengthPrefixByteCount)
        let type = buffer.readInteger(as: UInt16.self)!
        let requestID = buffer.readInteger(as: UInt32.self)!
        let body = buffer.readBytes(length: length - Frame.headerByteCount)!
        releaseCharge()
        context.fireChannelRead(wrapInboundOut(Frame(type: type, requestID: requestID, body: body)))
        return .continue
    }

    public mutating func decoderRemoved(context: ChannelHandlerContext) {
        releaseCharge()
    }

    private mutating func releaseCharge() {
        guard charged > 0 else { return }
        limits?.budget.release(charged, for: chargedOwner)
        charged = 0
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 {
            throw RelayError(.malformedFrame, "the stream ended inside a frame (\(buffer.readableBytes) bytes)")
        }
        return .needMoreData
    }
}

/// Writes relay frames with their length prefix.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    public init() {}

    public func encode(data frame: Frame, out: inout ByteBuffer) throws {
        out.writeInteger(UInt32(Frame.headerByteCount + frame.body.count))
        out.writeInteger(frame.type)
        out.writeInteger(frame.requestID)
        out.writeBytes(frame.body)
    }
}
