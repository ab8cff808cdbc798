import CurbsideTLS
import Foundation
import NIOCore
import NIOPosix
import NIOTLS
import Testing

/// Echoes every byte back once the TLS handshake is done.
final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Sends `total` pattern bytes as the channel's writability allows and checks every byte echoed back.
final class BulkSender: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let total: Int
    let done: EventLoopPromise<Int>
    private var sent = 0
    private var received = 0
    private var started = false
    static let chunk = 60 * 1024

    init(total: Int, done: EventLoopPromise<Int>) {
        self.total = total
        self.done = done
    }

    /// The stream is a block of prime length repeated, so a lost, duplicated or reordered chunk shows; two copies
    /// side by side let any window be copied or compared in one call.
    static let period = 65_521
    static let pattern: [UInt8] = {
        var state: UInt32 = 0x1234_5678
        let block = (0..<period).map { _ in
            state = state &* 1_664_525 &+ 1_013_904_223
            return UInt8(truncatingIfNeeded: state >> 24)
        }
        return block + block
    }()

    /// `count` bytes of the stream starting at `offset` (count ≤ period).
    static func window(at offset: Int, count: Int) -> ArraySlice<UInt8> {
        let start = offset % period
        return pattern[start..<(start + count)]
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is TLSHandshakeCompletedEvent {
            started = true
            send(context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if started { send(context: context) }
    }

    private func send(context: ChannelHandlerContext) {
        while sent < total, context.channel.isWritable {
            let count = min(Self.chunk, total - sent)
            var buffer = context.channel.allocator.buffer(capacity: count)
            buffer.writeBytes(Self.window(at: sent, count: count))
            sent += count
            context.write(wrapOutboundOut(buffer), promise: nil)
        }
        context.flush()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let matches = buffer.withUnsafeReadableBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let count = min(Self.period, bytes.count - offset)
                let same = Self.window(at: received + offset, count: count).withUnsafeBytes { expected in
                    memcmp(expected.baseAddress!, bytes.baseAddress! + offset, count) == 0
                }
                guard same else { return false }
                offset += count
            }
            return true
        }
        guard matches else {
            done.fail(TLSError(.protocolError, "echoed bytes differ near offset \(received)"))
            context.close(promise: nil)
            return
        }
        received += buffer.readableBytes
        if received == total { done.succeed(received) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        done.fail(error)
        context.close(promise: nil)
    }
}

/// An echo server with TLS on 127.0.0.1 and a port the system chose.
struct EchoServer {
    let channel: any Channel
    var port: Int { channel.localAddress!.port! }

    static func start(group: any EventLoopGroup, context tls: TLSContext) throws -> EchoServer {
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TLSHandler(context: tls))
                    try channel.pipeline.syncOperations.addHandler(EchoHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .wait()
        return EchoServer(channel: channel)
    }
}

@Suite("TLS over loopback", .serialized)
struct TLSLoopbackTests {
    @Test func hundredMebibytesEchoedByteForByte() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try EchoServer.start(group: group, context: TestIdentity.serverContext())
        defer { try? server.channel.close().wait() }
        let total = 100 * 1024 * 1024
        let clientContext = try TestIdentity.clientContext()
        let done = group.next().makePromise(of: Int.self)
        let client = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TLSHandler(context: clientContext))
                    try channel.pipeline.syncOperations.addHandler(BulkSender(total: total, done: done))
                }
            }
            .connect(host: "127.0.0.1", port: server.port)
            .get()
        let received = try await done.futureResult.get()
        #expect(received == total)
        try await client.close()
    }
}

/// Runs a shell command with a time limit; returns its exit status and standard output and error together.
func shell(_ command: String) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
}

