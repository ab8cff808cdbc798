import NIOCore

/// Counts failed logins per client address in a sliding window (spec/relay.md §Login).
actor LoginRateLimiter {
    private let limit: Int
    private let window: TimeAmount
    private var failures: [String: [NIODeadline]] = [:]

    init(limit: Int, window: TimeAmount) {
        self.limit = limit
        self.window = window
    }

    /// Whether `address` may try to log in now.
    func allows(_ address: String, now: NIODeadline = .now()) -> Bool {
        prune(address, now: now)
        return (failures[address]?.count ?? 0) < limit
    }

    func recordFailure(_ address: String, now: NIODeadline = .now()) {
        prune(address, now: now)
        failures[address, default: []].append(now)
    }

    private func prune(_ address: String, now: NIODeadline) {
        guard var times = failures[address] else { return }
        times.removeAll { $0 + window <= now }
        failures[address] = times.isEmpty ? nil : times
    }
}
