internal import COpenSSL
import NIOCore

/// The one BIO both directions of a `TLSConnection` go through: OpenSSL reads ciphertext straight out of the
/// `ByteBuffer`s the channel delivered and writes records straight into a `ByteBuffer` the handler sends.
///
/// Two memory BIOs copied every byte once more in each direction (network buffer → BIO, BIO → outgoing buffer);
/// this type keeps the ByteBuffers themselves. An empty inbound side reports "retry read", never end of file.
/// Not thread-safe: it belongs to its connection's event loop.
final class ByteBufferBIO {
    /// Ciphertext received and not yet read by OpenSSL. The channel's own buffer when nothing was left over.
    private var inbound: ByteBuffer?
    /// Records OpenSSL wrote and nobody has taken yet.
    private var outbound: ByteBuffer?
    private let allocator: ByteBufferAllocator

    init(allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.allocator = allocator
    }

    /// A new `BIO *` over this object, unretained: the caller keeps `self` alive for as long as the BIO.
    func makeBIO() -> OpaquePointer? {
        guard let bio = BIO_new(byteBufferBIOMethod) else { return nil }
        BIO_set_data(bio, Unmanaged.passUnretained(self).toOpaque())
        BIO_set_init(bio, 1)
        return bio
    }

    /// Adds ciphertext from the network; keeps the buffer itself when nothing is left over from before.
    func receive(_ buffer: ByteBuffer) {
        if inbound == nil || inbound!.readableBytes == 0 {
            inbound = buffer
        } else {
            inbound!.writeImmutableBuffer(buffer)
        }
    }

    /// Makes room for about `count` bytes of records, so one write does not grow the buffer record by record.
    func reserveOutbound(_ count: Int) {
        if outbound == nil {
            outbound = allocator.buffer(capacity: count)
        } else {
            outbound!.reserveCapacity(minimumWritableBytes: count)
        }
    }

    /// The records written so far, or nil if none; the next write starts a new buffer.
    func takeOutbound() -> ByteBuffer? {
        guard let buffer = outbound, buffer.readableBytes > 0 else { return nil }
        outbound = nil
        return buffer
    }

    var inboundByteCount: Int { inbound?.readableBytes ?? 0 }
    var outboundByteCount: Int { outbound?.readableBytes ?? 0 }

    fileprivate func read(into out: UnsafeMutableRawPointer, count: Int) -> Int {
        guard var buffer = inbound, buffer.readableBytes > 0, count > 0 else { return 0 }
        inbound = nil  // so the copy below is the only reference and moving its reader index does not copy
        let taken = min(count, buffer.readableBytes)
        buffer.withUnsafeReadableBytes { bytes in
            out.copyMemory(from: bytes.baseAddress!, byteCount: taken)
        }
        buffer.moveReaderIndex(forwardBy: taken)
        if buffer.readableBytes > 0 { inbound = buffer }
        return taken
    }

    fileprivate func write(_ bytes: UnsafeRawBufferPointer) {
        if outbound == nil { outbound = allocator.buffer(capacity: max(bytes.count, 4096)) }
        outbound!.writeBytes(bytes)
    }

    fileprivate static func from(_ bio: OpaquePointer?) -> ByteBufferBIO {
        Unmanaged<ByteBufferBIO>.fromOpaque(BIO_get_data(bio)!).takeUnretainedValue()
    }
}

// The C side: each thunk only recovers the Swift object and forwards.

private let retryRead = Int32(BIO_FLAGS_READ | BIO_FLAGS_SHOULD_RETRY)
private let retryFlags = Int32(BIO_FLAGS_READ | BIO_FLAGS_WRITE | BIO_FLAGS_IO_SPECIAL | BIO_FLAGS_SHOULD_RETRY)

private func byteBufferBIORead(
    _ bio: OpaquePointer?,
    _ out: UnsafeMutablePointer<CChar>?,
    _ count: Int,
    _ readCount: UnsafeMutablePointer<Int>?
) -> Int32 {
    BIO_clear_flags(bio, retryFlags)
    let taken = ByteBufferBIO.from(bio).read(into: UnsafeMutableRawPointer(out!), count: count)
    readCount?.pointee = taken
    if taken == 0 {
        BIO_set_flags(bio, retryRead)  // no bytes yet: not end of file
        return 0
    }
    return 1
}

private func byteBufferBIOWrite(
    _ bio: OpaquePointer?,
    _ bytes: UnsafePointer<CChar>?,
    _ count: Int,
    _ writtenCount: UnsafeMutablePointer<Int>?
) -> Int32 {
    BIO_clear_flags(bio, retryFlags)
    ByteBufferBIO.from(bio).write(UnsafeRawBufferPointer(start: bytes, count: count))
    writtenCount?.pointee = count
    return 1
}

private func byteBufferBIOControl(_ bio: OpaquePointer?, _ command: Int32, _ argument: Int, _ pointer: UnsafeMutableRawPointer?) -> Int {
    switch command {
    case BIO_CTRL_FLUSH: return 1
    case BIO_CTRL_PENDING: return ByteBufferBIO.from(bio).inboundByteCount
    case BIO_CTRL_WPENDING: return ByteBufferBIO.from(bio).outboundByteCount
    case BIO_CTRL_GET_CLOSE: return Int(BIO_get_shutdown(bio))
    case BIO_CTRL_SET_CLOSE:
        BIO_set_shutdown(bio, Int32(argument))
        return 1
    default: return 0
    }
}

private func byteBufferBIOCreate(_ bio: OpaquePointer?) -> Int32 { 1 }
private func byteBufferBIODestroy(_ bio: OpaquePointer?) -> Int32 { 1 }

/// Built once per process; OpenSSL keeps pointers to it in every BIO.
nonisolated(unsafe) private let byteBufferBIOMethod: OpaquePointer = {
    _ = OpenSSLLibrary.ready
    guard let method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "curbside ByteBuffer") else {
        fatalError("internal error: BIO_meth_new failed")
    }
    BIO_meth_set_read_ex(method, byteBufferBIORead)
    BIO_meth_set_write_ex(method, byteBufferBIOWrite)
    BIO_meth_set_ctrl(method, byteBufferBIOControl)
    BIO_meth_set_create(method, byteBufferBIOCreate)
    BIO_meth_set_destroy(method, byteBufferBIODestroy)
    return method
}()
