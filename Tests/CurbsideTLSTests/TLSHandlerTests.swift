import CurbsideTLS
import NIOCore
import NIOEmbedded
import NIOTLS
import Testing

@Suite("TLS handler back to back")
struct TLSHandlerTests {
    @Test func handshakeReportsALPNAndEqualChannelBindings() throws {
        let pair = try BackToBack()
        try pair.handshake()
        let client = try #require(pair.clientRecorder.handshake)
        let server = try #require(pair.serverRecorder.handshake)
        #expect(client.negotiatedProtocol == "curbside/1")
        #expect(server.negotiatedProtocol == "curbside/1")
        #expect(pair.clientRecorder.alpnEvent == .handshakeCompleted(negotiatedProtocol: "curbside/1"))
        #expect(client.channelBinding.count == 32)
        #expect(client.channelBinding == server.channelBinding)
        #expect(client.peerPublicKeyFingerprint == TestIdentity.server.certificate.publicKeyFingerprint)
        let a = try pair.clientHandler.exportKeyingMaterial(label: "EXPORTER-curbside-test", context: [1, 2], length: 48)
        let b = try pair.serverHandler.exportKeyingMaterial(label: "EXPORTER-curbside-test", context: [1, 2], length: 48)
        #expect(a == b && a.count == 48)

        // Another connection between the same two ends has a different binding.
        let again = try BackToBack()
        try again.handshake()
        #expect(again.clientRecorder.handshake?.channelBinding != client.channelBinding)
    }

    @Test(arguments: [1, 2, 100, 16_383, 16_384, 16_385, 65_536, 1 << 20])
    func dataBothWays(_ size: Int) throws {
        let pair = try BackToBack()
        try pair.handshake()
        try pair.client.writeAndFlush(ByteBuffer.pattern(size, seed: 1)).wait()
        try pair.server.writeAndFlush(ByteBuffer.pattern(size, seed: 2)).wait()
        try pair.interact()
        #expect(pair.serverRecorder.received == ByteBuffer.pattern(size, seed: 1))
        #expect(pair.clientRecorder.received == ByteBuffer.pattern(size, seed: 2))
        // No read hands out more than one record of plaintext.
        #expect(pair.serverRecorder.readSizes.allSatisfy { $0 <= 16_384 })
        #expect(pair.clientRecorder.errors.isEmpty && pair.serverRecorder.errors.isEmpty)
    }

    @Test func writesBeforeTheHandshakeAreBufferedThenSentInOrder() throws {
        let pair = try BackToBack()
        try pair.activate()  // the ClientHello is out; nothing has come back
        let first = pair.client.write(ByteBuffer.pattern(10, seed: 3))
        let second = pair.client.writeAndFlush(ByteBuffer.pattern(70_000, seed: 4))
        #expect(pair.clientHandler.bufferedPlaintextByteCount == 70_010)
        try pair.interact()
        try first.wait()
        try second.wait()
        #expect(pair.clientHandler.bufferedPlaintextByteCount == 0)
        var expected = ByteBuffer.pattern(10, seed: 3)
        var tail = ByteBuffer.pattern(70_000, seed: 4)
        expected.writeBuffer(&tail)
        #expect(pair.serverRecorder.received == expected)
    }

    /// Writes flushed together leave in one record, not a record each (5 bytes of header, the content type and a
    /// 16-byte tag per record), each write's promise kept; a write larger than a record still leaves whole.
    @Test func writesFlushedTogetherShareARecord() throws {
        let pair = try BackToBack()
        try pair.handshake()
        let writes = (0..<3).map { pair.client.write(ByteBuffer.pattern(10, seed: UInt8($0))) }
        let unpromised: EventLoopPromise<Void>? = nil
        pair.client.write(ByteBuffer.pattern(10, seed: 3), promise: unpromised)
        pair.client.flush()
        var ciphertext = 0
        var records: [ByteBuffer] = []
        while let out = try pair.client.readOutbound(as: ByteBuffer.self) {
            ciphertext += out.readableBytes
            records.append(out)
        }
        #expect(ciphertext == 40 + 22)
        for write in writes { try write.wait() }
        for record in records { try pair.server.writeInbound(record) }
        var expected = ByteBuffer()
        for seed in 0..<4 { expected.writeImmutableBuffer(ByteBuffer.pattern(10, seed: UInt8(seed))) }
        #expect(pair.serverRecorder.received == expected)

        // Written but not flushed when the connection closes: sent before close_notify.
        pair.client.write(ByteBuffer.pattern(100, seed: 9), promise: nil)
        let closed = pair.client.close()
        try pair.interact()
        try pair.interact()
        try closed.wait()
        expected.writeImmutableBuffer(ByteBuffer.pattern(100, seed: 9))
        #expect(pair.serverRecorder.received == expected)
        #expect(pair.clientRecorder.errors.isEmpty && pair.serverRecorder.errors.isEmpty)
    }

    /// Unflushed writes are held only up to a record's worth: past it they are encrypted and passed down before any
    /// flush, so that the channel's writability counts them. (When they were all held until the flush, a writer that
    /// writes while the channel is writable and flushes afterwards, as the TLS bulk bench does, never saw the channel
    /// turn unwritable and piled up its whole output; tls_bulk fell from 1.03 to 0.46 of C.)
    @Test func writesPastARecordLeaveBeforeTheFlush() throws {
        let pair = try BackToBack()
        try pair.handshake()
        let counter = OutboundByteCounter()
        try pair.client.pipeline.syncOperations.addHandler(counter, position: .first)
        pair.client.write(ByteBuffer.pattern(100, seed: 1), promise: nil)
        #expect(counter.bytes == 0)
        for seed in 2..<6 { pair.client.write(ByteBuffer.pattern(8 * 1024, seed: UInt8(seed)), promise: nil) }
        #expect(counter.bytes > 32 * 1024)
        pair.client.flush()
        try pair.interact()
        var expected = ByteBuffer.pattern(100, seed: 1)
        for seed in 2..<6 { expected.writeImmutableBuffer(ByteBuffer.pattern(8 * 1024, seed: UInt8(seed))) }
        #expect(pair.serverRecorder.received == expected)
    }

