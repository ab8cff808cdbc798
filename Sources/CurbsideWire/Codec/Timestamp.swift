#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A point in time on the wire: milliseconds since 1970-01-01T00:00:00Z, as a uint64 (spec/encoding.md §Times).
///
/// Every timestamp lies between 0 and ``maximum`` (9999-12-31T23:59:59.999Z): decoding rejects anything later with
/// `WireError.invalidValue`, so a value taken off the wire always fits an `Int64` and a date formatter.
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let millisecondsSince1970: UInt64

    /// The latest time a timestamp may name: 9999-12-31T23:59:59.999Z (spec/encoding.md §Times).
    public static let maximum = Timestamp(exactly: 253_402_300_799_999)

    /// A timestamp of `millisecondsSince1970`, clamped to ``maximum`` (decoding rejects a later value instead).
    public init(millisecondsSince1970: UInt64) {
        self.millisecondsSince1970 = min(millisecondsSince1970, Self.maximum.millisecondsSince1970)
    }

    private init(exactly milliseconds: UInt64) {
        self.millisecondsSince1970 = milliseconds
    }

    /// Reads a timestamp field, rejecting values after ``maximum``.
    public init(from reader: inout WireReader, field: String) throws(WireError) {
        let offset = reader.offset
        let value = try reader.readUInt64(field)
        guard value <= Self.maximum.millisecondsSince1970 else {
            throw WireError(.invalidValue, field: field, offset: offset, detail: "time \(value) is after 9999-12-31T23:59:59.999Z")
        }
        self.millisecondsSince1970 = value
    }

    /// The time as a signed count, for storage: never traps, since every timestamp is at most ``maximum``.
    public var signedMilliseconds: Int64 { Int64(millisecondsSince1970) }

    /// The wall clock now.
    public static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(millisecondsSince1970: UInt64(spec.tv_sec) * 1000 + UInt64(spec.tv_nsec) / 1_000_000)
    }

    /// This time plus `seconds`, saturating at ``maximum`` instead of overflowing.
    public func adding(seconds: UInt64) -> Timestamp {
        let (product, overflow1) = seconds.multipliedReportingOverflow(by: 1000)
        let (sum, overflow2) = millisecondsSince1970.addingReportingOverflow(product)
        return Timestamp(millisecondsSince1970: overflow1 || overflow2 ? .max : sum)
    }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.millisecondsSince1970 < rhs.millisecondsSince1970
    }

    public var description: String { "\(millisecondsSince1970)ms" }
}

extension Timestamp {
    /// A time read back from storage, where it was written as ``signedMilliseconds``; a negative value (a damaged
    /// or foreign row) reads as 0.
    public init(storedMilliseconds value: Int64) {
        self.init(millisecondsSince1970: UInt64(clamping: value))
    }
}
