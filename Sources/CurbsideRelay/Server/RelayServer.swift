import CurbsideTLS
import CurbsideWire
import NIOCore
import NIOPosix

/// The relay's listener: accepts TLS connections and runs one `RelaySession` per connection in a task group.
public struct RelayServer: Sendable {
    public let configuration: RelayConfiguration
    let tls: TLSContext
    let directory: KeyDirectory
    let connections: ConnectionLimiter

    public init(configuration: RelayConfiguration, tls: TLSContext, store: any RelayStore) {
        self.configuration = configuration
        self.tls = tls
        self.directory = KeyDirectory(store: store)
        self.connections = ConnectionLimiter(
            total: configuration.maximumConnections,
            perAddress: configuration.maximumConnectionsPerAddress
        )
    }

    /// Binds the listening socket; `serve` then runs it.
    public func bind(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> BoundRelay {
        let tls = self.tls
        let configuration = self.configuration
        let connections = self.connections
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let peerAddress = channel.remoteAddress?.ipAddress ?? "unknown"
                    // Over a limit: close at once, before spending a TLS handshake on it.
                    let admitted = connections.admit(peerAddress)
                    if admitted {
                        channel.closeFuture.whenComplete { _ in connections.release(peerAddress) }
                    }
                    let handshake = channel.eventLoop.makePromise(of: TLSHandshakeCompletedEvent.self)
                    let sync = channel.pipeline.syncOperations
                    let timeouts = TimeoutHandler(idleTimeout: configuration.idleTimeout, loginTimeout: configuration.loginTimeout)
                    try sync.addHandler(TLSHandler(context: tls))
                    try sync.addHandler(HandshakeObserver(handshake))
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder(maximumLength: configuration.maximumFrameLength)))
                    try sync.addHandler(MessageToByteHandler(FrameEncoder()))
                    try sync.addHandler(timeouts)
                    let asyncChannel = try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel)
                    let loopBoundTimeouts = NIOLoopBound(timeouts, eventLoop: channel.eventLoop)
                    return Accepted(
                        channel: asyncChannel,
                        handshake: handshake.futureResult,
                        peerAddress: peerAddress,
                        admitted: admitted,
                        loggedIn: { channel.eventLoop.execute { loopBoundTimeouts.value.loggedIn() } }
                    )
                }
            }
        return BoundRelay(server: self, listener: listener)
    }

    struct Accepted: Sendable {
        let channel: NIOAsyncChannel<Frame, Frame>
        let handshake: EventLoopFuture<TLSHandshakeCompletedEvent>
        let peerAddress: String
        /// False when the connection is over a limit and must be closed unserved.
        let admitted: Bool
        /// Tells the connection's timeout handler that the login succeeded.
        let loggedIn: @Sendable () -> Void
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
                window: server.configuration.loginFailureWindow
            ),
            configuration: server.configuration
        )
        try await withTaskCancellationHandler {
            try await listener.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await accepted in inbound {
                        group.addTask {
                            guard accepted.admitted else {
                                try? await accepted.channel.executeThenClose { _, _ in }
                                return
                            }
                            await session.run(
                                channel: accepted.channel,
                                handshake: accepted.handshake,
                                peerAddress: accepted.peerAddress,
                                loggedIn: accepted.loggedIn
                            )
                        }
                    }
                }
            }
        } onCancel: {
            listener.channel.close(promise: nil)
        }
    }
}
