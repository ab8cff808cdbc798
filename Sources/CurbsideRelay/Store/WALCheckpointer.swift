import Dispatch
import GRDB

/// Copies the store's write-ahead log into the database file on its own connection and thread, every 200 ms.
///
/// SQLite's automatic checkpoint runs inside whichever commit crosses the threshold (1,000 pages by default): that
/// send waits for the log to be copied and the database file fsynced, which is most of a durable relay's tail
/// latency. Here checkpoints are PASSIVE — they never wait for or block the writer or readers — and the writer's own
/// automatic checkpoint stays only as a backstop (`backstopPages`) should this one fall behind. Durability does not
/// change: a commit is durable once its log frames are fsynced, before any checkpoint. On a disk full to its last
/// block a checkpoint can fail part-way (the database file cannot grow); until space returns the log cannot start
/// over, so writes — acknowledgements included — need new log space. The relay's free-space reserve
/// (`minimumFreeDiskBytes`, 256 MiB) is what keeps that from happening in service.
/// `@unchecked Sendable`: the timer is touched only by `init` and `deinit`; its handler runs on its own queue.
final class WALCheckpointer: @unchecked Sendable {
    /// The writer checkpoints by itself only past this many log pages (64 MiB of 4 KiB pages).
    static let backstopPages = 16_384
    /// The largest the log file stays once it starts over after a complete checkpoint (SQLite's
    /// `journal_size_limit`), as large as the backstop lets it grow: the log is then rewritten in place. With 4 MiB it
    /// was cut back after nearly every checkpoint at 1,000 sends a second, and the writer that cut it waited for the
    /// file system to free its blocks (one ftruncate took 33 ms) and then for new ones on each append; those stalls
    /// were the push p99 (`curbside-bench push-latency` on a quiet machine: p99 4.9-8.2 ms → 1.1-1.5 ms).
    static let logSizeLimit = 64 << 20

    private let timer: any DispatchSourceTimer

    init(path: String, configuration: Configuration, interval: DispatchTimeInterval = .milliseconds(200)) throws {
        let connection = try DatabaseQueue(path: path, configuration: configuration)
        let queue = DispatchQueue(label: "curbside.relay.checkpoint", qos: .utility)
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(50))
        timer.setEventHandler {
            // Busy (another checkpoint under way) or failing: the next tick tries again; the backstop bounds the log.
            _ = try? connection.writeWithoutTransaction { db in try db.checkpoint(.passive) }
        }
        timer.resume()
    }

    deinit {
        timer.cancel()
    }
}
