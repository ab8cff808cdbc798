import CurbsideClient
import Foundation

/// A one-line progress display on standard error: bytes, rate and time left.
final class ProgressBar: @unchecked Sendable {
    static let shared = ProgressBar()
    private let lock = NSLock()
    private var started: (name: String, at: Date, from: UInt64)?
    private var lastDraw = Date.distantPast
    private var drawn = false

    func show(_ progress: TransferProgress) {
        lock.lock()
        defer { lock.unlock() }
        if started?.name != progress.fileName + progress.direction.rawValue {
            started = (progress.fileName + progress.direction.rawValue, Date(), progress.bytes)
        }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.1 || progress.bytes == progress.total else { return }
        lastDraw = now
        let elapsed = max(now.timeIntervalSince(started!.at), 0.001)
        let rate = Double(progress.bytes - min(progress.bytes, started!.from)) / elapsed
        let left = rate > 0 ? Double(progress.total - progress.bytes) / rate : 0
        let fraction = progress.total == 0 ? 1 : Double(progress.bytes) / Double(progress.total)
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let line = String(
            format: "\r%@ %@ [%@] %3d%%  %@ / %@  %@/s  %@ left ",
            progress.direction == .upload ? "up  " : "down", String(progress.fileName.prefix(24)), bar, Int(fraction * 100),
            Self.bytes(progress.bytes), Self.bytes(progress.total), Self.bytes(UInt64(rate)), formatDuration(UInt64(left * 1000))
        )
        FileHandle.standardError.write(Data(line.utf8))
        drawn = true
    }

    func end() {
        lock.lock()
        defer { lock.unlock() }
        if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
        drawn = false
        started = nil
    }

    static func bytes(_ count: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB"]
        var value = Double(count), unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }
}
