/// Reads the canonical binary encoding (spec/encoding.md) from a byte array, with strict bounds.
///
/// Every read names its field; every failure is a `WireError` with that field and the byte offset where the
/// offending item starts. The reader never reads past its input and never allocates more than the input holds.
public struct WireReader {
    private let bytes: [UInt8]
    private let end: Int
    /// The offset of the next byte to read.
    public private(set) var offset: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.end = bytes.count
        self.offset = 0
    }

    /// A reader over `bytes[range]` that reports offsets relative to the whole array.
    private init(bytes: [UInt8], range: Range<Int>) {
        self.bytes = bytes
        self.end = range.upperBound
        self.offset = range.lowerBound
    }

    /// Bytes left to read.
    public var remaining: Int { end - offset }

    public mutating func readUInt8(_ field: String) throws(WireError) -> UInt8 {
        try require(1, field)
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func readUInt16(_ field: String) throws(WireError) -> UInt16 {
        UInt16(try readInteger(byteCount: 2, field))
    }

    public mutating func readUInt32(_ field: String) throws(WireError) -> UInt32 {
        UInt32(try readInteger(byteCount: 4, field))
    }

    public mutating func readUInt64(_ field: String) throws(WireError) -> UInt64 {
        try readInteger(byteCount: 8, field)
    }

    /// Exactly `count` bytes.
    public mutating func readBytes(count: Int, _ field: String) throws(WireError) -> [UInt8] {
        try require(count, field)
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    /// Exactly `count` secret bytes, copied straight into wiped-on-release storage.
    public mutating func readSecret(count: Int, _ field: String) throws(WireError) -> SecretBytes {
        try require(count, field)
        defer { offset += count }
        return SecretBytes(bytes[offset..<(offset + count)])
    }

    /// A length-prefixed byte string whose length lies in `bounds`; the prefix width follows from the upper
    /// bound (spec/encoding.md §Vectors).
    public mutating func readOpaque(_ field: String, bounds: ClosedRange<Int>) throws(WireError) -> [UInt8] {
        let start = offset
        let length = try readLength(field, bounds: bounds)
        guard remaining >= length else {
            throw WireError(.truncated, field: field, offset: start, detail: "length \(length) but \(remaining) bytes left")
        }
        return try readBytes(count: length, field)
    }

    /// A length-prefixed UTF-8 text field (spec/encoding.md §Text).
    public mutating func readText(_ field: String, bounds: ClosedRange<Int>) throws(WireError) -> String {
        let start = offset
        let raw = try readOpaque(field, bounds: bounds)
        return try Text.validate(raw, field: field, offset: start)
    }

    /// A one-byte enumeration.
    public mutating func readEnum<E: RawRepresentable>(_ type: E.Type, _ field: String) throws(WireError) -> E
    where E.RawValue == UInt8 {
        let start = offset
        let raw = try readUInt8(field)
        guard let value = E(rawValue: raw) else {
            throw WireError(.unknownEnumValue, field: field, offset: start, detail: "unknown value \(raw)")
        }
        return value
    }

    /// A presence flag (0 or 1) followed, when 1, by the value.
    public mutating func readOptional<T>(
        _ field: String,
        _ body: (inout WireReader) throws(WireError) -> T
    ) throws(WireError) -> T? {
        let start = offset
        switch try readUInt8(field) {
        case 0: return nil
        case 1: return try body(&self)
        case let flag: throw WireError(.unknownEnumValue, field: field, offset: start, detail: "presence flag \(flag)")
        }
    }

    /// A count-prefixed list whose count lies in `bounds`; `element` reads item `index`.
    public mutating func readList<T>(
        _ field: String,
        count bounds: ClosedRange<Int>,
        _ element: (inout WireReader, Int) throws(WireError) -> T
    ) throws(WireError) -> [T] {
        let count = try readLength(field, bounds: bounds)
        var items: [T] = []
        items.reserveCapacity(min(count, remaining))
        for index in 0..<count {
            items.append(try element(&self, index))
        }
        return items
    }

    /// A length-prefixed nested structure that must fill its length exactly.
    public mutating func readNested<T>(
        _ field: String,
        bounds: ClosedRange<Int>,
        _ body: (inout WireReader) throws(WireError) -> T
    ) throws(WireError) -> T {
        let start = offset
        let length = try readLength(field, bounds: bounds)
        guard remaining >= length else {
            throw WireError(.truncated, field: field, offset: start, detail: "length \(length) but \(remaining) bytes left")
        }
        var inner = WireReader(bytes: bytes, range: offset..<(offset + length))
        let value = try body(&inner)
        try inner.finish(field)
        offset += length
        return value
    }

    /// A version byte that must be one of `supported`.
    public mutating func readVersion(_ field: String, supported: Set<UInt8>) throws(WireError) -> UInt8 {
        let start = offset
        let version = try readUInt8(field)
        guard supported.contains(version) else {
            throw WireError(.unsupportedVersion, field: field, offset: start, detail: "unsupported version \(version)")
        }
        return version
    }

    /// Throws `trailingBytes` unless every byte was consumed.
    public func finish(_ field: String) throws(WireError) {
        guard remaining == 0 else {
            throw WireError(.trailingBytes, field: field, offset: offset, detail: "\(remaining) trailing bytes")
        }
    }

    // MARK: - Helpers

    private func require(_ count: Int, _ field: String) throws(WireError) {
        guard count <= remaining else {
            throw WireError(.truncated, field: field, offset: offset, detail: "needs \(count) bytes, \(remaining) left")
        }
    }

    private mutating func readInteger(byteCount: Int, _ field: String) throws(WireError) -> UInt64 {
        try require(byteCount, field)
        var value: UInt64 = 0
        for i in 0..<byteCount { value = value << 8 | UInt64(bytes[offset + i]) }
        offset += byteCount
        return value
    }

    private mutating func readLength(_ field: String, bounds: ClosedRange<Int>) throws(WireError) -> Int {
        let start = offset
        let length = Int(try readInteger(byteCount: WireWriter.prefixWidth(for: bounds), field))
        guard bounds.contains(length) else {
            let limit = length > bounds.upperBound ? "exceeds \(bounds.upperBound)" : "is below \(bounds.lowerBound)"
            throw WireError(.lengthOutOfBounds, field: field, offset: start, detail: "length \(length) \(limit)")
        }
        return length
    }
}
