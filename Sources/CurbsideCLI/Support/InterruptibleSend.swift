import CurbsideClient
import CurbsideWire
import Foundation

/// Runs a `send` or `reply` so that Ctrl-C (or SIGTERM) cancels the message, or says plainly why it cannot.
///
/// On the first signal the client stops sending (``Client/stopSending()``) and the message is withdrawn from the
/// outbox unless its `send` request is already with the relay:
/// - not yet queued (still encrypting) or queued and not yet sent: it is deleted with its encrypted files, and
///   nobody will receive it (status 130);
/// - its `send` went out: the command waits for the relay's answer; stored means too late — a stored message
///   cannot be recalled — and a second Ctrl-C stops waiting, leaving it in the outbox as it may be stored.
enum InterruptibleSend {
    private enum Event: Sendable {
        case finished(Result<SendOutcome, any Error>)
        case interrupted
    }

    static func run(
        _ noun: String,
        id: MessageID,
        client: Client,
        options: ProviderOptions,
        _ body: @escaping @Sendable () async throws -> SendOutcome
    ) async throws -> SendOutcome {
        let (events, continuation) = AsyncStream<Event>.makeStream()
        let signals = SignalWatcher(signals: [SIGINT, SIGTERM]) { _ in continuation.yield(.interrupted) }
        defer { signals.cancel() }
        // Unstructured on purpose: once the message is withdrawn the command ends at once, and an upload stalled on an
        // unresponsive relay must not hold it (the process exits, which closes the connection).
        let sending = Task {
            do {
                continuation.yield(.finished(.success(try await body())))
            } catch {
                continuation.yield(.finished(.failure(error)))
            }
        }
        var interrupted = false
        for await event in events {
            switch event {
            case .finished(let result):
                guard interrupted else { return try result.get() }
                ProgressBar.shared.end()
                if case .success(let outcome) = result, outcome.stored {
                    try options.output(outcome) { outcome.id }
                    throw CommandEnding(
                        "too late to cancel: the relay had already stored \(noun) \(id); a stored message cannot be recalled",
                        hint: "tell \(try await recipient(of: id, client)) it was sent in error, with `curbside reply \(id)` if it helps",
                        status: ExitStatus.interrupted
                    )
                }
                throw mayBeStored(noun, id)
            case .interrupted:
                if interrupted { throw mayBeStored(noun, id) }
                interrupted = true
                client.stopSending()
                ProgressBar.shared.end()
                switch try await client.cancelQueued(id, evenIfSending: false) {
                case .cancelled, .cancelledButMayBeStored:
                    sending.cancel()
                    // What was uploaded for it is forgotten by the relay now (once the stopped upload lets go of the
                    // connection, within 2 s), or at the next sync.
                    await client.abandonCancelledUploads(within: .seconds(2))
                    throw CommandEnding(
                        "cancelled: \(noun) \(id) was not sent; the relay had not stored it, nobody will receive it, and it is no longer in the outbox",
                        status: ExitStatus.interrupted
                    )
                case .notQueued:
                    // Still encrypting: it stops at its next piece and deletes what it wrote; nothing was queued.
                    sending.cancel()
                    await sending.value
                    throw CommandEnding("cancelled: \(noun) \(id) was not sent; nothing was queued", status: ExitStatus.interrupted)
                case .sending, .alreadyStored:
                    FileHandle.standardError.write(
                        Data(
                            "curbside: \(noun) \(id) had already gone to the relay; waiting for its answer (Ctrl-C again stops waiting)\n"
                                .utf8
                        )
                    )
                }
            }
        }
        throw CommandEnding("internal error: the send ended without an outcome", status: ExitStatus.failure)
    }

    private static func mayBeStored(_ noun: String, _ id: MessageID) -> CommandEnding {
        CommandEnding(
            "not cancelled: \(noun) \(id) had already gone to the relay, which may have stored it; a stored message cannot be recalled",
            hint: "it stays in the outbox (`curbside outbox`); `curbside sync` finishes sending it, and `curbside status \(id)` then shows it stored",
            status: ExitStatus.interrupted
        )
    }

    private static func recipient(of id: MessageID, _ client: Client) async throws -> String {
        try await client.status(id).first?.summary.peer ?? "the recipient"
    }
}
