import NIOConcurrencyHelpers

/// Counts open connections, in all and per client address, and refuses those over the limits.
///
/// A lock, not an actor: it is consulted synchronously in the channel initializer on an event loop, which must not
/// wait; the critical sections are a dictionary update.
final class ConnectionLimiter: Sendable {
    private let total: Int
    private let perAddress: Int
    private let counts = NIOLockedValueBox<(total: Int, byAddress: [String: Int])>((0, [:]))

    init(total: Int, perAddress: Int) {
        self.total = total
        self.perAddress = perAddress
    }

    /// Admits a connection from `address` if both limits allow; the caller must `release` an admitted one.
    func admit(_ address: String) -> Bool {
        counts.withLockedValue { counts in
            guard counts.total < total, counts.byAddress[address, default: 0] < perAddress else { return false }
            counts.total += 1
            counts.byAddress[address, default: 0] += 1
            return true
        }
    }

    func release(_ address: String) {
        counts.withLockedValue { counts in
            counts.total -= 1
            let left = counts.byAddress[address, default: 1] - 1
            counts.byAddress[address] = left > 0 ? left : nil
        }
    }

    var open: Int { counts.withLockedValue { $0.total } }
}
