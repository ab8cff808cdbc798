import NIOConcurrencyHelpers

/// A connection's sends between being handed to the store and being answered: how many, and their bytes, and a
/// way for the connection's task to wait until none is left (before any other request, and before it closes).
final class SendsInFlight: Sendable {
    private struct State {
        var count = 0
        var bytes = 0
        var drained: [CheckedContinuation<Void, Never>] = []
    }

    private let state = NIOLockedValueBox(State())

    var count: Int { state.withLockedValue { $0.count } }
    var bytes: Int { state.withLockedValue { $0.bytes } }

    func begin(bytes: Int) {
        state.withLockedValue { state in
            state.count += 1
            state.bytes += bytes
        }
    }

    /// The send of `bytes` is answered (or its connection failed).
    func end(bytes: Int) {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.count -= 1
            state.bytes -= bytes
            guard state.count == 0 else { return [] }
            defer { state.drained = [] }
            return state.drained
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once every send begun has ended (at once, without suspending, when none is in flight).
    func drained() async {
        guard count > 0 else { return }
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let now = state.withLockedValue { state in
                if state.count == 0 { return true }
                state.drained.append(waiter)
                return false
            }
            if now { waiter.resume() }
        }
    }
}