    /// After the handshake the handler keeps no plaintext past a flush: each write leaves as ciphertext then.
    @Test func handlerHoldsNoPlaintextAfterTheHandshake() throws {
        let pair = try BackToBack()
        try pair.handshake()
        for size in [1, 5_000, 1 << 20] {
            pair.client.write(ByteBuffer.pattern(size), promise: nil)
            #expect(pair.clientHandler.bufferedPlaintextByteCount == 0)
            pair.client.flush()
            var ciphertext = 0
            while let out = try pair.client.readOutbound(as: ByteBuffer.self) { ciphertext += out.readableBytes }
            #expect(ciphertext > size, "all \(size) bytes left as records")
        }
    }

    @Test func flippedCiphertextByteFailsTheConnection() throws {
        let pair = try BackToBack()
        try pair.handshake()
        pair.client.writeAndFlush(ByteBuffer.pattern(1000), promise: nil)
        try pair.interact { bytes in
            let index = bytes.readerIndex + bytes.readableBytes / 2
            bytes.setInteger(bytes.getInteger(at: index, as: UInt8.self)! ^ 0x01, at: index)
        }
        #expect(pair.serverRecorder.tlsErrors.map(\.code) == [.protocolError])
        #expect(pair.serverRecorder.received.readableBytes == 0)
        #expect(!pair.server.isActive)
    }

    @Test(arguments: [true, false])
    func closeNotifyEitherDirection(_ clientCloses: Bool) throws {
        let pair = try BackToBack()
        try pair.handshake()
        let (closer, other) = clientCloses ? (pair.client, pair.server) : (pair.server, pair.client)
        let closed = closer.close()
        try pair.interact()
        #expect(!other.isActive)  // answered the close_notify and closed
        try pair.interact()
        try closed.wait()
        #expect(!closer.isActive)
        #expect(pair.clientRecorder.errors.isEmpty && pair.serverRecorder.errors.isEmpty)
        let late = closer.writeAndFlush(ByteBuffer.pattern(3))
        #expect(throws: (any Error).self) { try late.wait() }
    }

    @Test func handshakeTimeoutFires() throws {
        let pair = try BackToBack(server: TestIdentity.serverContext(timeout: .milliseconds(500)))
        try pair.server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        pair.server.embeddedEventLoop.advanceTime(by: .milliseconds(499))
        #expect(pair.server.isActive)
        pair.server.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(pair.serverRecorder.tlsErrors.map(\.code) == [.handshakeTimeout])
        #expect(!pair.server.isActive)
    }

    @Test func wrongPinFailsNamingBothFingerprints() throws {
        let wrong = TestIdentity.other.certificate.publicKeyFingerprint
        let pair = try BackToBack(client: TestIdentity.clientContext(pins: [wrong]))
        try pair.handshake()
        let error = try #require(pair.clientRecorder.tlsErrors.first)
        #expect(error.code == .pinMismatch)
        #expect(error.detail.contains(wrong.description))
        #expect(error.detail.contains(TestIdentity.server.certificate.publicKeyFingerprint.description))
        #expect(pair.clientRecorder.handshake == nil && pair.serverRecorder.handshake == nil)
    }

    @Test func alpnMismatchFailsTheHandshake() throws {
        let pair = try BackToBack(client: TestIdentity.clientContext(alpn: ["h2"]))
        try pair.handshake()
        #expect(pair.serverRecorder.tlsErrors.map(\.code) == [.handshakeFailed])
        #expect(pair.clientRecorder.tlsErrors.map(\.code) == [.handshakeFailed])
    }

    @Test func keyUpdateKeepsTheConnectionWorking() throws {
        let pair = try BackToBack()
        try pair.handshake()
        pair.clientHandler.requestKeyUpdate(context: try pair.client.pipeline.syncOperations.context(handler: pair.clientHandler))
        // The client's KeyUpdate leaves at once, and the server answers with its own, with no application data.
        let keyUpdate = try #require(try pair.client.readOutbound(as: ByteBuffer.self))
        try pair.server.writeInbound(keyUpdate)
        let answer = try #require(try pair.server.readOutbound(as: ByteBuffer.self))
        try pair.client.writeInbound(answer)
        #expect(pair.serverRecorder.received.readableBytes == 0 && pair.clientRecorder.received.readableBytes == 0)
        try pair.server.writeAndFlush(ByteBuffer.pattern(5000, seed: 9)).wait()
        try pair.client.writeAndFlush(ByteBuffer.pattern(5000, seed: 8)).wait()
        try pair.interact()
        #expect(pair.clientRecorder.received == ByteBuffer.pattern(5000, seed: 9))
        #expect(pair.serverRecorder.received == ByteBuffer.pattern(5000, seed: 8))
        #expect(pair.clientRecorder.errors.isEmpty && pair.serverRecorder.errors.isEmpty)
    }
}

/// Counts the bytes written past it toward the socket (ciphertext, when it sits below a TLS handler).
private final class OutboundByteCounter: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private(set) var bytes = 0

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        bytes += unwrapOutboundIn(data).readableBytes
        context.write(data, promise: promise)
    }
}
