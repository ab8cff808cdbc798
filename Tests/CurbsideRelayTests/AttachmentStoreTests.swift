import CurbsideTestSupport
import CurbsideWire
import Testing

@testable import CurbsideRelay

/// The store's side of attachments: ownership, quota, references from envelopes, deletion with the last one.
@Suite("attachment records")
struct AttachmentStoreTests {
    let gp = try! Handle("amara.gp")
    let derm = try! Handle("osei.derm")
    let cardio = try! Handle("kofi.cardio")
    let now = Timestamp(millisecondsSince1970: 1_767_225_600_000)
    let image = SHA256.hash(Array("image bytes".utf8))

    func opened(_ opening: UploadOpening) throws -> StoredAttachment {
        guard case .opened(let upload) = opening else { throw RelayError(.unknownAttachment, "not opened: \(opening)") }
        return upload
    }

    func committedUpload(_ store: any RelayStore, owner: Handle, id: [UInt8], size: UInt64 = 100) async throws -> StoredAttachment {
        let upload = try opened(try await store.openUpload(owner: owner, id: id, size: size, expiresAt: now.adding(seconds: 60), quota: 1 << 30, maximumCount: 256))
        try await store.markCommitted(upload.key, expiresAt: now.adding(seconds: 60))
        return upload
    }

    func submission(_ body: String, to recipient: Handle, attachments: [[UInt8]]) -> Submission {
        Submission(
            body: Array(body.utf8),
            sender: gp,
            recipient: recipient,
            attachments: attachments,
            storedAt: now,
            expiresAt: now.adding(seconds: 3600)
        )
    }

    @Test(arguments: StoreKind.allCases) func reopeningAnswersTheSameUploadAndAnotherSizeIsRefused(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        let first = try opened(try await store.openUpload(owner: gp, id: image, size: 100, expiresAt: now, quota: 1000, maximumCount: 256))
        let again = try opened(try await store.openUpload(owner: gp, id: image, size: 100, expiresAt: now.adding(seconds: 9), quota: 1000, maximumCount: 256))
        #expect(again == first)
        guard case .sizeDiffers(let existing) = try await store.openUpload(owner: gp, id: image, size: 101, expiresAt: now, quota: 1000, maximumCount: 256) else {
            Issue.record("another size was accepted")
            return
        }
        #expect(existing.key == first.key)
        // Another account's upload of the same id is its own.
        let theirs = try opened(try await store.openUpload(owner: derm, id: image, size: 100, expiresAt: now, quota: 1000, maximumCount: 256))
        #expect(theirs.key != first.key)
    }

    /// commit_upload_as's record: renamed to its hash with its real size, replacing an uncommitted upload of that
    /// name, or forgotten beside a committed one; never another owner's or a committed upload.
    @Test(arguments: StoreKind.allCases) func aProvisionalUploadIsRenamedToItsHash(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        let provisional = SHA256.hash([0xA1])
        let upload = try opened(try await store.openUpload(owner: gp, id: provisional, size: 900, expiresAt: now, quota: 1000, maximumCount: 256))
        #expect(try await store.renameUpload(upload.key, owner: derm, to: image, size: 800) == .unknown, "another owner's")
        let begun = try opened(try await store.openUpload(owner: gp, id: image, size: 800, expiresAt: now, quota: 2000, maximumCount: 256))
        #expect(try await store.renameUpload(upload.key, owner: gp, to: image, size: 800) == .renamed(forgotten: [begun.key]))
        #expect(try await store.upload(owner: gp, id: provisional) == nil)
        let renamed = try #require(try await store.upload(owner: gp, id: image))
        #expect(renamed.key == upload.key && renamed.size == 800 && !renamed.complete)
        // The quota counts the size it was renamed with.
        #expect(try await store.openUpload(owner: gp, id: SHA256.hash([2]), size: 201, expiresAt: now, quota: 1000, maximumCount: 256) == .quotaExceeded(used: 800, count: 1))

        try await store.markCommitted(upload.key, expiresAt: now)
        #expect(try await store.renameUpload(upload.key, owner: gp, to: SHA256.hash([3]), size: 800) == .unknown, "a committed upload")
        let second = try opened(try await store.openUpload(owner: gp, id: SHA256.hash([0xA2]), size: 100, expiresAt: now, quota: 2000, maximumCount: 256))
        guard case .committedAlready(let existing, let forgotten) = try await store.renameUpload(second.key, owner: gp, to: image, size: 800) else {
            Issue.record("a second upload of a committed file was renamed")
            return
        }
        #expect(existing.key == upload.key && existing.complete && forgotten == [second.key])
        #expect(try await store.upload(owner: gp, id: SHA256.hash([0xA2])) == nil)
        #expect(try await store.attachmentKeys() == [upload.key])
    }

