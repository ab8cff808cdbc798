/// One frame of the relay protocol (spec/relay.md §Framing): a type, a request id and a body.
///
/// On the wire: uint32 length ‖ uint16 type ‖ uint32 request_id ‖ body, where length counts everything after
/// itself (6 + body length).
public struct Frame: Sendable, Hashable {
    /// Bytes of the length prefix.
    public static let lengthPrefixByteCount = 4
    /// type ‖ request_id.
    public static let headerByteCount = 6
    /// The largest length any implementation must accept: room for the largest envelope plus routing.
    public static let protocolMaximumLength = 1 << 22

    public let type: UInt16
    /// Chosen by the client for a request and echoed in its response; 0 for frames nobody asked for (pushes).
    public let requestID: UInt32
    public let body: [UInt8]

    public init(type: UInt16, requestID: UInt32, body: [UInt8]) {
        self.type = type
        self.requestID = requestID
        self.body = body
    }

    /// The frame's bytes, length prefix included.
    public var encoded: [UInt8] {
        var writer = WireWriter()
        writer.writeUInt32(UInt32(Self.headerByteCount + body.count))
        writer.writeUInt16(type)
        writer.writeUInt32(requestID)
        writer.writeBytes(body)
        return writer.bytes
    }
}

/// Splits a byte stream into frames, however the bytes arrive: one at a time or many frames at once.
///
/// A length prefix above `maximumLength` is refused as soon as its four bytes are in, before any of the body is
/// buffered, so an oversized frame costs the receiver nothing. After an error the parser stays failed.
///
/// The one frame parser: the relay's and the client's channel handler (`FrameDecoder` in CurbsideTransport) wraps
/// it, and the vectors, the mutation tests and `fuzz-frames` exercise it.
public struct FrameParser: Sendable {
    /// The largest length prefix accepted; at least `Frame.headerByteCount`. Its owner may change it between calls
    /// to `next()` (the relay raises it once a login succeeds); a prefix is checked against the value at that call.
    public var maximumLength: Int {
        didSet { precondition(maximumLength >= Frame.headerByteCount, "internal error: maximum frame length below 6") }
    }
    /// The most buffer capacity kept once every received byte has been returned as frames.
    static let idleCapacity = 1 << 16
    private var buffer: [UInt8] = []
    private var start = 0
    private var failure: RelayError?

    /// - Parameter maximumLength: the largest length prefix accepted; at least `Frame.headerByteCount`.
    public init(maximumLength: Int = Frame.protocolMaximumLength) {
        precondition(maximumLength >= Frame.headerByteCount, "internal error: maximum frame length below 6")
        self.maximumLength = maximumLength
    }

    /// Bytes received but not yet returned as frames.
    public var bufferedByteCount: Int { buffer.count - start }

    /// The length prefix of the frame being received, once its four bytes are in; nil between frames.
    ///
    /// After `next()` returned nil it is within the bounds `next()` checks, so a receiver can reserve room for the
    /// frame from its prefix, before the body arrives.
    public var announcedLength: Int? {
        guard bufferedByteCount >= Frame.lengthPrefixByteCount else { return nil }
        return bigEndianInteger(at: start, byteCount: 4)
    }

    /// Adds bytes from the stream.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    /// Adds bytes from the stream (the channel handler's path: one copy out of the network buffer).
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    /// Drops the bytes of frames already returned once they are at least half of the buffer, so appending stays
    /// linear however the stream is cut.
    private mutating func compact() {
        if start > 0, start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
    }

    /// The next complete frame, or nil until more bytes arrive.
    ///
    /// - Throws: `RelayError.frameTooLarge` for a length above the maximum, `.malformedFrame` for one below 6.
    public mutating func next() throws(RelayError) -> Frame? {
        if let failure { throw failure }
        guard let length = announcedLength else { return nil }
        guard length <= maximumLength else {
            failure = RelayError(.frameTooLarge, "frame length \(length) exceeds \(maximumLength)")
            throw failure!
        }
        guard length >= Frame.headerByteCount else {
            failure = RelayError(.malformedFrame, "frame length \(length) is below 6")
            throw failure!
        }
        guard bufferedByteCount >= Frame.lengthPrefixByteCount + length else { return nil }
        let header = start + Frame.lengthPrefixByteCount
        let type = UInt16(bigEndianInteger(at: header, byteCount: 2))
        let requestID = UInt32(bigEndianInteger(at: header + 2, byteCount: 4))
        let body = Array(buffer[(header + Frame.headerByteCount)..<(header + length)])
        start = header + length
        if start == buffer.count {
            // Between frames: a connection that received one large frame does not keep its room while idle.
            buffer.removeAll(keepingCapacity: buffer.capacity <= Self.idleCapacity)
            start = 0
        }
        return Frame(type: type, requestID: requestID, body: body)
    }

    /// Throws `malformedFrame` if the stream ended inside a frame (call when the connection closes).
    public func finish() throws(RelayError) {
        if let failure { throw failure }
        guard bufferedByteCount == 0 else {
            throw RelayError(.malformedFrame, "the stream ended inside a frame (\(bufferedByteCount) bytes)")
        }
    }

    private func bigEndianInteger(at offset: Int, byteCount: Int) -> Int {
        buffer[offset..<(offset + byteCount)].reduce(0) { $0 << 8 | Int($1) }
    }
}
