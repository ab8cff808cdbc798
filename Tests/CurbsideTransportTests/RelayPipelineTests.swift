import CurbsideTLS
import CurbsideTransport
import NIOCore
import NIOPosix
import Testing

@Suite("relay pipeline")
struct RelayPipelineTests {
    /// A connection already closed when its pipeline is added (the client adds it once the connect completes, and a
    /// relay over its connection limit closes at once, which can come first) refuses the handlers: configure throws,
    /// and the handshake promise it made is failed, not leaked. A leaked promise stops a debug build, as it stopped
    /// `make test` once in `connectionsPerAddressAreCapped`.
    @Test func aConnectionClosedBeforeItsPipelineIsRefusedWithoutLeaking() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(server.localAddress?.port)
        let client = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get()
        try await client.close()
        let tls = try TLSContext(
            configuration: .client(trust: .pinnedPublicKeys([]), applicationProtocols: [RelayTransport.applicationProtocol])
        )
        let configured = client.eventLoop.submit {
            _ = try RelayPipeline.configure(client, tls: tls, frameDecoder: FrameDecoder())
        }
        await #expect(throws: ChannelError.self) { try await configured.get() }
        try await server.close()
    }
}
