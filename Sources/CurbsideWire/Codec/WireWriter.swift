/// Writes the canonical binary encoding (spec/encoding.md).
///
/// Values are checked against their bounds when they are built, so a bound broken here is an internal error,
/// not bad input.
public struct WireWriter {
    /// Everything written so far.
    public private(set) var bytes: [UInt8] = []

    public init() {}

    /// The width of a length prefix for a field whose declared maximum is `bounds.upperBound`: 1 byte up to 255,
    /// 2 bytes up to 65 535, otherwise 4 bytes.
    public static func prefixWidth(for bounds: ClosedRange<Int>) -> Int {
        switch bounds.upperBound {
        case ...0xFF: 1
        case ...0xFFFF: 2
        default: 4
        }
    }

    public mutating func writeUInt8(_ value: UInt8) { bytes.append(value) }
    public mutating func writeUInt16(_ value: UInt16) { writeInteger(UInt64(value), byteCount: 2) }
    public mutating func writeUInt32(_ value: UInt32) { writeInteger(UInt64(value), byteCount: 4) }
    public mutating func writeUInt64(_ value: UInt64) { writeInteger(value, byteCount: 8) }

    /// Bytes with no prefix: a fixed-size field.
    public mutating func writeBytes(_ value: [UInt8]) { bytes += value }

    /// Secret bytes with no prefix, copied straight from their storage.
    public mutating func writeSecret(_ secret: SecretBytes) {
        secret.withUnsafeBytes { bytes.append(contentsOf: $0) }
    }

    /// Wipes everything written, for a writer that held plaintext or secrets.
    public mutating func wipe() {
        secureZero(&bytes)
        bytes = []
    }

    /// A length-prefixed byte string.
    public mutating func writeOpaque(_ value: [UInt8], bounds: ClosedRange<Int>) {
        writeLength(value.count, bounds: bounds)
        bytes += value
    }

    /// A length-prefixed UTF-8 text field.
    public mutating func writeText(_ value: String, bounds: ClosedRange<Int>) {
        writeOpaque(Array(value.utf8), bounds: bounds)
    }

    public mutating func writeEnum<E: RawRepresentable>(_ value: E) where E.RawValue == UInt8 {
        writeUInt8(value.rawValue)
    }

    /// A presence flag and, when present, the value.
    public mutating func writeOptional<T>(_ value: T?, _ body: (inout WireWriter, T) -> Void) {
        if let value {
            writeUInt8(1)
            body(&self, value)
        } else {
            writeUInt8(0)
        }
    }

    /// A count-prefixed list.
    public mutating func writeList<T>(_ items: [T], count bounds: ClosedRange<Int>, _ body: (inout WireWriter, T) -> Void) {
        writeLength(items.count, bounds: bounds)
        for item in items { body(&self, item) }
    }

    /// A length-prefixed nested structure.
    public mutating func writeNested(bounds: ClosedRange<Int>, _ body: (inout WireWriter) -> Void) {
        var inner = WireWriter()
        body(&inner)
        writeOpaque(inner.bytes, bounds: bounds)
    }

    private mutating func writeInteger(_ value: UInt64, byteCount: Int) {
        for i in stride(from: byteCount - 1, through: 0, by: -1) {
            bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))))
        }
    }

    private mutating func writeLength(_ length: Int, bounds: ClosedRange<Int>) {
        precondition(bounds.contains(length), "internal error: length \(length) outside \(bounds) when encoding")
        writeInteger(UInt64(length), byteCount: Self.prefixWidth(for: bounds))
    }
}

/// A value with one canonical encoding (spec/encoding.md).
public protocol WireEncodable {
    func encode(to writer: inout WireWriter)
}

/// A value that can be decoded from its canonical encoding.
public protocol WireDecodable {
    /// The field path used in errors for a top-level value, such as "consult".
    static var wireName: String { get }
    /// Reads one value; `field` is the path to report in errors.
    init(from reader: inout WireReader, field: String) throws(WireError)
}

public typealias WireCodable = WireEncodable & WireDecodable

extension WireEncodable {
    /// The canonical encoding.
    public var encoded: [UInt8] {
        var writer = WireWriter()
        encode(to: &writer)
        return writer.bytes
    }
}

extension WireDecodable {
    /// Decodes a complete value; bytes after it are an error (`trailingBytes`).
    public init(decoding bytes: [UInt8]) throws(WireError) {
        var reader = WireReader(bytes)
        self = try Self(from: &reader, field: Self.wireName)
        try reader.finish(Self.wireName)
    }
}
