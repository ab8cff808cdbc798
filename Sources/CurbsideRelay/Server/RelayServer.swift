import CurbsideTLS
import CurbsideTransport
import CurbsideWire
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The relay's listener: accepts TLS connections and runs one `RelaySession` per connection in a task group.
public struct RelayServer: Sendable {
    public let configuration: RelayConfiguration
    let tls: TLSContext
    let directory: KeyDirectory
    let attachments: any AttachmentStorage
    let connections: ConnectionLimiter
    let openChannels = OpenChannels()
    let frameBudget: RelayFrameBudget
    /// Connections opened and closed, logins, registrations, limits hit and store errors; never content or secrets.
    let logger: Logger

    /// - Parameters:
    ///   - attachments: where attachment bytes live: files beside a SQLite store (whose free space is measured
    ///     against `minimumFreeDiskBytes`), or rows of a PostgreSQL store.
    ///   - logger: where the relay logs (label "curbside.relay"); by default nowhere.
    public init(
        configuration: RelayConfiguration,
        tls: TLSContext,
        store: any RelayStore,
        attachments: any AttachmentStorage,
        logger: Logger = .relayDisabled
    ) {
        self.configuration = configuration
        self.logger = logger
        self.tls = tls
        self.directory = KeyDirectory(store: store)
        self.attachments = attachments
        self.connections = ConnectionLimiter(
            total: configuration.maximumConnections,
            perAddress: configuration.maximumConnectionsPerAddress
        )
        self.frameBudget = RelayFrameBudget(
            capacity: configuration.maximumBufferedFrameBytes,
            ownerShare: configuration.maximumBufferedFrameBytesPerAccount
        )
    }

    /// Binds the listening socket; `serve` then runs it.
    public func bind(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> BoundRelay {
        let tls = self.tls
        let configuration = self.configuration
        let connections = self.connections
        let openChannels = self.openChannels
        let frameBudget = self.frameBudget
        let logger = self.logger
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let peerAddress = channel.remoteAddress?.ipAddress ?? "unknown"
                    // Over a limit: close at once, before spending a TLS handshake on it.
                    guard connections.admit(peerAddress) else {
                        logger.notice("connection refused", metadata: ["peer": "\(peerAddress)", "limiter": "connections"])
                        channel.close(promise: nil)
                        return Accepted(session: nil)
                    }
                    channel.closeFuture.whenComplete { _ in connections.release(peerAddress) }
                    let activity = openChannels.add(channel)
                    let timeouts = TimeoutHandler(idleTimeout: configuration.idleTimeout, loginTimeout: configuration.loginTimeout)
                    // Before login, frames no longer than a login or a registration needs; larger ones, after it,
                    // take their length from the relay's budget while they arrive.
                    let limits = FrameLimits(
                        maximumLength: configuration.maximumFrameLengthBeforeLogin,
                        chargedAbove: configuration.unbudgetedFrameLength,
                        budget: frameBudget,
                        owner: "address \(peerAddress)"
                    )
                    let challenge = LoginChallenge.random()
                    let handshake = HandshakeDetails()
                    let (asyncChannel, _) = try RelayPipeline.configure(
                        channel,
                        tls: tls,
                        frameDecoder: FrameDecoder(limits: limits),
                        then: [timeouts, ChallengeWriter(challenge, handshake: handshake)]
                    )
                    let loopBoundTimeouts = NIOLoopBound(timeouts, eventLoop: channel.eventLoop)
                    let loopBoundLimits = NIOLoopBound(limits, eventLoop: channel.eventLoop)
                    return Accepted(
                        session: .init(
                            channel: asyncChannel,
                            challenge: challenge,
                            handshake: handshake,
                            peerAddress: peerAddress,
                            activity: activity,
                            loggedIn: { handle in
                                channel.eventLoop.execute {
                                    loopBoundTimeouts.value.loggedIn()
                                    loopBoundLimits.value.maximumLength = configuration.maximumFrameLength
                                    loopBoundLimits.value.owner = "account \(handle)"
                                }
                            }
                        )
                    )
                }
            }
        return BoundRelay(server: self, listener: listener)
    }

    /// What the child initializer hands the accept loop: a connection to serve, or nothing (refused and closed).
    struct Accepted: Sendable {
        struct Session: Sendable {
            let channel: NIOAsyncChannel<Frame, Frame>
            /// The challenge its login must sign, written by the pipeline when the handshake completes.
            let challenge: LoginChallenge
            let handshake: HandshakeDetails
            let peerAddress: String
            let activity: ConnectionActivity
            /// Tells the connection's timeout handler and frame decoder that the login succeeded.
            let loggedIn: @Sendable (Handle) -> Void
        }
        let session: Session?
    }
}

