import CurbsideWire
import Foundation
import Testing

@testable import CurbsideClient

@Suite("preparing an attachment on two threads")
struct CiphertextSinkTests {
    /// Pieces hashed and written on the sink's thread arrive whole and in order: the prepared size and SHA-256 are
    /// the written file's, and the file decrypts to the original, across more pieces than the sink has buffers.
    @Test(arguments: [1, (1 << 20) - 1, 1 << 20, 5 * (1 << 20) + 123])
    func thePreparedDigestIsTheWrittenFile(size: Int) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sink-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let original = directory.appendingPathComponent("scan.bin").path
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) }
        try Data(bytes).write(to: URL(fileURLWithPath: original))

        let prepared = try AttachmentFiles.prepare(AttachmentSource(path: original, keepMetadata: true), into: original + ".age")
        let written = try AttachmentFiles.digest(original + ".age")
        #expect(prepared.size == written.size)
        #expect(prepared.sha256 == written.sha256)

        try AttachmentFiles.decrypt(original + ".age", identity: prepared.identity, to: original + ".out")
        #expect(try Data(contentsOf: URL(fileURLWithPath: original + ".out")) == Data(bytes))
    }

    /// A write that fails on the sink's thread is the caller's error at its next step, and nothing more is written.
    @Test func aFailedWriteReachesTheCaller() throws {
        let sink = CiphertextSink(output: try OutputFile(path: "/dev/full"), pieceCapacity: 1024)
        let buffer = try sink.nextBuffer()
        buffer.initializeMemory(as: UInt8.self, repeating: 7)
        sink.submitBuffer(count: 1024)
        sink.drain()
        #expect(throws: ClientError.self) { _ = try sink.nextBuffer() }
        sink.submit([1, 2, 3])
        #expect(throws: ClientError.self) { _ = try sink.finish() }
    }
}
