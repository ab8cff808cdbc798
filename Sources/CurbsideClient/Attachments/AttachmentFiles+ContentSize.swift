import CurbsideWire
import Foundation

extension AttachmentFiles {
    /// The size of what the age file at `path` decrypts to, worked out from its header's length and its own size
    /// without decrypting it (age's STREAM: a 16-byte nonce, then 64 KiB chunks each followed by a 16-byte tag);
    /// nil when the file cannot be read or does not look like age.
    static func contentSize(ofEncryptedFile path: String) -> UInt64? {
        guard let input = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? input.close() }
        guard let size = try? input.seekToEnd(), (try? input.seek(toOffset: 0)) != nil,
            let head = try? input.read(upToCount: AgeDecryptor.maximumHeaderSize).map(Array.init)
        else { return nil }
        // The header ends with the line "--- MAC\n".
        let marker = Array("\n--- ".utf8)
        guard let macLine = head.indices.dropLast(marker.count).first(where: { head[$0..<($0 + marker.count)].elementsEqual(marker) }),
            let end = head[(macLine + marker.count)...].firstIndex(of: UInt8(ascii: "\n"))
        else { return nil }
        let payload = size - UInt64(end + 1)
        let nonce: UInt64 = 16, tag = UInt64(ChaChaPoly.tagByteCount), chunk = UInt64(AgeEncryptor.chunkSize)
        guard payload >= nonce + tag else { return nil }
        let sealed = payload - nonce
        let chunks = (sealed + chunk + tag - 1) / (chunk + tag)
        return sealed - chunks * tag
    }
}
