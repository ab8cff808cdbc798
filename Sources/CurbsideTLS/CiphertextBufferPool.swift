import NIOConcurrencyHelpers
import NIOCore

/// The 64 KiB buffers that large writes are encrypted into, shared by the connections of one `TLSContext` and reused
/// once the channel has written them out.
///
/// A buffer is free again when the pool holds the only reference to its storage: the channel lets go of a buffer once
/// the socket took its bytes. Allocating one per write instead made glibc hand 64 KiB blocks back to the kernel and
/// map them again, a page fault for every 4 KiB written. Writes too small to need a 64 KiB buffer do not use the
/// pool, so an idle connection holds none of it. At most `maximumCount` buffers are kept; past that, a write
/// allocates its own as before.
final class CiphertextBufferPool: Sendable {
    /// The capacity of every pooled buffer: three records of ciphertext fit (`TLSHandler`'s largest piece).
    static let bufferCapacity = 65_536
    /// How many buffers the pool keeps at most.
    let maximumCount: Int
    // A lock, not an actor: it is taken on event loops, inside OpenSSL's write path, which must not suspend. It
    // guards a scan of a few array entries.
    private let buffers = NIOLockedValueBox<[ByteBuffer]>([])
    private let allocator = ByteBufferAllocator()

    init(maximumCount: Int = 8) {
        self.maximumCount = maximumCount
    }

    /// An empty buffer with room for `count` bytes that nobody else holds, when `count` is one the pool serves (more
    /// than half of `bufferCapacity`, at most all of it); else nil. Hand it back with `keep(_:)` once written to.
    func take(minimumCapacity count: Int) -> ByteBuffer? {
        guard count > Self.bufferCapacity / 2, count <= Self.bufferCapacity else { return nil }
        return buffers.withLockedValue { buffers in
            for index in buffers.indices {
                let reused: Bool = buffers[index].modifyIfUniquelyOwned { $0.clear() } != nil
                if reused { return buffers.remove(at: index) }
            }
            return buffers.count < maximumCount ? allocator.buffer(capacity: Self.bufferCapacity) : nil
        }
    }

    /// Keeps a reference to `buffer`, which a write was encrypted into and the channel is about to send, so that
    /// `take` can reuse its storage once the channel has let go of it.
    func keep(_ buffer: ByteBuffer) {
        guard buffer.capacity == Self.bufferCapacity else { return }
        buffers.withLockedValue { buffers in
            if buffers.count < maximumCount { buffers.append(buffer) }
        }
    }

    /// How many buffers the pool holds (free or still being written).
    var count: Int { buffers.withLockedValue { $0.count } }
}
