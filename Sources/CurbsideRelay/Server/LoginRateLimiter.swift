import NIOCore

/// Limits login attempts per client address (spec/relay.md §Login): at most `limit` failures in a sliding window,
/// and at most `concurrent` attempts under way at once, so parallel guesses cannot all pass the check before any of
/// them fails. At most `limit + concurrent - 1` guesses per window get through. Addresses not seen for a window are
/// forgotten, so the table stays as small as the recent traffic.
actor LoginRateLimiter {
    private let limit: Int
    private let window: TimeAmount
    private let concurrent: Int
    private var failures: [String: [NIODeadline]] = [:]
    private var underWay: [String: Int] = [:]
    private var lastSweep = NIODeadline.now()

    /// An admitted attempt; `counting` ends it.
    struct Attempt: Sendable {
        fileprivate let address: String
    }

    init(limit: Int, window: TimeAmount, concurrent: Int = 8) {
        self.limit = limit
        self.window = window
        self.concurrent = concurrent
    }

    /// Admits a login attempt from `address`; nil when the address failed `limit` times in the window or has
    /// `concurrent` attempts under way.
    func admit(_ address: String, now: NIODeadline = .now()) -> Attempt? {
        sweepIfDue(now: now)
        prune(address, now: now)
        guard (failures[address]?.count ?? 0) < limit, underWay[address, default: 0] < concurrent else { return nil }
        underWay[address, default: 0] += 1
        return Attempt(address: address)
    }

    /// Runs the attempt's checks: if they throw, it counts as a failure; either way it is no longer under way.
    func counting<T: Sendable>(_ attempt: Attempt, now: NIODeadline = .now(), _ checks: () async throws -> T) async throws -> T {
        do {
            let value = try await checks()
            end(attempt, failed: false, now: now)
            return value
        } catch {
            end(attempt, failed: true, now: now)
            throw error
        }
    }

    /// Ends an attempt without running checks through `counting` (tests).
    func end(_ attempt: Attempt, failed: Bool, now: NIODeadline = .now()) {
        let left = underWay[attempt.address, default: 1] - 1
        underWay[attempt.address] = left > 0 ? left : nil
        if failed { failures[attempt.address, default: []].append(now) }
    }

    /// Addresses with failures in the window or attempts under way (for tests).
    var trackedAddresses: Int { Set(failures.keys).union(underWay.keys).count }

    private func prune(_ address: String, now: NIODeadline) {
        guard var times = failures[address] else { return }
        times.removeAll { $0 + window <= now }
        failures[address] = times.isEmpty ? nil : times
    }

    private func sweepIfDue(now: NIODeadline) {
        guard lastSweep + window <= now else { return }
        lastSweep = now
        for address in Array(failures.keys) { prune(address, now: now) }
    }
}
