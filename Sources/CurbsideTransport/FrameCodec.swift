import CurbsideWire
import CurbsideTLS
import NIOCore

/// Splits the decrypted byte stream into relay frames (spec/relay.md §Framing).
///
/// A length prefix above `maximumLength` or below 6 throws a `RelayError` as soon as its four bytes are in, before
/// any of the body is buffered.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Frame
    public let maximumLength: Int

    public init(maximumLength: Int = Frame.protocolMaximumLength) {
        self.maximumLength = maximumLength
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self).map(Int.init) else {
            return .needMoreData
        }
        guard length <= maximumLength else {
            throw RelayError(.frameTooLarge, "frame length \(length) exceeds \(maximumLength)")
        }
        guard length >= Frame.headerByteCount else {
            throw RelayError(.malformedFrame, "frame length \(length) is below 6")
        }
        guard buffer.readableBytes >= Frame.lengthPrefixByteCount + length else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: Frame.lengthPrefixByteCount)
        let type = buffer.readInteger(as: UInt16.self)!
        let requestID = buffer.readInteger(as: UInt32.self)!
        let body = buffer.readBytes(length: length - Frame.headerByteCount)!
        context.fireChannelRead(wrapInboundOut(Frame(type: type, requestID: requestID, body: body)))
        return .continue
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
