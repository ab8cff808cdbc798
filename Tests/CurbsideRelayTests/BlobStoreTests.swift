import CurbsideTestSupport
import CurbsideWire
import Foundation
import Testing

@testable import CurbsideRelay

@Suite("attachment blobs")
struct BlobStoreTests {
    static let chunk = 64 * 1024

    func temporaryRoot() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-blobs-\(UUID())").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func content(_ size: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return rng.bytes(size)
    }

    /// Sizes at the STREAM chunk edges, uploaded in several step sizes, with a restart (a new BlobStore over the same
    /// directory) in the middle: the relay's offset is where the client resumes.
    @Test(arguments: [1, chunk - 1, chunk, chunk + 1, 2 * chunk + 500], [1000, 4096, chunk, 3 * chunk])
    func uploadsResumeAtAnyOffsetAndCommit(_ size: Int, _ step: Int) async throws {
        let root = try temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let bytes = Self.content(size, seed: UInt64(size))
        let sha256 = SHA256.hash(bytes)
        let id: Int64 = 7
        var store = try BlobStore(root: root)
        var offset = 0
        var restarted = false
        while offset < size {
            let end = min(offset + step, size)
            try await store.write(Array(bytes[offset..<end]), at: UInt64(offset), to: id, declaredSize: UInt64(size))
            offset = end
            if !restarted, offset >= size / 2 {
                store = try BlobStore(root: root)  // the relay restarts mid-upload
                restarted = true
                offset = Int(try #require(try await store.progress(id)))
            }
        }
        #expect(try await store.progress(id) == UInt64(size))
        try await store.commit(id, declaredSize: UInt64(size), sha256: sha256)
        #expect(try await store.read(id, from: 0, length: size + 10) == bytes)
        let middle = size / 3
        #expect(try await store.read(id, from: UInt64(middle), length: 777) == Array(bytes[middle..<min(middle + 777, size)]))
    }

    @Test func wrongOffsetsAndOversizeChunksAreRefusedWithWhatTheRelayHolds() async throws {
        let root = try temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try BlobStore(root: root)
        let bytes = Self.content(10_000, seed: 1)
        let id: Int64 = 1
        try await store.write(Array(bytes[0..<4000]), at: 0, to: id, declaredSize: 10_000)
        await #expect(throws: BlobStore.Failure.offsetMismatch(held: 4000)) {
            try await store.write(Array(bytes[5000..<6000]), at: 5000, to: id, declaredSize: 10_000)
        }
        await #expect(throws: BlobStore.Failure.offsetMismatch(held: 4000)) {
            try await store.write(Array(bytes[0..<10]), at: 0, to: id, declaredSize: 10_000)
        }
        await #expect(throws: BlobStore.Failure.beyondDeclaredSize(declared: 10_000)) {
            try await store.write(bytes + [0], at: 4000, to: id, declaredSize: 10_000)
        }
        await #expect(throws: BlobStore.Failure.incomplete(held: 4000, declared: 10_000)) {
            try await store.commit(id, declaredSize: 10_000, sha256: SHA256.hash(bytes))
        }
        #expect(try await store.progress(id) == 4000, "refused chunks changed nothing")
        await #expect(throws: BlobStore.Failure.unknown) { try await store.read(id, from: 0, length: 1) }
    }

    @Test func bytesThatAreNotTheirNameAreDiscardedAtCommit() async throws {
        let root = try temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try BlobStore(root: root)
        let claimed: Int64 = 3
        try await store.write([9, 9, 9], at: 0, to: claimed, declaredSize: 3)
        await #expect(throws: BlobStore.Failure.hashMismatch) {
            try await store.commit(claimed, declaredSize: 3, sha256: SHA256.hash([1, 2, 3]))
        }
        #expect(try await store.progress(claimed) == nil, "the bad upload is gone; a retry starts at 0")
    }

    @Test func committedBlobsSurviveARestartAndCanBeDeleted() async throws {
        let root = try temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let bytes = Self.content(70_000, seed: 2)
        let id: Int64 = 42
        do {
            let store = try BlobStore(root: root)
            try await store.write(bytes, at: 0, to: id, declaredSize: 70_000)
            try await store.commit(id, declaredSize: 70_000, sha256: SHA256.hash(bytes))
            try await store.commit(id, declaredSize: 70_000, sha256: SHA256.hash(bytes))  // idempotent
        }
        let reopened = try BlobStore(root: root)
        #expect(try await reopened.read(id, from: 69_990, length: 100) == Array(bytes[69_990...]))
        let keyMode = try FileManager.default.attributesOfItem(atPath: "\(root)/complete/\(id)")[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        try await reopened.delete([id])
        #expect(try await reopened.progress(id) == nil)
    }

    @Test func aChunkAfterTheFirstNeverCreatesAnUpload() async throws {
        let root = try temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try BlobStore(root: root)
        await #expect(throws: BlobStore.Failure.offsetMismatch(held: 0)) {
            try await store.write([1, 2, 3], at: 10, to: 5, declaredSize: 100)
        }
        #expect(try await store.progress(5) == nil)
    }

    @Test func filesTheStoreForgotAreRemovedAndOthersKept() async throws {
        let root = try temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try BlobStore(root: root)
        for key: Int64 in 1...4 { try await store.write([UInt8(key)], at: 0, to: key, declaredSize: 1) }
        try await store.commit(2, declaredSize: 1, sha256: SHA256.hash([2]))
        let files = try await store.fileKeys()
        #expect(files == [1, 2, 3, 4])
        #expect(try await store.removeFiles(files, notIn: [1, 2]) == 2)
        #expect(try await store.progress(1) == 1)
        #expect(try await store.progress(2) == 1)
        #expect(try await store.progress(3) == nil)
        #expect(try await store.progress(4) == nil)
    }

    /// The hash is taken in as chunks are written, and commit uses it only when it followed every byte from offset 0:
    /// a wrong hash is still refused (and forgotten with the file), an upload begun by an earlier store is hashed from
    /// its file, and a new upload after a refused one starts a new hash.
    @Test func commitTrustsARunningHashOnlyWhenItCoversTheWholeFile() async throws {
        let root = try temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let bytes = Self.content(3 * Self.chunk + 17, seed: 11)
        let size = UInt64(bytes.count)
        let store = try BlobStore(root: root)
        func upload(_ id: Int64, through store: BlobStore, from start: Int = 0, to end: Int? = nil) async throws {
            var offset = start
            while offset < (end ?? bytes.count) {
                let next = min(offset + Self.chunk, end ?? bytes.count)
                try await store.write(Array(bytes[offset..<next]), at: UInt64(offset), to: id, declaredSize: size)
                offset = next
            }
        }

        try await upload(1, through: store)
        #expect(store._testOnly_runningHashCount == 1)
        await #expect(throws: BlobStore.Failure.hashMismatch) {
            try await store.commit(1, declaredSize: size, sha256: SHA256.hash(Array(bytes.dropLast()) + [0]))
        }
        #expect(store._testOnly_runningHashCount == 0)
        #expect(try await store.progress(1) == nil, "the refused bytes are gone")
        try await upload(1, through: store)
        try await store.commit(1, declaredSize: size, sha256: SHA256.hash(bytes))
        #expect(store._testOnly_runningHashCount == 0)
        #expect(try await store.read(1, from: 0, length: bytes.count) == bytes)

        // Half written by a store that is gone (a relay restart): the new store has no hash of it and reads the file.
        let earlier = try BlobStore(root: root)
        try await upload(2, through: earlier, to: bytes.count / 2)
        try await upload(2, through: store, from: bytes.count / 2)
        #expect(store._testOnly_runningHashCount == 0, "no hash of bytes it did not write")
        await #expect(throws: BlobStore.Failure.hashMismatch) {
            try await store.commit(2, declaredSize: size, sha256: SHA256.hash(Array(bytes.reversed())))
        }
        try await upload(2, through: earlier)
        try await store.commit(2, declaredSize: size, sha256: SHA256.hash(bytes))
        #expect(try await store.read(2, from: 0, length: bytes.count) == bytes)

        // A deleted upload's hash goes with it.
        try await upload(3, through: store, to: Self.chunk)
        #expect(store._testOnly_runningHashCount == 1)
        try await store.delete([3])
        #expect(store._testOnly_runningHashCount == 0)
    }

    /// Concurrent writers at the same offset: exactly one chunk is taken, the other is told what the relay holds.
    @Test func concurrentChunksAtOneOffsetAreTakenOnce() async throws {
        let root = try temporaryRoot()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try BlobStore(root: root)
        try await store.write([0], at: 0, to: 9, declaredSize: 1 + 8 * 1000)
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for n in 0..<8 {
                group.addTask {
                    do {
                        try await store.write([UInt8](repeating: UInt8(n), count: 1000), at: 1, to: 9, declaredSize: 1 + 8 * 1000)
                        return true
                    } catch BlobStore.Failure.offsetMismatch(let held) {
                        #expect(held == 1001)
                        return false
                    }
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.filter { $0 }.count == 1)
        #expect(try await store.progress(9) == 1001)
    }
}
