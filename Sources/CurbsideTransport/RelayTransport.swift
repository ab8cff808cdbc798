import CurbsideTLS
import CurbsideWire
import NIOCore
import NIOPosix

/// Opening a framed TLS connection to a relay (spec/transport.md, spec/relay.md §Framing).
public enum RelayTransport {
    /// The ALPN protocol every relay connection negotiates; the one place the value is written.
    public static let applicationProtocol = "curbside/1"

    /// Connects to `host:port`, completes the TLS handshake with `tls` and returns a channel of frames with the
    /// handshake's details (the channel binding the login signs, the peer's key fingerprint).
    ///
    /// A connection whose handshake fails is finished before the error is thrown, as NIO requires. With `firstFrame`,
    /// the frame it makes from the handshake's details is written as the handshake completes, with the client's last
    /// flight (a bound login, spec/relay.md §Bound login), before this function returns. `handlers` makes handlers
    /// added after the frame codec, on the event loop, before the channel is wrapped for async code.
    public static func connect(
        host: String,
        port: Int,
        tls: TLSContext,
        connectTimeout: TimeAmount = .seconds(10),
        maximumFrameLength: Int = Frame.protocolMaximumLength,
        firstFrame: (@Sendable (TLSHandshakeCompletedEvent) -> Frame)? = nil,
        handlers: @escaping @Sendable () -> [any ChannelHandler] = { [] },
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> (NIOAsyncChannel<Frame, Frame>, TLSHandshakeCompletedEvent) {
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        // An address needs no lookup: a name goes through getaddrinfo on a Dispatch thread, two thread hops more for
        // every connection.
        let connected =
            if let address = try? SocketAddress(ipAddress: host, port: port) {
                bootstrap.connect(to: address)
            } else {
                bootstrap.connect(host: host, port: port)
            }
        // The pipeline is added once the socket is connected (TLS starts its handshake as it is added), and the
        // caller waits once, for the connection and its handshake together: awaiting the connect and then the
        // handshake woke the caller twice per connection.
        let (channel, handshake) = try await connected.flatMap { channel in
            let configured = channel.eventLoop.makeCompletedFuture {
                try RelayPipeline.configure(
                    channel,
                    tls: tls,
                    frameDecoder: FrameDecoder(maximumLength: maximumFrameLength),
                    then: (firstFrame.map { [FirstFrameWriter($0)] } ?? []) + handlers()
                )
            }
            configured.whenFailure { _ in channel.close(promise: nil) }
            return configured.flatMap { configured in
                configured.handshake
                    .map { Result<TLSHandshakeCompletedEvent, any Error>.success($0) }
                    .recover { .failure($0) }
                    .map { (configured.channel, $0) }
            }
        }.get()
        do {
            return (channel, try handshake.get())
        } catch {
            try? await channel.executeThenClose { _, _ in }
            throw error
        }
    }
}
