import CurbsideTLS
import CurbsideWire
import NIOCore
import NIOPosix

/// The relay's listener: accepts TLS connections and runs one `RelaySession` per connection in a task group.
public struct RelayServer: Sendable {
    public let configuration: RelayConfiguration
    let tls: TLSContext
    let directory: KeyDirectory

    public init(configuration: RelayConfiguration, tls: TLSContext, store: any RelayStore) {
        self.configuration = configuration
        self.tls = tls
        self.directory = KeyDirectory(store: store)
    }

    /// Binds the listening socket; `serve` then runs it.
    public func bind(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> BoundRelay {
        let tls = self.tls
        let maximumFrameLength = configuration.maximumFrameLength
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handshake = channel.eventLoop.makePromise(of: TLSHandshakeCompletedEvent.self)
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(TLSHandler(context: tls))
                    try sync.addHandler(HandshakeObserver(handshake))
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder(maximumLength: maximumFrameLength)))
                    try sync.addHandler(MessageToByteHandler(FrameEncoder()))
                    let asyncChannel = try NIOAsyncChannel<Frame, Frame>(wrappingChannelSynchronously: channel)
                    return Accepted(
                        channel: asyncChannel,
                        handshake: handshake.futureResult,
                        peerAddress: channel.remoteAddress?.ipAddress ?? "unknown"
                    )
                }
            }
        return BoundRelay(server: self, listener: listener)
    }

    struct Accepted: Sendable {
        let channel: NIOAsyncChannel<Frame, Frame>
        let handshake: EventLoopFuture<TLSHandshakeCompletedEvent>
        let peerAddress: String
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
                            await session.run(
                                channel: accepted.channel,
                                handshake: accepted.handshake,
                                peerAddress: accepted.peerAddress
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
