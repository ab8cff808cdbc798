import CurbsideWire

/// Where the relay reads the time it records and compares: when an envelope was stored and when it expires, when an
/// upload expires, an acknowledgement's and an expiry's notices, a registration. The system's clock in service; a
/// test moves its own instead of waiting for real time to pass.
public struct RelayClock: Sendable {
    public var now: @Sendable () -> Timestamp

    public init(now: @escaping @Sendable () -> Timestamp) {
        self.now = now
    }

    public static let system = RelayClock { .now() }
}