@Suite("TLS against OpenSSL's own tools", .serialized)
struct OpenSSLPeerTests {
    @Test func sClientEchoesOverTLS13WithALPN() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let server = try EchoServer.start(group: group, context: TestIdentity.serverContext())
        defer { try? server.channel.close().wait() }
        let result = try shell(
            "(printf 'ping-curbside\\n'; sleep 1) | timeout 10 openssl s_client -connect 127.0.0.1:\(server.port) "
                + "-tls1_3 -alpn curbside/1 -no_ign_eof 2>&1"
        )
        #expect(result.output.contains("ALPN protocol: curbside/1"), "\(result.output)")
        #expect(result.output.contains("TLSv1.3"))
        #expect(result.output.components(separatedBy: "ping-curbside").count >= 2, "the line came back: \(result.output)")
    }

    /// Only X25519, P-256 and P-384 are accepted (transport.md §Profile); X448 and P-521, which OpenSSL would take
    /// by default, are refused, and the server prefers X25519.
    @Test(arguments: [("X25519", true), ("P-256", true), ("P-384", true), ("X448", false), ("P-521", false)])
    func keyExchangeGroupsAreLimited(group name: String, accepted: Bool) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let server = try EchoServer.start(group: group, context: TestIdentity.serverContext())
        defer { try? server.channel.close().wait() }
        let result = try shell(
            "(printf 'ping\\n'; sleep 1) | timeout 10 openssl s_client -connect 127.0.0.1:\(server.port) -tls1_3 "
                + "-alpn curbside/1 -groups \(name) -no_ign_eof 2>&1"
        )
        #expect(result.output.contains("TLSv1.3") == accepted, "\(result.output)")
        #expect(result.output.contains("Cipher is (NONE)") == !accepted, "\(result.output)")
        if !accepted { #expect(result.output.contains("handshake failure"), "\(result.output)") }
    }

    @Test func sClientWithTLS12IsRefused() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let server = try EchoServer.start(group: group, context: TestIdentity.serverContext())
        defer { try? server.channel.close().wait() }
        let result = try shell(
            "(printf 'ping\\n'; sleep 1) | timeout 10 openssl s_client -connect 127.0.0.1:\(server.port) -tls1_2 -no_ign_eof 2>&1"
        )
        #expect(result.status != 0)
        #expect(result.output.contains("alert protocol version"), "\(result.output)")
        #expect(result.output.contains("Cipher is (NONE)"))
        #expect(!result.output.contains("ping\n"))
    }

    @Test(arguments: [true, false])
    func clientHandlerAgainstSServer(_ rightPin: Bool) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-tls-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let identity = try TLSIdentity.selfSigned(names: ["localhost", "127.0.0.1"])
        try identity.write(certificatePath: "\(directory)/cert.pem", privateKeyPath: "\(directory)/key.pem")

        let serverLog = "\(directory)/s_server.log"
        let sServer = Process()
        sServer.executableURL = URL(fileURLWithPath: "/bin/sh")
        sServer.arguments = [
            "-c",
            "exec timeout 20 openssl s_server -accept 127.0.0.1:0 -cert \(directory)/cert.pem "
                + "-key \(directory)/key.pem -tls1_3 -alpn curbside/1 -naccept 1 > \(serverLog) 2>&1",
        ]
        // s_server ends a connection when its stdin reaches end of file: give it a pipe that stays open.
        let stdin = Pipe()
        sServer.standardInput = stdin
        try sServer.run()
        defer {
            sServer.terminate()
            try? stdin.fileHandleForWriting.close()
        }
        var port: Int?
        for _ in 0..<100 where port == nil {
            try await Task.sleep(for: .milliseconds(50))
            let log = (try? String(contentsOfFile: serverLog, encoding: .utf8)) ?? ""
            if let line = log.split(separator: "\n").first(where: { $0.hasPrefix("ACCEPT") }),
                let text = line.split(separator: ":").last
            {
                port = Int(text)
            }
        }
        let serverPort = try #require(port, "s_server did not start")

        let pin = rightPin ? identity.certificate.publicKeyFingerprint : TestIdentity.other.certificate.publicKeyFingerprint
        let context = try TestIdentity.clientContext(pins: [pin])
        let group = MultiThreadedEventLoopGroup.singleton
        let outcome = group.next().makePromise(of: TLSHandshakeCompletedEvent.self)
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TLSHandler(context: context))
                    try channel.pipeline.syncOperations.addHandler(HandshakeWatcher(outcome))
                }
            }
            .connect(host: "127.0.0.1", port: serverPort)
            .get()
        if rightPin {
            let info = try await outcome.futureResult.get()
            #expect(info.negotiatedProtocol == "curbside/1")
            #expect(info.peerPublicKeyFingerprint == identity.certificate.publicKeyFingerprint)
            try await channel.writeAndFlush(ByteBuffer(string: "hello s_server\n"))
            try await channel.close()
        } else {
            await #expect(throws: TLSError.self) { try await outcome.futureResult.get() }
            do {
                _ = try await outcome.futureResult.get()
            } catch let error as TLSError {
                #expect(error.code == .pinMismatch)
                #expect(error.detail.contains(identity.certificate.publicKeyFingerprint.description))
            }
        }
    }

    @Test func certificateFilesAreWrittenPrivatelyAndReadBack() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-cert-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let identity = try TLSIdentity.selfSigned(names: ["relay.example", "127.0.0.1"])
        try identity.write(certificatePath: "\(directory)/cert.pem", privateKeyPath: "\(directory)/key.pem")
        let keyMode = try FileManager.default.attributesOfItem(atPath: "\(directory)/key.pem")[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        let again = try TLSIdentity.read(certificatePath: "\(directory)/cert.pem", privateKeyPath: "\(directory)/key.pem")
        #expect(again.certificate.publicKeyFingerprint == identity.certificate.publicKeyFingerprint)
        // Never overwritten.
        #expect(throws: TLSError.self) {
            try identity.write(certificatePath: "\(directory)/cert.pem", privateKeyPath: "\(directory)/key.pem")
        }
        // OpenSSL's own tools agree on the names and the key fingerprint.
        let text = try shell("openssl x509 -in \(directory)/cert.pem -noout -text")
        #expect(text.output.contains("DNS:relay.example") && text.output.contains("IP Address:127.0.0.1"))
        #expect(text.output.contains("ED25519"))
        let spki = try shell(
            "openssl x509 -in \(directory)/cert.pem -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r"
        )
        #expect(spki.output.hasPrefix(String(identity.certificate.publicKeyFingerprint.description.dropFirst(7))))
        // A key that is not the certificate's is refused.
        try TestIdentity.other.write(certificatePath: "\(directory)/other.pem", privateKeyPath: "\(directory)/other-key.pem")
        let mismatch = #expect(throws: TLSError.self) {
            try TLSIdentity.read(certificatePath: "\(directory)/cert.pem", privateKeyPath: "\(directory)/other-key.pem")
        }
        #expect(mismatch?.code == .certificateError)
    }

    @Test func caTrustChecksTheHostName() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-ca-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try TestIdentity.server.write(certificatePath: "\(directory)/ca.pem", privateKeyPath: "\(directory)/ca-key.pem")
        for (host, succeeds) in [("localhost", true), ("relay.elsewhere", false)] {
            let context = try TLSContext(
                configuration: .client(
                    trust: .certificateAuthorities(pemFile: "\(directory)/ca.pem", hostName: host),
                    applicationProtocols: TestIdentity.alpn
                )
            )
            let pair = try BackToBack(client: context)
            try pair.handshake()
            #expect((pair.clientRecorder.handshake != nil) == succeeds, "\(host)")
            if !succeeds {
                #expect(pair.clientRecorder.tlsErrors.first?.code == .handshakeFailed)
                #expect(pair.clientRecorder.tlsErrors.first?.detail.contains("hostname mismatch") == true)
            }
        }
    }
}

