import CurbsideTLS
import Foundation
import NIOCore
import NIOEmbedded
import NIOTLS
import Testing

/// Writes `reply` when the handshake completes, from inside the event.
final class WriteOnHandshake: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let reply: ByteBuffer

    init(_ reply: ByteBuffer) {
        self.reply = reply
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is TLSHandshakeCompletedEvent {
            context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}

@Suite("TLS edge cases")
struct TLSEdgeCaseTests {
    @Test(arguments: ["", String(repeating: "h", count: 300)])
    func unusableHostNameIsAnErrorNotACrash(_ host: String) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-host-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try TestIdentity.server.write(certificatePath: "\(directory)/ca.pem", privateKeyPath: "\(directory)/key.pem")
        let context = try TLSContext(
            configuration: .client(
                trust: .certificateAuthorities(pemFile: "\(directory)/ca.pem", hostName: host),
                applicationProtocols: TestIdentity.alpn
            )
        )
        let error = #expect(throws: TLSError.self) { try TLSHandler(context: context) }
        #expect(error?.code == .invalidConfiguration)
    }

    @Test func writesFromTheHandshakeEventFollowBufferedWrites() throws {
        let pair = try BackToBack()
        try pair.client.pipeline.syncOperations.addHandler(
            WriteOnHandshake(ByteBuffer(string: "second")),
            position: .before(pair.clientRecorder)
        )
        try pair.activate()
        pair.client.writeAndFlush(ByteBuffer(string: "first,"), promise: nil)
        try pair.interact()
        #expect(pair.serverRecorder.received == ByteBuffer(string: "first,second"))
    }

    @Test func clientWithoutALPNIsRefused() throws {
        let pair = try BackToBack(client: TestIdentity.clientContext(alpn: []))
        try pair.handshake()
        #expect(pair.serverRecorder.tlsErrors.map(\.code) == [.handshakeFailed])
        #expect(pair.serverRecorder.handshake == nil)
        #expect(!pair.server.isActive)
    }

    @Test func emptyWriteCompletesInOrder() throws {
        let pair = try BackToBack()
        try pair.handshake()
        var order: [String] = []
        let first = pair.client.write(ByteBuffer(string: "data"))
        let empty = pair.client.write(ByteBuffer())
        first.whenComplete { _ in order.append("first") }
        empty.whenComplete { _ in order.append("empty") }
        pair.client.flush()
        try pair.interact()
        #expect(order == ["first", "empty"])
    }

    @Test func inboundRecordsDoNotFlushTheApplicationsWrites() throws {
        let pair = try BackToBack()
        try pair.handshake()
        pair.client.write(ByteBuffer(string: "not yet"), promise: nil)  // written, not flushed
        try pair.server.writeAndFlush(ByteBuffer(string: "hello")).wait()
        try pair.interact()
        #expect(pair.clientRecorder.received == ByteBuffer(string: "hello"))
        #expect(pair.serverRecorder.received.readableBytes == 0, "the client's write must wait for its flush")
        pair.client.flush()
        try pair.interact()
        #expect(pair.serverRecorder.received == ByteBuffer(string: "not yet"))
    }

    @Test func onlyFlushedBufferedWritesAreFlushedAfterTheHandshake() throws {
        let pair = try BackToBack()
        try pair.activate()
        pair.client.writeAndFlush(ByteBuffer(string: "flushed;"), promise: nil)
        pair.client.write(ByteBuffer(string: "unflushed"), promise: nil)
        try pair.interact()
        #expect(pair.serverRecorder.received == ByteBuffer(string: "flushed;"))
        pair.client.flush()
        try pair.interact()
        #expect(pair.serverRecorder.received == ByteBuffer(string: "flushed;unflushed"))
    }

    /// Past the limit the connection fails as a whole: a stream never continues after a write it dropped (writers
    /// such as NIOAsyncChannel pass no promise and would not notice a hole).
    @Test func writesBeforeTheHandshakeAreBoundedAndTheLimitFailsTheConnection() throws {
        let pair = try BackToBack()
        try pair.activate()
        let fits = pair.client.write(ByteBuffer(repeating: 1, count: TLSHandler.maximumBufferedPlaintext))
        let over = pair.client.write(ByteBuffer(repeating: 2, count: 1))
        let error = #expect(throws: TLSError.self) { try over.wait() }
        #expect(error?.code == .bufferLimit)
        let buffered = #expect(throws: TLSError.self) { try fits.wait() }
        #expect(buffered?.code == .bufferLimit)
        let later = pair.client.writeAndFlush(ByteBuffer(repeating: 3, count: 10))
        try? pair.interact()
        #expect(throws: (any Error).self) { try later.wait() }
        #expect(!pair.client.isActive)
        #expect(pair.clientRecorder.tlsErrors.map(\.code).contains(.bufferLimit))
        #expect(pair.serverRecorder.received.readableBytes == 0)
    }

    @Test func writesUpToTheLimitBeforeTheHandshakeAllArrive() throws {
        let pair = try BackToBack()
        try pair.activate()
        let fits = pair.client.write(ByteBuffer(repeating: 1, count: TLSHandler.maximumBufferedPlaintext - 1))
        let last = pair.client.write(ByteBuffer(repeating: 2, count: 1))
        pair.client.flush()
        try pair.interact()
        try fits.wait()
        try last.wait()
        #expect(pair.serverRecorder.received.readableBytes == TLSHandler.maximumBufferedPlaintext)
        #expect(pair.serverRecorder.received.getInteger(at: TLSHandler.maximumBufferedPlaintext - 1, as: UInt8.self) == 2)
    }

    @Test func encryptedKeyFileIsRefusedWithoutPrompting() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-enc-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try shell(
            "openssl genpkey -algorithm ed25519 -aes-256-cbc -pass pass:secret -out \(directory)/key.pem </dev/null 2>&1"
        )
        try #require(made.status == 0, "\(made.output)")
        let error = #expect(throws: TLSError.self) { try TLSPrivateKey(pemFile: "\(directory)/key.pem") }
        #expect(error?.code == .certificateError)
    }
}

