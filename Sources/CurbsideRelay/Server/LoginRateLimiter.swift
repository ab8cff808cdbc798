import CurbsideWire
import NIOCore

/// Limits login attempts (spec/relay.md §Login): at most `limit` failures per client address and handle in a sliding
/// window, and at most `concurrent` attempts under way at once per address, so parallel guesses cannot all pass the
/// check before any of them fails. At most `limit + concurrent - 1` guesses at one handle per window get through
/// from one address.
///
/// Failures count per (address, handle), not per address: clinicians behind one address (a hospital's NAT) are not
/// locked out by someone else's failures there, only the handle that failed is. Entries not seen for a window are
/// forgotten, so the table stays as small as the recent traffic.
actor LoginRateLimiter {
    private struct Key: Hashable {
        let address: String
        let handle: Handle
    }

    private let limit: Int
    private let window: TimeAmount
    private let concurrent: Int
    private var failures: [Key: [NIODeadline]] = [:]
    private var underWay: [String: Int] = [:]
    private var lastSweep = NIODeadline.now()

    /// An admitted attempt; `counting` ends it.
    struct Attempt: Sendable {
        fileprivate let address: String
        fileprivate let handle: Handle
    }

    init(limit: Int, window: TimeAmount, concurrent: Int = 8) {
        self.limit = limit
        self.window = window
        self.concurrent = concurrent
    }

    /// Admits an attempt from `address` to log in (or register) as `handle`; nil when that pair failed `limit` times
    /// in the window or the address has `concurrent` attempts under way.
    func admit(_ address: String, handle: Handle, now: NIODeadline = .now()) -> Attempt? {
        sweepIfDue(now: now)
        let key = Key(address: address, handle: handle)
        prune(key, now: now)
        guard (failures[key]?.count ?? 0) < limit, underWay[address, default: 0] < concurrent else { return nil }
        underWay[address, default: 0] += 1
        return Attempt(address: address, handle: handle)
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
        if failed { failures[Key(address: attempt.address, handle: attempt.handle), default: []].append(now) }
    }

    /// Addresses with failures in the window or attempts under way (for tests).
    var trackedAddresses: Int { Set(failures.keys.map(\.address)).union(underWay.keys).count }

    private func prune(_ key: Key, now: NIODeadline) {
        guard var times = failures[key] else { return }
        times.removeAll { $0 + window <= now }
        failures[key] = times.isEmpty ? nil : times
    }

    private func sweepIfDue(now: NIODeadline) {
        guard lastSweep + window <= now else { return }
        lastSweep = now
        for key in Array(failures.keys) { prune(key, now: now) }
    }
}
