import CurbsideTLS
import Foundation
import NIOCore
import NIOEmbedded
import NIOTLS

/// A server identity made once for the whole test run.
enum TestIdentity {
    static let server: TLSIdentity = try! TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"])
    static let other: TLSIdentity = try! TLSIdentity.selfSigned(names: ["localhost"])
    static let alpn = ["curbside/1"]

    static func serverContext(alpn: [String] = alpn, timeout: TimeAmount = .seconds(10)) throws -> TLSContext {
        try TLSContext(configuration: .server(identity: server, applicationProtocols: alpn, handshakeTimeout: timeout))
    }

    static func clientContext(
        pins: [PublicKeyFingerprint] = [server.certificate.publicKeyFingerprint],
        alpn: [String] = alpn,
        timeout: TimeAmount = .seconds(10)
    ) throws -> TLSContext {
        try TLSContext(configuration: .client(trust: .pinnedPublicKeys(pins), applicationProtocols: alpn, handshakeTimeout: timeout))
    }
}

/// Collects what reaches the end of a pipeline: reads, user events, errors.
final class Recorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var received = ByteBuffer()
    var readSizes: [Int] = []
    var events: [Any] = []
    var errors: [any Error] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        readSizes.append(buffer.readableBytes)
        received.writeBuffer(&buffer)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        events.append(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        errors.append(error)
    }

    var tlsErrors: [TLSError] { errors.compactMap { $0 as? TLSError } }
    var handshake: TLSHandshakeCompletedEvent? { events.compactMap { $0 as? TLSHandshakeCompletedEvent }.first }
    var alpnEvent: TLSUserEvent? { events.compactMap { $0 as? TLSUserEvent }.first }
}

/// A client and a server TLSHandler on two EmbeddedChannels, with the bytes between them moved by hand.
final class BackToBack {
    let client = EmbeddedChannel()
    let server = EmbeddedChannel()
    let clientRecorder = Recorder()
    let serverRecorder = Recorder()
    let clientHandler: TLSHandler
    let serverHandler: TLSHandler

    init(client clientContext: TLSContext? = nil, server serverContext: TLSContext? = nil) throws {
        clientHandler = try TLSHandler(context: clientContext ?? TestIdentity.clientContext())
        serverHandler = try TLSHandler(context: serverContext ?? TestIdentity.serverContext())
        try client.pipeline.syncOperations.addHandler(clientHandler)
        try client.pipeline.syncOperations.addHandler(clientRecorder)
        try server.pipeline.syncOperations.addHandler(serverHandler)
        try server.pipeline.syncOperations.addHandler(serverRecorder)
    }

    func activate() throws {
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        try server.connect(to: address).wait()
        try client.connect(to: address).wait()
    }

    /// Moves bytes both ways until neither side has anything to send. Returns the number of bytes moved.
    /// `tamper` may alter each buffer going from client to server.
    @discardableResult
    func interact(tamper: ((inout ByteBuffer) -> Void)? = nil) throws -> Int {
        var moved = 0
        while true {
            var progress = false
            while var bytes = try client.readOutbound(as: ByteBuffer.self) {
                tamper?(&bytes)
                moved += bytes.readableBytes
                progress = true
                if server.isActive { try? server.writeInbound(bytes) }
            }
            while let bytes = try server.readOutbound(as: ByteBuffer.self) {
                moved += bytes.readableBytes
                progress = true
                if client.isActive { try? client.writeInbound(bytes) }
            }
            if !progress { return moved }
        }
    }

    func handshake() throws {
        try activate()
        try interact()
    }
}

extension ByteBuffer {
    static func pattern(_ count: Int, seed: UInt8 = 0) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeBytes((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) })
        return buffer
    }
}