/// The connections a relay has open, so that stopping it can close them all without cutting a request short.
///
/// A lock, not an actor: `add` runs in a channel initializer on an event loop, which must not wait.
final class OpenChannels: Sendable {
    private let connections = NIOLockedValueBox<(open: [ObjectIdentifier: ConnectionActivity], stopping: Bool)>(([:], false))

    func add(_ channel: any Channel) -> ConnectionActivity {
        let id = ObjectIdentifier(channel)
        let activity = ConnectionActivity(channel: channel)
        let stopping = connections.withLockedValue {
            $0.open[id] = activity
            return $0.stopping
        }
        // Accepted while the relay was stopping: closed before it is served.
        if stopping { activity.stop() }
        channel.closeFuture.whenComplete { _ in
            _ = self.connections.withLockedValue { $0.open.removeValue(forKey: id) }
        }
        return activity
    }

    /// Closes every idle connection now and every busy one as soon as its current request is answered (each sends
    /// close_notify through its TLS handler). A send being committed is finished and acknowledged first.
    func closeAll(force: Bool = false) {
        let open = connections.withLockedValue {
            $0.stopping = true
            return Array($0.open.values)
        }
        for activity in open { activity.stop(force: force) }
    }
}

/// How many requests of one connection are in progress (several sends may be in flight), so that stopping the relay
/// closes it at the right time: at once when none is, else when the last one is answered.
final class ConnectionActivity: Sendable {
    private struct State {
        var inProgress = 0
        var stopping = false
    }
    private let state = NIOLockedValueBox(State())
    private let channel: any Channel

    init(channel: any Channel) {
        self.channel = channel
    }

    /// A request arrived; false if the relay is stopping (the request is not started).
    func begin() -> Bool {
        state.withLockedValue { state in
            guard !state.stopping else { return false }
            state.inProgress += 1
            return true
        }
    }

    /// A request is answered; false if the relay is stopping. The last one answered while it stops closes the
    /// connection.
    func end() -> Bool {
        let (stopping, last) = state.withLockedValue { state in
            state.inProgress = max(0, state.inProgress - 1)
            return (state.stopping, state.inProgress == 0)
        }
        if stopping, last { channel.close(promise: nil) }
        return !stopping
    }

    /// Closes the connection now if no request is in progress (or `force`), else once the last one is answered.
    func stop(force: Bool = false) {
        let idle = state.withLockedValue { state in
            state.stopping = true
            return state.inProgress == 0
        }
        if idle || force { channel.close(promise: nil) }
    }
}

/// A relay whose socket is bound; `serve()` runs until its task is cancelled.
public struct BoundRelay: Sendable {
    let server: RelayServer
    let listener: NIOAsyncChannel<RelayServer.Accepted, Never>

    /// The port actually bound (useful with port 0).
    public var port: Int { listener.channel.localAddress?.port ?? 0 }

