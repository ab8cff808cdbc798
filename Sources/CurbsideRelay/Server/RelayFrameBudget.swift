import CurbsideTransport
import NIOConcurrencyHelpers

/// The relay's budget for frame bytes being received, shared by every connection (spec/relay.md §Framing): a frame
/// larger than a small request takes its announced length from it when its length prefix arrives, and gives it
/// back once the frame has arrived whole or the connection closed. One owner (an account) may hold at most its
/// share, so that one account announcing large frames on many connections and sending them slowly cannot leave
/// every other account's uploads `relay_busy`.
///
/// A lock, not an actor: frame decoders ask on event loops, which must not wait; each section is a few additions.
/// The owners' table holds only owners with a frame in flight, so it is bounded by the connections.
final class RelayFrameBudget: FrameBudget {
    private let capacity: Int
    private let ownerShare: Int
    private let held = NIOLockedValueBox<(total: Int, byOwner: [String: Int])>((0, [:]))

    init(capacity: Int, ownerShare: Int? = nil) {
        self.capacity = capacity
        self.ownerShare = ownerShare ?? capacity
    }

    func reserve(_ bytes: Int, for owner: String) -> Bool {
        held.withLockedValue { held in
            let ownerHeld = held.byOwner[owner, default: 0]
            guard bytes <= capacity - held.total, bytes <= ownerShare - ownerHeld else { return false }
            held.total += bytes
            held.byOwner[owner] = ownerHeld + bytes
            return true
        }
    }

    func release(_ bytes: Int, for owner: String) {
        held.withLockedValue { held in
            held.total -= bytes
            let left = held.byOwner[owner, default: 0] - bytes
            held.byOwner[owner] = left > 0 ? left : nil
        }
    }

    /// Bytes held now, in all and for `owner` (for tests and status).
    var heldBytes: Int { held.withLockedValue { $0.total } }
    func heldBytes(for owner: String) -> Int { held.withLockedValue { $0.byOwner[owner, default: 0] } }
}
