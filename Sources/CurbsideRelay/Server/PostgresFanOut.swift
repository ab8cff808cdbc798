import CurbsideWire
import Logging
import PostgresNIO

/// Pushes what other relay processes stored, for relays that share one PostgreSQL database: a recipient connected
/// to this process hears of a consult stored through another as it would of one stored here.
///
/// Two paths, so that a lost notification or a reconnect delays a push but never loses it:
/// - **Notifications.** Each commit that stores envelopes or notices sends `pg_notify` on `curbside_relay` (delivered
///   only if it commits). This listens on a dedicated connection (a `PostgresClient` pools its connections and
///   cannot hold a LISTEN), reads each row named for a handle connected here, and pushes it.
/// - **Catch-up.** Every `interval`, and at once after the listening connection is restored, it reads what was stored
///   for the handles connected here since the last catch-up began (less a margin for transactions still committing
///   then) and pushes what was not pushed yet. `ConnectedClients` pushes each sequence once, whichever path finds it.
///
/// Neither path is needed for correctness: every envelope and notice stays stored until its client fetches it.
struct PostgresFanOut: Sendable {
    let store: PostgresRelayStore
    let clients: ConnectedClients
    let interval: Duration
    let logger: Logger
    /// How far before its previous start a catch-up looks: a transaction that stamped its rows earlier but committed
    /// after that catch-up read is still found. Longer than any commit takes.
    static let margin: Duration = .seconds(30)

    func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await listen() }
            group.addTask { await catchUpPeriodically() }
            await group.waitForAll()
        }
    }

    /// Listens until cancelled, reconnecting after a second when the connection or the server goes.
    private func listen() async {
        var wasConnected = true
        while !Task.isCancelled {
            do {
                let connection = try await connectToWritable()
                defer { Task { try? await connection.close() } }
                if !wasConnected {
                    logger.info("push fan-out: listening again; catching up")
                    await catchUp(since: .now().adding(milliseconds: -Int64(Self.margin.components.seconds * 1000) * 4))
                }
                wasConnected = true
                // A LISTEN written to a connection that has just closed would never be answered (as any statement:
                // PostgresConnection+IfOpen.swift); a closed one is given up for a new one at once.
                guard !connection.isClosed else { throw PostgresConnectionClosed() }
                try await connection.listen(on: FanOutEvent.channel) { notifications in
                    for try await notification in notifications {
                        await handle(notification.payload)
                    }
                }
            } catch {
                if Task.isCancelled { return }
                if wasConnected { logger.warning("push fan-out: lost its database connection (\(PostgresPool.describe(error))); reconnecting") }
                wasConnected = false
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// A dedicated connection to the server that accepts writes (notifications are sent on that one).
    private func connectToWritable() async throws -> PostgresConnection {
        for server in store.settings.servers {
            if let connection = try? await PostgresPool.connectIfWritable(server, settings: store.settings, id: 1, logger: logger) {
                return connection
            }
        }
        throw RelayError(.storeUnavailable, "no database server accepts writes")
    }

    private func handle(_ payload: String) async {
        var origin = ""
        guard let event = FanOutEvent(payload: payload, origin: &origin), origin != store.origin else { return }
        switch event {
        case .envelope(let recipient, let sequence):
            guard let handle = try? Handle(recipient), clients.isConnected(handle),
                let envelope = try? await store.envelope(sequence: sequence)
            else { return }
            clients.push(.pushEnvelope(envelope.delivered), to: handle, once: .envelope(sequence))
        case .notice(let sender, let sequence):
            guard let handle = try? Handle(sender), clients.isConnected(handle),
                let notice = try? await store.notice(sequence: sequence)
            else { return }
            clients.push(.pushNotice(notice.wire), to: handle, once: .notice(sequence))
        }
    }

    private func catchUpPeriodically() async {
        var since = Timestamp.now()
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            if Task.isCancelled { return }
            let started = Timestamp.now()
            if await catchUp(since: since.adding(milliseconds: -Int64(Self.margin.components.seconds * 1000))) {
                since = started
            }
        }
    }

    /// Pushes envelopes and notices stored since `since` for the handles connected here; false if the store could
    /// not be read (the next round looks back as far again).
    @discardableResult
    private func catchUp(since: Timestamp) async -> Bool {
        let handles = clients.handles
        guard !handles.isEmpty else { return true }
        do {
            for batch in stride(from: 0, to: handles.count, by: 1000).map({ Array(handles[$0..<min($0 + 1000, handles.count)]) }) {
                for envelope in try await store.envelopes(for: batch, storedSince: since, limit: 10_000) {
                    clients.push(.pushEnvelope(envelope.delivered), to: envelope.recipient, once: .envelope(envelope.sequence))
                }
                for notice in try await store.notices(for: batch, since: since, limit: 10_000) {
                    clients.push(.pushNotice(notice.wire), to: notice.sender, once: .notice(notice.sequence))
                }
            }
            return true
        } catch {
            logger.debug("push fan-out: catch-up could not read the store (\(PostgresPool.describe(error)))")
            return false
        }
    }
}

extension Timestamp {
    func adding(milliseconds: Int64) -> Timestamp {
        Timestamp(storedMilliseconds: signedMilliseconds + milliseconds)
    }
}
