internal import CSodium

/// Secret bytes: a private key, a shared secret, a derived key.
///
/// The storage is allocated once, never copied by the type itself, and wiped with `sodium_memzero` when the last
/// reference goes. Equality is constant time (`sodium_memcmp`). `description` is redacted, so a secret that reaches
/// a log or an error message prints as `SecretBytes(32 bytes)`.
public struct SecretBytes: Sendable {
    private let storage: Storage

    /// Copies `bytes` into wiped-on-release storage. The caller should wipe its own copy.
    public init(_ bytes: some Collection<UInt8>) {
        storage = Storage(count: bytes.count)
        storage.withMutableBytes { buffer in
            buffer.copyBytes(from: bytes)
        }
    }

    /// Allocates `count` bytes and lets `body` fill them in place, so the secret never exists outside this type.
    public init(count: Int, initializingWith body: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        storage = Storage(count: count)
        try storage.withMutableBytes(body)
    }

    /// `count` bytes from the operating system's CSPRNG.
    public static func random(count: Int) -> SecretBytes {
        _ = Sodium.ready
        return SecretBytes(count: count) { randombytes_buf($0.baseAddress!, $0.count) }
    }

    public var count: Int { storage.count }

    /// Lends the bytes to `body`; the pointer must not escape it.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withBytes(body)
    }

    /// Copies the secret out as an array, for encoding into a message that is itself encrypted.
    ///
    /// The array is ordinary memory that Swift may copy; prefer `withUnsafeBytes` where the bytes only pass through.
    package var copiedBytes: [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    fileprivate final class Storage: @unchecked Sendable {
        // Written only inside the initialisers, read-only afterwards, hence safe to share.
        let count: Int
        private let pointer: UnsafeMutableRawPointer

        init(count: Int) {
            precondition(count >= 0, "internal error: negative secret length")
            self.count = count
            // One spare byte keeps the allocation non-empty for a zero-length secret.
            pointer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 16)
            pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(count, 1))
        }

        deinit {
            sodium_memzero(pointer, max(count, 1))
            pointer.deallocate()
        }

        func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            try body(UnsafeRawBufferPointer(start: pointer, count: count))
        }

        func withMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
            try body(UnsafeMutableRawBufferPointer(start: pointer, count: count))
        }
    }
}

extension SecretBytes: Equatable {
    /// Constant-time comparison; lengths are not secret and are compared first.
    public static func == (lhs: SecretBytes, rhs: SecretBytes) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return lhs.withUnsafeBytes { l in
            rhs.withUnsafeBytes { r in constantTimeEquals(l, r) }
        }
    }
}

extension SecretBytes: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { "SecretBytes(\(count) bytes)" }
    public var debugDescription: String { description }
}

/// Compares two byte strings in time that depends only on their length (`sodium_memcmp`).
///
/// Returns false at once when the lengths differ: lengths of keys, MACs and signatures are public.
public func constantTimeEquals(_ lhs: UnsafeRawBufferPointer, _ rhs: UnsafeRawBufferPointer) -> Bool {
    _ = Sodium.ready
    guard lhs.count == rhs.count else { return false }
    guard lhs.count > 0 else { return true }
    return sodium_memcmp(lhs.baseAddress!, rhs.baseAddress!, lhs.count) == 0
}

/// Compares two byte arrays in constant time; see `constantTimeEquals(_:_:)` for buffers.
public func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    lhs.withUnsafeBytes { l in rhs.withUnsafeBytes { r in constantTimeEquals(l, r) } }
}

/// Wipes memory that held secret material.
package func secureZero(_ bytes: UnsafeMutableRawBufferPointer) {
    if let base = bytes.baseAddress { sodium_memzero(base, bytes.count) }
}

/// Wipes a buffer that held secret material.
package func secureZero(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { buffer in
        if let base = buffer.baseAddress { sodium_memzero(base, buffer.count) }
    }
}
