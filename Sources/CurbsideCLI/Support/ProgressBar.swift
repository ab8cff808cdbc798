import CurbsideClient
import Foundation

/// A one-line progress display on standard error, one line per phase of each file (encrypt, up, down, check,
/// decrypt): bytes, rate and time left. A phase's line ends when it reaches its total.
final class ProgressBar: @unchecked Sendable {
    static let shared = ProgressBar()
    // Reports come from the client's tasks and from blocking-work threads; a lock keeps each line whole.
    private let lock = NSLock()
    private var started: (key: String, at: Date, from: UInt64)?
    private var finished: Set<String> = []
    private var lastDraw = Date.distantPast
    private var drawn = false

    func show(_ progress: TransferProgress) {
        lock.lock()
        defer { lock.unlock() }
        let key = progress.direction.rawValue + "\u{0}" + progress.fileName
        let complete = progress.bytes >= progress.total
        // A resumed or repeated report of a finished phase draws nothing more.
        guard !(complete && finished.contains(key)) else { return }
        if started?.key != key {
            if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
            started = (key, Date(), progress.bytes)
            lastDraw = .distantPast
            finished.remove(key)
        }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.1 || complete else { return }
        lastDraw = now
        let elapsed = max(now.timeIntervalSince(started!.at), 0.001)
        let rate = Double(progress.bytes - min(progress.bytes, started!.from)) / elapsed
        let left = rate > 0 ? Double(progress.total - min(progress.bytes, progress.total)) / rate : 0
        let fraction = progress.total == 0 ? 1 : min(Double(progress.bytes) / Double(progress.total), 1)
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let line = String(
            format: "\r%@ %@ [%@] %3d%%  %@ / %@  %@/s  %@ left ",
            Self.label(progress.direction),
            String(progress.fileName.prefix(24)),
            bar,
            Int(fraction * 100),
            Self.bytes(progress.bytes),
            Self.bytes(progress.total),
            Self.bytes(UInt64(rate)),
            formatDuration(UInt64(left * 1000))
        )
        FileHandle.standardError.write(Data(line.utf8))
        drawn = true
        if complete {
            FileHandle.standardError.write(Data("\n".utf8))
            drawn = false
            finished.insert(key)
            started = nil
        }
    }

    /// Ends a line left part-way (an interrupted transfer), before anything else is printed.
    func end() {
        lock.lock()
        defer { lock.unlock() }
        if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
        drawn = false
        started = nil
    }

    /// The phase in seven columns.
    static func label(_ direction: TransferProgress.Direction) -> String {
        switch direction {
        case .upload: "up     "
        case .download: "down   "
        case .encryption: "encrypt"
        case .verification: "check  "
        case .decryption: "decrypt"
        }
    }

    static func bytes(_ count: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }
}
