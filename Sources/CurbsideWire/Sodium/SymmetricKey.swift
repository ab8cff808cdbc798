/// A symmetric key: secret bytes of a known length whose equality is constant time.
public struct SymmetricKey: Sendable, Equatable, CustomStringConvertible {
    package let secret: SecretBytes

    /// A fresh random key of `byteCount` bytes.
    public init(byteCount: Int) {
        secret = .random(count: byteCount)
    }

    /// Wraps existing key bytes.
    public init(_ secret: SecretBytes) {
        self.secret = secret
    }

    /// Copies key bytes in; the caller should wipe its copy.
    public init(rawRepresentation: [UInt8]) {
        secret = SecretBytes(rawRepresentation)
    }

    public var byteCount: Int { secret.count }

    public var description: String { "SymmetricKey(\(byteCount) bytes)" }
}
