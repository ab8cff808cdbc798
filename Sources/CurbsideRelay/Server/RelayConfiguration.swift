import CurbsideWire
import NIOCore

/// How a relay listens and what it allows. Immutable; every limit has a documented default.
public struct RelayConfiguration: Sendable {
    /// Address to bind; loopback by default.
    public var host: String = "127.0.0.1"
    /// Port to bind; 0 lets the system choose (tests).
    public var port: Int = 4433
    /// The largest frame accepted after login (spec/relay.md §Framing: at least 2^22).
    public var maximumFrameLength: Int = Frame.protocolMaximumLength
    /// The largest frame accepted before login: room for a `login` or a `register` (under 200 bytes), so a
    /// connection that never logs in cannot make the relay hold more than this of its frame.
    public var maximumFrameLengthBeforeLogin: Int = 1024
    /// Bytes of partly received frames the relay holds for all connections together: a frame longer than
    /// `unbudgetedFrameLength` takes its length from this budget when its length prefix arrives, and a frame that
    /// finds too little left is `relay_busy` (the connection closes; the client retries later).
    public var maximumBufferedFrameBytes: Int = 128 << 20
    /// The most of that budget one account may hold at once (four of the largest frames): one account announcing
    /// large frames on many connections cannot take it all.
    public var maximumBufferedFrameBytesPerAccount: Int = 16 << 20
    public var unbudgetedFrameLength: Int = 64 << 10
    /// Time allowed from accepting a connection to completing TLS.
    public var handshakeTimeout: TimeAmount = .seconds(10)
    /// Time allowed from the challenge to a successful login.
    public var loginTimeout: TimeAmount = .seconds(30)
    /// A connection that receives nothing for this long is told `timeout` and closed.
    public var idleTimeout: TimeAmount = .seconds(300)
    /// Sends one connection may have in flight (read, not yet answered): a client that keeps several sends in flight
    /// gets them written in one group commit, each still answered only once durable. Their envelopes together are held
    /// to `maximumSendBytesInFlightPerConnection` as well. 1 handles a connection's requests one at a time.
    public var maximumSendsInFlightPerConnection: Int = 32
    public var maximumSendBytesInFlightPerConnection: Int = 4 << 20
    /// Connections open at once, in all and from one address; more are closed as soon as they are accepted.
    public var maximumConnections: Int = 1024
    public var maximumConnectionsPerAddress: Int = 32
    /// Envelopes, and bytes, one account's queue may hold; a send beyond either is `quota_exceeded`. Bytes count each
    /// envelope with the attachments it names, once for every envelope that names them.
    public var maximumQueuedEnvelopesPerAccount: Int = 10_000
    public var maximumQueuedBytesPerAccount: Int = 4 << 30
    /// The share of one recipient's queue that one sender may hold, counted the same way; a send beyond either is
    /// `quota_exceeded`, so one account cannot fill a colleague's queue.
    public var maximumQueuedEnvelopesPerSender: Int = 1_000
    public var maximumQueuedBytesPerSender: Int = 1 << 30
    /// Recipients one sender may start writing to within `newRecipientWindow` (those it has not sent to within the
    /// window); a send to one more is `rate_limited`.
    public var maximumNewRecipientsPerSender: Int = 60
    public var newRecipientWindow: TimeAmount = .hours(1)
    /// Bytes of attachments one account may hold on the relay (uploads counted at their declared size).
    public var maximumAttachmentBytesPerAccount: UInt64 = 4 << 30
    /// Uploads and attachments one account may hold at once, whatever their size (each costs a file and a row).
    public var maximumAttachmentsPerAccount: Int = 256
    /// How long an upload is kept, from its opening or its commit, unless an envelope refers to it (7 days).
    public var uploadLifetimeSeconds: UInt64 = 7 * 24 * 3600
    /// Free disk space the relay keeps for acknowledgements and its database: below it, new envelopes and uploads
    /// are `storage_full`, while fetch, download and acknowledge go on.
    public var minimumFreeDiskBytes: UInt64 = 256 << 20
    /// How long an envelope waits for its recipient before it is deleted with an expiry notice (14 days).
    public var envelopeLifetimeSeconds: UInt64 = 14 * 24 * 3600
    /// On PostgreSQL, how often a relay process reads what other processes stored for its connected clients, in case
    /// a notification was lost (PostgresFanOut); pushes arrive by notification well before this.
    public var pushCatchUpInterval: Duration = .seconds(1)
    /// How often the relay looks for expired envelopes.
    public var expirySweepInterval: Duration = .seconds(60)
    /// How often the relay looks for logged-in connections whose account was revoked or given a new key since they
    /// logged in (by another process: `relay revoke`, `relay enroll --replace`), and closes them; one read of the
    /// store for all the handles connected.
    public var accountCheckInterval: Duration = .seconds(5)
    /// How long the relay trusts its last reading of the free disk space before asking the system again.
    public var freeSpaceCheckInterval: Duration = .milliseconds(100)
    /// The time the relay records and compares (RelayClock): the system's, unless a test moves its own.
    public var clock = RelayClock.system
    /// Answers `commit_upload_as` as a relay older than it does (`unknown_frame_type`), so that tests can check how
    /// clients fall back. Never set outside tests.
    package var _testOnly_refusesCommitUploadAs = false
    /// One-time prekeys one account may take from another's bundles: this many at once, then one per interval
    /// (a token bucket per requester and owner); a fetch beyond it gets the bundle without a one-time prekey.
    public var oneTimePrekeysPerRequester: Int = 10
    public var oneTimePrekeyRefillInterval: TimeAmount = .seconds(60)
    /// Failed logins allowed per client address and handle per `loginFailureWindow` before `rate_limited`.
    public var maximumLoginFailures: Int = 5
    public var loginFailureWindow: TimeAmount = .seconds(60)

    /// After a stop, how long busy connections get to answer their request before they are closed regardless (a
    /// client that stops reading must not keep the relay from stopping).
    public var shutdownGracePeriod: Duration = .seconds(10)
    /// Most login attempts from one address under way at once; with `maximumLoginFailures`, this bounds how many
    /// guesses one address gets per window.
    public var maximumConcurrentLoginsPerAddress: Int = 32
    /// Answers `bound_login` as a relay older than it does (`unknown_frame_type`, then close), so that tests can
    /// check a client's fallback to the challenge login against the real relay.
    package var _testOnly_refusesBoundLogin = false

    public init() {}
}