    @Test(arguments: StoreKind.allCases) func theQuotaCountsDeclaredSizesAndRecordsNothingWhenPassed(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        _ = try opened(try await store.openUpload(owner: gp, id: image, size: 600, expiresAt: now, quota: 1000, maximumCount: 256))
        let second = SHA256.hash([2])
        #expect(try await store.openUpload(owner: gp, id: second, size: 401, expiresAt: now, quota: 1000, maximumCount: 256) == .quotaExceeded(used: 600, count: 1))
        #expect(try await store.upload(owner: gp, id: second) == nil)
        _ = try opened(try await store.openUpload(owner: gp, id: second, size: 400, expiresAt: now, quota: 1000, maximumCount: 256))
        // Another account has its own quota.
        _ = try opened(try await store.openUpload(owner: derm, id: second, size: 1000, expiresAt: now, quota: 1000, maximumCount: 256))
    }

    @Test(arguments: StoreKind.allCases) func aSendMayNameOnlyTheSendersCommittedAttachments(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        let uncommitted = try opened(try await store.openUpload(owner: gp, id: image, size: 10, expiresAt: now, quota: 1000, maximumCount: 256))
        #expect(try await store.enqueue(submission("a", to: derm, attachments: [image])) == .unknownAttachment(image))
        let dermsOwn = SHA256.hash([9])
        _ = try await committedUpload(store, owner: derm, id: dermsOwn)
        #expect(try await store.enqueue(submission("a", to: derm, attachments: [dermsOwn])) == .unknownAttachment(dermsOwn))
        #expect(try await store.statistics().queuedEnvelopes == 0, "a refused send stores nothing")

        try await store.markCommitted(uncommitted.key, expiresAt: now.adding(seconds: 60))
        guard case .stored = try await store.enqueue(submission("a", to: derm, attachments: [image])) else {
            Issue.record("a committed attachment was refused")
            return
        }
        let referenced = try #require(try await store.upload(owner: gp, id: image))
        #expect(referenced.expiresAt == nil, "a referenced attachment lives by its envelopes")
    }

    @Test(arguments: StoreKind.allCases) func onlyTheOwnerAndRecipientsOfQueuedEnvelopesMayDownload(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        let upload = try await committedUpload(store, owner: gp, id: image)
        #expect(try await store.downloadable(image, by: gp)?.key == upload.key)
        #expect(try await store.downloadable(image, by: derm) == nil)
        _ = try await store.enqueue(submission("consult", to: derm, attachments: [image]))
        #expect(try await store.downloadable(image, by: derm)?.key == upload.key)
        #expect(try await store.downloadable(image, by: cardio) == nil)
        // An upload that is not committed is nobody's to download, not even its owner's.
        let partial = SHA256.hash([3])
        _ = try opened(try await store.openUpload(owner: gp, id: partial, size: 5, expiresAt: now, quota: 1000, maximumCount: 256))
        #expect(try await store.downloadable(partial, by: gp) == nil)
    }

    @Test(arguments: StoreKind.allCases) func anAttachmentIsForgottenWithTheLastEnvelopeThatNamesIt(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        let upload = try await committedUpload(store, owner: gp, id: image)
        _ = try await store.enqueue(submission("to derm", to: derm, attachments: [image]))
        _ = try await store.enqueue(submission("to cardio", to: cardio, attachments: [image]))
        let forDerm = try await store.pending(for: derm, after: 0, limit: 1, maximumBytes: 1 << 20)
        let first = try await store.acknowledge(forDerm.map(\.id), by: derm, now: now)
        #expect(first.notices.count == 1 && first.attachmentFiles.isEmpty, "cardio's envelope still names it")
        #expect(try await store.downloadable(image, by: cardio) != nil)
        #expect(try await store.downloadable(image, by: derm) == nil, "derm's envelope is gone")

        // cardio's envelope expires: the attachment goes with it.
        let expired = try await store.expire(now: now.adding(seconds: 3600))
        #expect(expired.notices.map(\.kind) == [.expired])
        #expect(expired.attachmentFiles == [upload.key])
        #expect(try await store.upload(owner: gp, id: image) == nil)
        #expect(try await store.attachmentKeys().isEmpty)
    }

