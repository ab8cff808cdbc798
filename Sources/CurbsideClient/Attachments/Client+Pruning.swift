import CurbsideWire
import Foundation
import GRDB

extension Client {
    /// Deletes the encrypted copies of sent attachments that are no longer needed — the message left the outbox
    /// and its recipient's device has it (`delivered_to_device`, `delivered`) or the relay dropped it (`expired`) —
    /// and marks them `discarded`. Run after notices and receipts are applied, so a profile does not grow with
    /// every file sent.
    func discardDeliveredAttachments() async throws {
        _ = try await discardSentCopies(storedBefore: nil)
    }

    /// Frees what the profile no longer needs and says how much: the encrypted copies of sent attachments that
    /// were delivered or expired, or that the relay stored before `sentStoredBefore` (milliseconds since 1970; the
    /// relay's envelope lifetime is 14 days by default, after which it holds them no more), and files in the
    /// attachments folder that no message refers to. Received attachments are kept.
    public func prune(sentStoredBefore: UInt64? = nil) async throws -> PruneReport {
        var report = try await discardSentCopies(storedBefore: sentStoredBefore.map { Int64(clamping: $0) })
        let directory = attachmentsDirectory.path
        let referenced = try await database.writer.read { db in try AttachmentStore.allPaths(db) }
        let dayAgo = Date().addingTimeInterval(-86_400)
        // Only files at least a day old: a send, an inbox or a watch running now may be writing a newer one.
        let leftovers = try await BlockingWork.run { () -> [(String, UInt64)] in
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            var found: [(String, UInt64)] = []
            for name in names {
                let path = (directory as NSString).appendingPathComponent(name)
                // A .lock or .part file belongs to the .age file its name ends in; a .part is a download that stalled.
                let owner =
                    name.hasSuffix(".lock") || name.hasSuffix(".part") ? (path as NSString).deletingPathExtension : path
                guard name.hasSuffix(".age") || name.hasSuffix(".part") || name.hasSuffix(".lock"),
                    name.hasSuffix(".part") || !referenced.contains(owner),
                    let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                    let modified = attributes[.modificationDate] as? Date, modified < dayAgo
                else { continue }
                found.append((path, (attributes[.size] as? NSNumber)?.uint64Value ?? 0))
            }
            return found
        }
        for (path, size) in leftovers where unlink(path) == 0 {
            report.leftovers += 1
            report.bytes += size
        }
        return report
    }

    private func discardSentCopies(storedBefore: Int64?) async throws -> PruneReport {
        let releasable = try await database.writer.read { db in
            try AttachmentStore.releasable(db, storedBefore: storedBefore)
        }
        var report = PruneReport()
        for file in releasable {
            try await database.writer.write { db in
                try AttachmentStore.setState(db, file.id, index: file.index, .discarded)
            }
            if unlink(file.path) == 0 {
                report.sentCopies += 1
                report.bytes += file.size
            }
        }
        if report.sentCopies > 0 {
            logger.debug("attachments: \(report.sentCopies) sent copies discarded, \(report.bytes) bytes")
        }
        return report
    }
}
