import CurbsideWire
import Foundation

extension Client {
    /// Stays connected: syncs, then processes pushed envelopes and notices as they arrive, calling `onEvent`;
    /// reconnects with exponential back-off (1 s doubling to 60 s) when the connection is lost. Returns when the
    /// task is cancelled.
    ///
    /// Each consult or reply that arrives is one `received` event carrying it; each of yours that leaves the outbox
    /// one `sent`; each receipt or notice about one of yours one `receipt` or `notice` with the step it reached.
    /// Receipts this profile sends on its own (delivered, read) are not reported. What happened before the call
    /// is not reported; what arrives while the relay cannot be reached is, once it is fetched.
    public func watch(onEvent: @Sendable (WatchEvent) -> Void) async {
        var backoff: Duration = .seconds(1)
        func emit(_ kind: WatchEvent.Kind, _ detail: String) {
            onEvent(WatchEvent(kind: kind, detail: detail, at: Timestamp.now().millisecondsSince1970))
        }
        watchCursor = (try? await database.writer.read { db in try ActivityStore.end(db) }) ?? ActivityCursor(messageRow: 0, eventSeq: 0)
        func announce(_ report: SyncReport) async {
            if report.failed > 0 { emit(.failed, "\(report.failed) envelope(s) could not be opened; `curbside inbox` says from whom") }
            do {
                for event in try await newActivity() { onEvent(event) }
            } catch {
                logger.warning("watch: the profile's activity could not be read: \(error)")
            }
        }
        while !Task.isCancelled {
            do {
                let fellBehind = try await withConnection { connection in
                    backoff = .seconds(1)
                    var report = SyncReport()
                    try await exclusively { try await exchange(connection, report: &report) }
                    // Said once caught up, so whoever reads `connected` knows from then on each arrival is pushed.
                    emit(.connected, "\(relay)")
                    await announce(report)
                    // The relay closes connections idle for 5 minutes; a cheap request every 2 keeps this one.
                    let keepalive = Task {
                        while !Task.isCancelled {
                            try await Task.sleep(for: .seconds(120))
                            _ = try await connection.request(.fetchNotices(after: UInt64.max))
                        }
                    }
                    defer { keepalive.cancel() }
                    for await push in connection.pushes {
                        if Task.isCancelled { break }
                        var report = SyncReport()
                        try await exclusively {
                            switch push {
                            case .pushEnvelope(let delivered):
                                let disposition = try await receive(delivered, report: &report, connection: connection)
                                try await settle([(delivered.envelopeID, disposition)], on: connection)
                            case .pushNotice:
                                try await applyNotices(connection, report: &report)
                            case .prekeysLow:
                                try await maintainPrekeys(connection)
                            default:
                                break
                            }
                            try await flushAll(connection, report: &report)
                        }
                        await announce(report)
                    }
                    return await connection.pushesFellBehind
                }
                if fellBehind, !Task.isCancelled {
                    // The relay keeps what was not pushed: a new connection's sync fetches it, at once.
                    emit(.disconnected, "fell behind the relay's pushes; reconnecting now to fetch what arrived meanwhile")
                    continue
                }
                if !Task.isCancelled { emit(.disconnected, "the relay closed the connection") }
            } catch {
                if !Task.isCancelled { emit(.disconnected, "\(error)") }
            }
            guard !Task.isCancelled else { return }
            emit(.retrying, "in \(backoff.components.seconds) s")
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(60))
        }
    }

    /// What happened in the profile since the last call (or since `watch` began), as events.
    func newActivity() async throws -> [WatchEvent] {
        let from = watchCursor
        let (received, steps, end) = try await database.writer.read { db in
            // Read together, so nothing written between the reads is skipped or reported twice.
            (try ActivityStore.received(db, after: from), try ActivityStore.sentSteps(db, after: from), try ActivityStore.end(db))
        }
        watchCursor = end
        let now = Timestamp.now().millisecondsSince1970
        var events: [WatchEvent] = []
        for (record, summary) in zip(received, try await summaries(received)) where record.kind != .receipt {
            events.append(WatchEvent(kind: .received, at: now, message: summary))
        }
        for (id, step, _) in steps {
            let kind: WatchEvent.Kind
            switch step {
            case .stored: kind = .sent
            case .delivered, .read, .failed: kind = .receipt
            case .deliveredToDevice, .expired: kind = .notice
            // Created is this profile's own doing; answered comes with the reply, reported as received.
            case .created, .answered, .received: continue
            }
            guard let record = try await database.writer.read({ db in try MessageStore.message(db, id) }) else { continue }
            let detail = step == .failed ? try await timeline(id).last { $0.kind == .failed }?.detail : nil
            events.append(WatchEvent(kind: kind, detail: detail, at: now, message: try await summaries([record]).first, step: step))
        }
        return events
    }
}
