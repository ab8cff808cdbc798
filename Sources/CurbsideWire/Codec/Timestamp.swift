#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A point in time on the wire: milliseconds since 1970-01-01T00:00:00Z, as a uint64 (spec/encoding.md §Times).
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let millisecondsSince1970: UInt64

    public init(millisecondsSince1970: UInt64) {
        self.millisecondsSince1970 = millisecondsSince1970
    }

    /// The wall clock now.
    public static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(millisecondsSince1970: UInt64(spec.tv_sec) * 1000 + UInt64(spec.tv_nsec) / 1_000_000)
    }

    /// This time plus `seconds`, saturating instead of overflowing.
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