@Suite("TLS half-close")
struct TLSHalfCloseTests {
    @Test func closingOutputSendsCloseNotifyAndKeepsReading() throws {
        let pair = try BackToBack()
        try pair.handshake()
        pair.client.writeAndFlush(ByteBuffer(string: "last words"), promise: nil)
        pair.client.close(mode: .output, promise: nil)
        let late = pair.client.writeAndFlush(ByteBuffer(string: "too late"))
        #expect(throws: TLSError.self) { try late.wait() }
        try pair.interact()
        // The server got the data, then the close_notify: it answers and closes cleanly, with no error.
        #expect(pair.serverRecorder.received == ByteBuffer(string: "last words"))
        #expect(pair.serverRecorder.errors.isEmpty)
        #expect(!pair.server.isActive)
    }
}

/// Counts the flushes that reach the socket: each is one system call on a real connection.
private final class CiphertextFlushCounter: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    var flushes = 0

    func flush(context: ChannelHandlerContext) {
        flushes += 1
        context.flush()
    }
}

extension TLSEdgeCaseTests {
    /// The client's Finished and what it writes as it hears of the handshake leave in one flush (one system call,
    /// one segment), so the peer reads the handshake's end and the request together.
    @Test func whatIsWrittenOnTheHandshakeEventLeavesWithTheFinished() throws {
        let pair = try BackToBack()
        let counter = CiphertextFlushCounter()
        try pair.client.pipeline.syncOperations.addHandler(counter, position: .first)
        try pair.client.pipeline.syncOperations.addHandler(
            WriteOnHandshake(ByteBuffer(string: "first request")),
            position: .before(pair.clientRecorder)
        )
        try pair.activate()
        #expect(counter.flushes == 1, "the ClientHello")
        try pair.interact()
        #expect(counter.flushes == 2, "the Finished and the request together")
        #expect(pair.serverRecorder.received == ByteBuffer(string: "first request"))
    }
}
