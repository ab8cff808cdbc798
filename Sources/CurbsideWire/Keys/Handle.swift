/// A provider's name on a relay, such as `osei.derm` (spec/encoding.md §Handles).
///
/// 1 to 64 bytes of lowercase ASCII letters, digits, `.`, `-` and `_`; it starts and ends with a letter or digit and
/// never has two separators in a row. Being this strict leaves one spelling per name, so a handle cannot
/// be imitated with look-alike characters or case.
public struct Handle: Sendable, Hashable, Comparable, CustomStringConvertible, WireCodable {
    public static let bounds = 1...64
    public static let wireName = "handle"

    public let rawValue: String

    /// Validates a handle.
    ///
    /// - Throws: `WireError.invalidHandle` naming the rule that was broken.
    public init(_ rawValue: String) throws(WireError) {
        try self.init(bytes: Array(rawValue.utf8), field: Self.wireName, offset: nil)
    }

    private init(bytes: [UInt8], field: String, offset: Int?) throws(WireError) {
        guard Self.bounds.contains(bytes.count) else {
            throw WireError(.lengthOutOfBounds, field: field, offset: offset, detail: "handle must be 1 to 64 characters")
        }
        if let problem = Self.problem(with: bytes) {
            throw WireError(.invalidHandle, field: field, offset: offset, detail: problem)
        }
        rawValue = String(decoding: bytes, as: UTF8.self)
    }

    public init(from reader: inout WireReader, field: String) throws(WireError) {
        let start = reader.offset
        let bytes = try reader.readOpaque(field, bounds: Self.bounds)
        try self.init(bytes: bytes, field: field, offset: start)
    }

    public func encode(to writer: inout WireWriter) {
        writer.writeOpaque(Array(rawValue.utf8), bounds: Self.bounds)
    }

    public var description: String { rawValue }

    public static func < (lhs: Handle, rhs: Handle) -> Bool { lhs.rawValue < rhs.rawValue }

    private static func problem(with bytes: [UInt8]) -> String? {
        func isAlphanumeric(_ b: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
        }
        func isSeparator(_ b: UInt8) -> Bool {
            b == UInt8(ascii: ".") || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
        }
        for (index, byte) in bytes.enumerated() {
            guard isAlphanumeric(byte) || isSeparator(byte) else {
                return "handle may hold only a-z, 0-9, '.', '-' and '_' (byte \(index) is not one)"
            }
            if index > 0, isSeparator(byte), isSeparator(bytes[index - 1]) {
                return "handle has two separators in a row"
            }
        }
        guard isAlphanumeric(bytes.first!), isAlphanumeric(bytes.last!) else {
            return "handle must start and end with a letter or digit"
        }
        return nil
    }
}
