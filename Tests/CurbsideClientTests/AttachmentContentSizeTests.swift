import CurbsideWire
import Foundation
import Testing

@testable import CurbsideClient

/// The size `inbox` and `show` print for an attachment is the decrypted file's, worked out from the age file's
/// length alone: checked at age's STREAM chunk edges (64 KiB), as the STREAM tests are.
struct AttachmentContentSizeTests {
    static let chunk = AgeEncryptor.chunkSize

    @Test(arguments: [0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk, 2 * chunk + 500, 3 * chunk - 1])
    func theContentSizeIsWhatTheFileDecryptsTo(_ size: Int) throws {
        var encryptor = try AgeEncryptor(recipient: AgreementKey.Private().publicKey)
        let plaintext = (0..<size).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let file = encryptor.header + (try encryptor.update(plaintext)) + (try encryptor.finish())
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("content-size-\(UUID()).age").path
        try Data(file).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(AttachmentFiles.contentSize(ofEncryptedFile: path) == UInt64(size))
    }

    @Test func somethingThatIsNotAgeHasNoContentSize() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("content-size-\(UUID()).jpg").path
        try Data(Array("not an age file at all\n".utf8)).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(AttachmentFiles.contentSize(ofEncryptedFile: path) == nil)
        #expect(AttachmentFiles.contentSize(ofEncryptedFile: path + ".missing") == nil)
    }
}
