import CurbsideWire
import NIOCore

/// Writes relay frames with their length prefix (spec/relay.md §Framing).
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
