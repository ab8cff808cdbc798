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
    /// A connection whose handshake fails is finished before the error is thrown, as NIO requires.
    public static func connect(
        host: String,
        port: Int,
        tls: TLSContext,
        connectTimeout: TimeAmount = .seconds(10),
        maximumFrameLength: Int = Frame.protocolMaximumLength,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> (NIOAsyncChannel<Frame, Frame>, TLSHandshakeCompletedEvent) {
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        typealias Configured = (
            channel: NIOAsyncChannel<Frame, Frame>,
            handshake: EventLoopFuture<TLSHandshakeCompletedEvent>
        )
        let initializer: @Sendable (any Channel) -> EventLoopFuture<Configured> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try RelayPipeline.configure(
                    channel,
                    tls: tls,
                    frameDecoder: FrameDecoder(maximumLength: maximumFrameLength)
                )
            }
        }
        // An address needs no lookup: a name goes through getaddrinfo on a Dispatch thread, two thread hops more for
        // every connection.
        let (channel, handshake) =
            if let address = try? SocketAddress(ipAddress: host, port: port) {
                try await bootstrap.connect(to: address, channelInitializer: initializer)
            } else {
                try await bootstrap.connect(host: host, port: port, channelInitializer: initializer)
            }
        do {
            return (channel, try await handshake.get())
        } catch {
            try? await channel.executeThenClose { _, _ in }
            throw error
        }
    }
}
