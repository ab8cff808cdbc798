import NIOCore

/// Room for the frames being received on many connections at once: the relay's budget for buffered frame bytes.
///
/// Called from decoders on event loops, which must not wait: implementations answer at once.
public protocol FrameBudget: AnyObject, Sendable {
    /// Takes `bytes` from the budget for `owner` (an account, or an address before login); false (nothing taken)
    /// if they are not there, in all or within the owner's share.
    func reserve(_ bytes: Int, for owner: String) -> Bool
    /// Gives back bytes taken by `reserve` for the same owner.
    func release(_ bytes: Int, for owner: String)
}

/// The limits one connection's `FrameDecoder` applies, which its owner may change while the connection runs (the
/// relay raises the maximum once a login succeeds). Bound to the connection's event loop, like the decoder.
public final class FrameLimits {
    /// The largest length prefix accepted now.
    public var maximumLength: Int
    /// A frame longer than this is charged to `budget` from its length prefix until it has arrived whole.
    public let chargedAbove: Int
    public let budget: any FrameBudget
    /// Whom charges are made for: the peer's address, then its account once it has logged in.
    public var owner: String

    public init(maximumLength: Int, chargedAbove: Int, budget: any FrameBudget, owner: String = "") {
        self.maximumLength = maximumLength
        self.chargedAbove = chargedAbove
        self.budget = budget
        self.owner = owner
    }
}

@available(*, unavailable)
extension FrameLimits: Sendable {}
