import CurbsideTLS
import NIOCore
import NIOEmbedded
import Testing

/// Keeps every buffer it is handed as it is, without copying: a reused read buffer must never change them.
final class KeepingRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var buffers: [ByteBuffer] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        buffers.append(unwrapInboundIn(data))
        context.fireChannelRead(data)
    }

    var joined: ByteBuffer {
        var all = ByteBuffer()
        for var buffer in buffers { all.writeBuffer(&buffer) }
        return all
    }
}

/// The ByteBuffer BIO under the handler: ciphertext kept across partial records, records written straight out.
@Suite("TLS ByteBuffer BIO")
struct ByteBufferBIOTests {
    /// All the client's pending ciphertext, as one buffer.
    private func clientCiphertext(_ pair: BackToBack) throws -> ByteBuffer {
        var all = ByteBuffer()
        while var bytes = try pair.client.readOutbound(as: ByteBuffer.self) { all.writeBuffer(&bytes) }
        return all
    }

    /// Hands `ciphertext` to the server `step` bytes at a time.
    private func deliver(_ ciphertext: ByteBuffer, to pair: BackToBack, step: Int) throws {
        var rest = ciphertext
        while rest.readableBytes > 0, pair.server.isActive {
            try pair.server.writeInbound(rest.readSlice(length: min(step, rest.readableBytes))!)
            pair.server.pipeline.fireChannelReadComplete()
        }
    }

    @Test(arguments: [1, 2, 5, 6, 7, 1000, 16_405, 16_406, 16_407, 40_000])
    func recordsSplitAtAnyByteArriveWhole(_ step: Int) throws {
        let pair = try BackToBack()
        try pair.handshake()
        let sizes = step <= 2 ? [1, 300, 16_385] : [1, 300, 16_384, 16_385, 70_000]
        var sent = ByteBuffer()
        for (index, size) in sizes.enumerated() {
            let piece = ByteBuffer.pattern(size, seed: UInt8(index))
            sent.writeImmutableBuffer(piece)
            pair.client.write(piece, promise: nil)
        }
        pair.client.flush()
        try deliver(try clientCiphertext(pair), to: pair, step: step)
        #expect(pair.serverRecorder.received == sent)
        #expect(pair.serverRecorder.readSizes.allSatisfy { $0 <= 16_384 })
        #expect(pair.serverRecorder.errors.isEmpty)
    }

    @Test func buffersHandedOnAreNeverOverwrittenByLaterRecords() throws {
        let pair = try BackToBack()
        let keeper = KeepingRecorder()
        try pair.server.pipeline.syncOperations.addHandler(keeper, position: .before(pair.serverRecorder))
        try pair.handshake()
        let sent = ByteBuffer.pattern(5 * 16_384 + 17, seed: 9)
        try pair.client.writeAndFlush(sent).wait()
        // All five records in one read: the handler decrypts them one after another in one burst.
        try pair.server.writeInbound(try clientCiphertext(pair))
        #expect(keeper.buffers.count == 6)
        #expect(keeper.joined == sent)
        #expect(pair.serverRecorder.received == sent)
    }

    @Test func largeWriteArrivesIntact() throws {
        let pair = try BackToBack()
        try pair.handshake()
        let sent = ByteBuffer.pattern(8 << 20, seed: 3)
        try pair.client.writeAndFlush(sent).wait()
        let ciphertext = try clientCiphertext(pair)
        // 512 records of 16 KiB, each with its 5-byte header, content type and 16-byte tag.
        #expect(ciphertext.readableBytes == (8 << 20) + 512 * 22)
        try deliver(ciphertext, to: pair, step: 65_536)
        #expect(pair.serverRecorder.received == sent)
        #expect(pair.serverRecorder.errors.isEmpty)
    }

    @Test func bothEndsLetOpenSSLReleaseIdleRecordBuffers() throws {
        let pair = try BackToBack()
        try pair.handshake()
        #expect(pair.clientHandler._testOnly_releasesRecordBuffers)
        #expect(pair.serverHandler._testOnly_releasesRecordBuffers)
        // And the connection still carries data both ways after buffers were given up.
        let sent = ByteBuffer.pattern(40_000, seed: 7)
        try pair.client.writeAndFlush(sent).wait()
        try pair.server.writeAndFlush(sent).wait()
        try pair.interact()
        #expect(pair.serverRecorder.received == sent)
        #expect(pair.clientRecorder.received == sent)
    }

    @Test(arguments: [1, 3, 23, 4096])
    func closeNotifyInTheMiddleOfAReadEndsCleanly(_ step: Int) throws {
        let pair = try BackToBack()
        try pair.handshake()
        let sent = ByteBuffer.pattern(20_000, seed: 4)
        try pair.client.writeAndFlush(sent).wait()
        let closed = pair.client.close()
        // Data, then close_notify, then bytes that follow it: the server reads the data, answers and closes.
        var ciphertext = try clientCiphertext(pair)
        ciphertext.writeBytes([23, 3, 3, 0, 30] + [UInt8](repeating: 0xEE, count: 30))
        try deliver(ciphertext, to: pair, step: step)
        #expect(pair.serverRecorder.received == sent)
        #expect(!pair.server.isActive)
        #expect(pair.serverRecorder.errors.isEmpty)
        try pair.interact()
        try closed.wait()
        #expect(pair.clientRecorder.errors.isEmpty)
    }
}
