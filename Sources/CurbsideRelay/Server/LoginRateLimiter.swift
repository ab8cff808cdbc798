import NIOCore

/// Counts login attempts per client address in a sliding window (spec/relay.md §Login).
///
/// An attempt counts from the moment it is admitted until it succeeds, so concurrent attempts from one address
/// cannot all pass the check before any of them fails. Addresses not seen for a window are forgotten, so the table
/// stays as small as the recent traffic.
actor LoginRateLimiter {
    private let limit: Int
    private let window: TimeAmount
    private var attempts: [String: [NIODeadline]] = [:]
    private var lastSweep = NIODeadline.now()

    /// An admitted attempt; hand it back with `succeeded` when the login works.
    struct Attempt: Sendable {
        fileprivate let address: String
        fileprivate let at: NIODeadline
    }

    init(limit: Int, window: TimeAmount) {
        self.limit = limit
        self.window = window
    }

    /// Admits a login attempt from `address`, counting it as failed until `succeeded`; nil when the address has
    /// failed `limit` times in the window (attempts under way included).
    func admit(_ address: String, now: NIODeadline = .now()) -> Attempt? {
        sweepIfDue(now: now)
        prune(address, now: now)
        guard (attempts[address]?.count ?? 0) < limit else { return nil }
        attempts[address, default: []].append(now)
        return Attempt(address: address, at: now)
    }

    /// The attempt logged in: it no longer counts.
    func succeeded(_ attempt: Attempt) {
        guard var times = attempts[attempt.address], let index = times.firstIndex(of: attempt.at) else { return }
        times.remove(at: index)
        attempts[attempt.address] = times.isEmpty ? nil : times
    }

    /// Addresses with attempts in the window (for tests).
    var trackedAddresses: Int { attempts.count }

    private func prune(_ address: String, now: NIODeadline) {
        guard var times = attempts[address] else { return }
        times.removeAll { $0 + window <= now }
        attempts[address] = times.isEmpty ? nil : times
    }

    private func sweepIfDue(now: NIODeadline) {
        guard lastSweep + window <= now else { return }
        lastSweep = now
        for address in Array(attempts.keys) { prune(address, now: now) }
    }
}