    /// Accepts connections and serves each in its own child task until cancelled; then closes the listener.
    public func serve() async throws {
        let session = RelaySession(
            directory: server.directory,
            limiter: LoginRateLimiter(
                limit: server.configuration.maximumLoginFailures,
                window: server.configuration.loginFailureWindow,
                concurrent: server.configuration.maximumConcurrentLoginsPerAddress
            ),
            bundleFetches: BundleFetchLimiter(
                burst: server.configuration.oneTimePrekeysPerRequester,
                refill: server.configuration.oneTimePrekeyRefillInterval
            ),
            newRecipients: NewRecipientLimiter(
                limit: server.configuration.maximumNewRecipientsPerSender,
                window: server.configuration.newRecipientWindow
            ),
            configuration: server.configuration,
            clients: ConnectedClients(),
            attachments: server.attachments,
            logger: server.logger
        )
        // Files a crash left between the store forgetting an attachment and the file's deletion.
        await Self.removeOrphanFiles(session)
        // The accept loop runs in its own task, which is never cancelled: it must take every connection the listener
        // accepted (NIO requires each async channel to be finished), so stopping closes the listener and the open
        // connections, and the loop then ends by itself once the stream is drained.
        let listener = self.listener
        let openChannels = server.openChannels
        let acceptLoop = Task {
            try await listener.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await accepted in inbound {
                        guard let accepted = accepted.session else { continue }
                        group.addTask {
                            await session.run(
                                channel: accepted.channel,
                                challenge: accepted.challenge,
                                handshake: accepted.handshake,
                                peerAddress: accepted.peerAddress,
                                activity: accepted.activity,
                                loggedIn: accepted.loggedIn
                            )
                        }
                    }
                }
            }
        }
        // Expired envelopes are deleted with a notice for their sender, pushed at once if the sender is connected.
        let sweeper = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: session.configuration.expirySweepInterval)
                guard !Task.isCancelled else { break }
                await Self.sweep(session, now: session.configuration.clock.now())
            }
        }
        // Connections whose account the operator revoked or re-keyed (`relay revoke`, `relay enroll --replace`, run by
        // another process on the same store) are closed: their key no longer logs in, so it must not stay logged in.
        let accountCheck = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: session.configuration.accountCheckInterval)
                guard !Task.isCancelled else { break }
                await Self.closeRevokedSessions(session)
            }
        }
        // Relay processes sharing a PostgreSQL database push what the others stored to their own connections.
        let fanOut = (session.store as? PostgresRelayStore).map { store in
            Task {
                await PostgresFanOut(
                    store: store,
                    clients: session.clients,
                    interval: session.configuration.pushCatchUpInterval,
                    logger: server.logger
                ).run()
            }
        }
        // Stopping: the listener closes, idle connections close, busy ones answer their request first; the accept loop
        // ends once every session has, and then the sweeper is stopped and awaited, so no transaction is cut short.
        let grace = server.configuration.shutdownGracePeriod
        let result = await withTaskCancellationHandler {
            await acceptLoop.result
        } onCancel: {
            listener.channel.close(promise: nil)
            openChannels.closeAll()
            // A connection whose answer cannot be written (its client stopped reading) is closed after the grace.
            Task {
                try await Task.sleep(for: grace)
                openChannels.closeAll(force: true)
            }
        }
        sweeper.cancel()
        accountCheck.cancel()
        fanOut?.cancel()
        await sweeper.value
        await accountCheck.value
        await fanOut?.value
        try result.get()
    }

    static func sweep(_ session: RelaySession, now: Timestamp) async {
        do {
            let removal = try await session.store.expire(now: now)
            if !removal.notices.isEmpty { session.logger.info("expired \(removal.notices.count) envelopes; their senders are told") }
            await session.settle(removal)
        } catch {
            session.logger.warning("expiry sweep failed: \(error); the next sweep tries again")
        }
        await removeOrphanFiles(session)
    }

    /// Closes every connection logged in with a key its handle no longer has: the account was revoked (no key) or
    /// replaced (another key). Each gets `login_failed` with request id 0, as a login with that key would now. One
    /// read for all the handles connected; when it fails (the store is failing) nobody is closed until the next check.
    static func closeRevokedSessions(_ session: RelaySession) async {
        let loggedIn = session.clients.loginKeys
        guard !loggedIn.isEmpty else { return }
        let keys: [Handle: [UInt8]]
        do {
            keys = try await session.store.identityKeyBytes(for: Array(loggedIn.keys))
        } catch {
            return
        }
        for (handle, connections) in loggedIn {
            let current = keys[handle]
            let stale = connections.filter { $0.value.rawRepresentation != current }.map(\.key)
            guard !stale.isEmpty else { continue }
            session.clients.close(stale, of: handle, with: RelayError(.loginFailed, "the account's key was revoked"))
            session.logger.notice(
                "sessions closed: key revoked",
                metadata: [
                    "handle": "\(handle)",
                    "reason": "\(current == nil ? "account_revoked" : "key_replaced")",
                    "connections": "\(stale.count)",
                ]
            )
        }
    }

    /// Deletes attachment files the store does not know (races between expiry and a late chunk, failed unlinks).
    static func removeOrphanFiles(_ session: RelaySession) async {
        guard let files = try? await session.attachments.fileKeys(),
            let keys = try? await session.store.attachmentKeys()
        else { return }
        try? await session.attachments.removeFiles(files, notIn: keys)
    }
}
