/// A random 16-byte message id; receivers drop a message whose id they have seen (spec/envelope.md §Message).
public struct MessageID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public static let byteCount = 16
    public let rawValue: [UInt8]

    /// A fresh random id.
    public static func random() -> MessageID {
        MessageID(unchecked: secureRandomBytes(count: byteCount))
    }

    /// - Throws: `WireError.lengthOutOfBounds` unless 16 bytes.
    public init(rawValue: [UInt8]) throws(WireError) {
        guard rawValue.count == Self.byteCount else {
            throw WireError(.lengthOutOfBounds, field: "message_id", offset: nil, detail: "\(rawValue.count) bytes, not 16")
        }
        self.rawValue = rawValue
    }

    private init(unchecked rawValue: [UInt8]) {
        self.rawValue = rawValue
    }

    init(from reader: inout WireReader, field: String) throws(WireError) {
        rawValue = try reader.readBytes(count: Self.byteCount, field)
    }

    func encode(to writer: inout WireWriter) {
        writer.writeBytes(rawValue)
    }

    public static func < (lhs: MessageID, rhs: MessageID) -> Bool {
        lhs.rawValue.lexicographicallyPrecedes(rhs.rawValue)
    }

    public var description: String { rawValue.hexString }
}

/// A thread: the consult's own message id, shared by its replies and receipts.
public typealias ThreadID = MessageID
