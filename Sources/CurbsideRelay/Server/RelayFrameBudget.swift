import CurbsideTransport
import NIOConcurrencyHelpers

/// The relay's budget for frame bytes being received, shared by every connection (spec/relay.md §Limits): a frame
/// larger than a small request takes its announced length from it when its length prefix arrives, and gives it
/// back once the frame has arrived whole or the connection closed.
///
/// A lock, not an actor: frame decoders ask on event loops, which must not wait; each section is one addition.
final class RelayFrameBudget: FrameBudget {
    private let capacity: Int
    private let held = NIOLockedValueBox(0)

    init(capacity: Int) {
        self.capacity = capacity
    }

    func reserve(_ bytes: Int) -> Bool {
        held.withLockedValue { held in
            guard bytes <= capacity - held else { return false }
            held += bytes
            return true
        }
    }

    func release(_ bytes: Int) {
        held.withLockedValue { $0 -= bytes }
    }

    /// Bytes held now (for tests and status).
    var heldBytes: Int { held.withLockedValue { $0 } }
}
