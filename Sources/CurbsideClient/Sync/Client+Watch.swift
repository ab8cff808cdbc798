import CurbsideWire
import Foundation

extension Client {
    /// Stays connected: syncs, then processes pushed envelopes and notices as they arrive, calling `onEvent`;
    /// reconnects with exponential back-off (1 s doubling to 60 s) when the connection is lost. Returns when the
    /// task is cancelled.
    public func watch(onEvent: @Sendable (WatchEvent) -> Void) async {
        var backoff: Duration = .seconds(1)
        func emit(_ kind: WatchEvent.Kind, _ detail: String) {
            onEvent(WatchEvent(kind: kind, detail: detail, at: Timestamp.now().millisecondsSince1970))
        }
        while !Task.isCancelled {
            do {
                let fellBehind = try await withConnection { connection in
                    emit(.connected, "\(relay)")
                    backoff = .seconds(1)
                    var report = SyncReport()
                    try await exclusively { try await exchange(connection, report: &report) }
                    self.announce(report, emit)
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
                        self.announce(report, emit)
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

    private nonisolated func announce(_ report: SyncReport, _ emit: (WatchEvent.Kind, String) -> Void) {
        if report.received > 0 { emit(.received, "\(report.received) new consult(s) or reply(ies); `curbside inbox` lists them") }
        if report.receipts > 0 { emit(.receipt, "\(report.receipts) receipt(s); `curbside status` shows them") }
        if report.notices > 0 { emit(.notice, "\(report.notices) relay notice(s)") }
        if report.sent > 0 { emit(.sent, "\(report.sent) message(s) left the outbox") }
        if report.failed > 0 { emit(.failed, "\(report.failed) envelope(s) could not be opened") }
    }
}