/// Completes `outcome` with the handshake event or the first error.
final class HandshakeWatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let outcome: EventLoopPromise<TLSHandshakeCompletedEvent>

    init(_ outcome: EventLoopPromise<TLSHandshakeCompletedEvent>) {
        self.outcome = outcome
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let info = event as? TLSHandshakeCompletedEvent { outcome.succeed(info) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        outcome.fail(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        outcome.fail(TLSError(.closed, "closed before the handshake completed"))
    }
}

/// Counts what arrives and reads only when told to.
final class PausedSink: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let handshake: EventLoopPromise<Void>
    var received = 0

    init(handshake: EventLoopPromise<Void>) {
        self.handshake = handshake
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is TLSHandshakeCompletedEvent { handshake.succeed() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += unwrapInboundIn(data).readableBytes
    }
}

@Suite("TLS back-pressure", .serialized)
struct TLSBackPressureTests {
    /// A reader that stops reading makes the writer's channel unwritable, and the TLS handler holds none of the
    /// excess itself; once reading resumes everything arrives. Also: the handshake completes with autoRead off.
    @Test func aStalledReaderStopsTheWriter() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let serverContext = try TestIdentity.serverContext()
        let serverHandshake = group.next().makePromise(of: Void.self)
        let accepted = group.next().makePromise(of: (any Channel).self)
        let server = try await ServerBootstrap(group: group)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TLSHandler(context: serverContext))
                    try channel.pipeline.syncOperations.addHandler(PausedSink(handshake: serverHandshake))
                    accepted.succeed(channel)
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let clientContext = try TestIdentity.clientContext()
        let client = try await ClientBootstrap(group: group)
            .channelOption(.writeBufferWaterMark, value: .init(low: 32 * 1024, high: 64 * 1024))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TLSHandler(context: clientContext))
                }
            }
            .connect(host: "127.0.0.1", port: server.localAddress!.port!)
            .get()
        try await serverHandshake.futureResult.get()
        let serverChild = try await accepted.futureResult.get()

        // Write 1 MiB pieces whenever the channel allows, until it stays unwritable: the kernel's buffers between
        // the two sockets are full because the server does not read.
        var written = 0
        var stalledChecks = 0
        while stalledChecks < 3, written < 512 << 20 {
            let (more, buffered) = try await client.eventLoop.submit {
                var more = 0
                let chunk = ByteBuffer(repeating: 0x5A, count: 1 << 20)
                while client.isWritable {
                    client.writeAndFlush(chunk, promise: nil)
                    more += chunk.readableBytes
                }
                let handler = try client.pipeline.syncOperations.handler(type: TLSHandler.self)
                return (more, handler.bufferedPlaintextByteCount)
            }.get()
            #expect(buffered == 0, "the TLS handler must not hold the excess")
            written += more
            stalledChecks = more == 0 ? stalledChecks + 1 : 0
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(written < 512 << 20, "the channel never stayed unwritable")
        #expect(!client.isWritable)
        let beforeResume = try await serverChild.eventLoop.submit {
            try serverChild.pipeline.syncOperations.handler(type: PausedSink.self).received
        }.get()
        // The paused server took at most what completing a record needed (its TLS handler asks for more only
        // while it has a partial record), far less than what was written.
        #expect(beforeResume <= 256 * 1024 && beforeResume < written, "\(beforeResume) of \(written)")

        // Resume reading: everything written arrives.
        try await serverChild.eventLoop.submit {
            serverChild.setOption(.autoRead, value: true).whenComplete { _ in }
            serverChild.read()
        }.get()
        var arrived = 0
        for _ in 0..<600 where arrived < written {
            try await Task.sleep(for: .milliseconds(50))
            arrived = try await serverChild.eventLoop.submit {
                try serverChild.pipeline.syncOperations.handler(type: PausedSink.self).received
            }.get()
        }
        #expect(arrived == written)
        try await client.close()
        try await server.close()
    }
}