    /// An attachment counts against the recipient's queue once for each envelope that names it (issue 14 item 10).
    @Test(arguments: StoreKind.allCases) func attachmentBytesCountForEachEnvelopeThatNamesThem(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        _ = try await committedUpload(store, owner: gp, id: image, size: 300)
        func naming(_ body: String) -> Submission {
            Submission(
                body: Array(body.utf8), sender: gp, recipient: derm, attachments: [image], storedAt: now,
                expiresAt: now.adding(seconds: 3600), maximumQueuedBytes: 1000
            )
        }
        for index in 0..<3 {
            guard case .stored = try await store.enqueue(naming("consult \(index)")) else {
                Issue.record("envelope \(index) was refused")
                return
            }
        }
        #expect(try await store.queueUsage(for: derm) == (3, 3 * (300 + 9)))
        #expect(try await store.enqueue(naming("consult 3")) == .queueFull, "a fourth 300 would pass 1,000 bytes")
        let pending = try await store.pending(for: derm, after: 0, limit: 1, maximumBytes: 1 << 20)
        _ = try await store.acknowledge(pending.map(\.id), by: derm, now: now)
        #expect(try await store.queueUsage(for: derm) == (2, 2 * (300 + 9)), "acknowledging gives the bytes back")
    }

    /// abandon_upload (spec/relay.md §Attachments): the owner's upload no envelope names is forgotten at once,
    /// committed or not; one a stored envelope names, or another account's, is left as it was.
    @Test(arguments: StoreKind.allCases) func anAbandonedUploadIsForgottenUnlessAnEnvelopeNamesIt(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        let sent = try await committedUpload(store, owner: gp, id: image)
        _ = try await store.enqueue(submission("consult", to: derm, attachments: [image]))
        let cancelled = SHA256.hash(Array("cancelled consult's photo".utf8))
        let committed = try await committedUpload(store, owner: gp, id: cancelled)
        let partial = SHA256.hash(Array("half uploaded".utf8))
        let started = try opened(try await store.openUpload(owner: gp, id: partial, size: 100, expiresAt: now.adding(seconds: 60), quota: 1 << 30, maximumCount: 256))
        let dermsOwn = try await committedUpload(store, owner: derm, id: cancelled)

        #expect(try await store.abandonUpload(owner: gp, id: cancelled) == [committed.key])
        #expect(try await store.abandonUpload(owner: gp, id: partial) == [started.key])
        #expect(try await store.upload(owner: gp, id: cancelled) == nil)
        #expect(try await store.upload(owner: gp, id: partial) == nil)
        // Named by a queued envelope: kept for it. Another account's upload of the same bytes: untouched.
        #expect(try await store.abandonUpload(owner: gp, id: image) == [])
        #expect(try await store.upload(owner: gp, id: image)?.key == sent.key)
        #expect(try await store.upload(owner: derm, id: cancelled)?.key == dermsOwn.key)
        // Twice, or never uploaded: nothing, and no error.
        #expect(try await store.abandonUpload(owner: gp, id: cancelled) == [])
        #expect(try await store.abandonUpload(owner: cardio, id: SHA256.hash([1])) == [])
    }

    @Test(arguments: StoreKind.allCases) func uploadsNoEnvelopeNamesExpire(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        let kept = try await committedUpload(store, owner: gp, id: image)
        _ = try await store.enqueue(submission("consult", to: derm, attachments: [image]))
        let unsent = try opened(try await store.openUpload(owner: gp, id: SHA256.hash([1]), size: 5, expiresAt: now.adding(seconds: 10), quota: 1000, maximumCount: 256))
        #expect(try await store.expire(now: now.adding(seconds: 9)).attachmentFiles.isEmpty)
        #expect(try await store.expire(now: now.adding(seconds: 10)).attachmentFiles == [unsent.key])
        #expect(try await store.attachmentKeys() == [kept.key])
    }

    @Test(arguments: StoreKind.allCases) func theQueueLimitIsCheckedInTheTransactionThatStores(_ kind: StoreKind) async throws {
        let store = try await kind.makeStore().withProviders()
        func limited(_ body: String) -> Submission {
            Submission(body: Array(body.utf8), sender: gp, recipient: derm, storedAt: now, expiresAt: now.adding(seconds: 60), maximumQueuedEnvelopes: 2)
        }
        // Sent at once, the group commit writes them together: exactly two fit.
        let outcomes = try await withThrowingTaskGroup(of: EnqueueOutcome.self) { group in
            for n in 0..<6 { group.addTask { try await store.enqueue(limited("envelope \(n)")) } }
            return try await group.reduce(into: [EnqueueOutcome]()) { $0.append($1) }
        }
        #expect(outcomes.filter { if case .stored = $0 { true } else { false } }.count == 2)
        #expect(outcomes.filter { $0 == .queueFull }.count == 4)
        #expect(try await store.statistics().queuedEnvelopes == 2)
    }
}
