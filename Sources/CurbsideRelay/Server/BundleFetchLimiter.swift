import CurbsideWire
import NIOCore

/// How many one-time prekeys one requester may take from one owner's bundles (spec/relay.md §Key directory): a
/// token bucket per (requester, owner) holding `burst` tokens, refilled by one every `refill`. A fetch that finds
/// the bucket empty is still answered, with a bundle without a one-time prekey, so a sender is never stopped, but
/// one account can no longer drain a colleague's one-time prekeys and push every later sender onto the signed
/// prekey. Pairs whose bucket is full again are forgotten, so the table stays as small as the recent traffic; and it
/// never holds more than `maximumPairs`: past that, fetches get no one-time prekey until pairs are forgotten (the
/// owners' keys are what the table protects, so it fails toward keeping them).
actor BundleFetchLimiter {
    private struct Pair: Hashable {
        let requester: Handle
        let owner: Handle
    }

    private let burst: Int
    private let refill: TimeAmount
    /// Tokens left, as of `at`.
    private var buckets: [Pair: (tokens: Int, at: NIODeadline)] = [:]
    private var lastSweep = NIODeadline.now()
    private let maximumPairs: Int

    init(burst: Int, refill: TimeAmount, maximumPairs: Int = 100_000) {
        precondition(burst >= 0 && refill > .zero, "internal error: a bucket needs a size and a refill time")
        self.burst = burst
        self.refill = refill
        self.maximumPairs = maximumPairs
    }

    /// Takes a token for `requester` fetching `owner`'s bundle: true if the bundle may carry a one-time prekey.
    func take(requester: Handle, owner: Handle, now: NIODeadline = .now()) -> Bool {
        sweepIfDue(now: now)
        let pair = Pair(requester: requester, owner: owner)
        if buckets[pair] == nil, buckets.count >= maximumPairs {
            sweep(now: now)
            guard buckets.count < maximumPairs else { return false }
        }
        var (tokens, at) = current(pair, now: now)
        guard tokens > 0 else { return false }
        // A full bucket starts its refill clock now; a partial one keeps the time its last token was credited.
        if tokens == burst { at = now }
        tokens -= 1
        buckets[pair] = (tokens, at)
        return true
    }

    /// Pairs with a bucket that is not full (for tests).
    var trackedPairs: Int { buckets.count }

    /// The pair's tokens with the refill credited up to `now`, and the time the next refill counts from.
    private func current(_ pair: Pair, now: NIODeadline) -> (tokens: Int, at: NIODeadline) {
        guard let (tokens, at) = buckets[pair] else { return (burst, now) }
        let credited = Int((now - at).nanoseconds / refill.nanoseconds)
        guard credited > 0 else { return (tokens, at) }
        if tokens + credited >= burst { return (burst, now) }
        return (tokens + credited, at + .nanoseconds(Int64(credited) * refill.nanoseconds))
    }

    private func sweepIfDue(now: NIODeadline) {
        guard lastSweep + .nanoseconds(refill.nanoseconds * Int64(max(burst, 1))) <= now else { return }
        sweep(now: now)
    }

    private func sweep(now: NIODeadline) {
        lastSweep = now
        for pair in Array(buckets.keys) where current(pair, now: now).tokens == burst { buckets[pair] = nil }
    }
}
