import Foundation
import Synchronization
import Testing

/// `curbside watch` running as a child process, its standard output read line by line as it prints.
final class WatchProcess: Sendable {
    private let process: Process
    /// Every line printed so far, how many of them `next` has looked at, and whether the output ended; shared
    /// with the reading thread (a class, since a Mutex cannot be captured).
    private final class Output: Sendable {
        let state = Mutex<(lines: [String], looked: Int, ended: Bool)>(([], 0, false))
    }
    private let output = Output()

    /// Every line `next` has looked at, in order.
    var seen: [String] { output.state.withLock { Array($0.lines[..<$0.looked]) } }

    init(_ arguments: [String], environment: [String: String]) throws {
        let process = Process()
        process.executableURL = Executable.url
        process.arguments = ["watch"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        self.process = process
        let handle = out.fileHandleForReading
        let output = self.output
        // A thread of its own: reading blocks until the watcher prints, or exits (end of file).
        Thread.detachNewThread {
            var pending = Data()
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                pending += data
                while let newline = pending.firstIndex(of: 10) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    output.state.withLock { $0.lines.append(line) }
                    pending = Data(pending[(newline + 1)...])
                }
            }
            output.state.withLock { $0.ended = true }
        }
        try process.run()
    }

    /// The next line `matches` accepts, skipping (but keeping in `seen`) the others; nil when the watcher exits
    /// first. The child process has no clock to inject, so its output is looked at every 20 ms, for a minute at
    /// most: a watcher that prints nothing more is a failed test, not a hung one.
    func next(where matches: (String) -> Bool) async -> String? {
        for _ in 0..<3000 {
            while let line = output.state.withLock({ state -> String? in
                guard state.looked < state.lines.count else { return nil }
                state.looked += 1
                return state.lines[state.looked - 1]
            }) {
                if matches(line) { return line }
            }
            if output.state.withLock({ $0.ended && $0.looked == $0.lines.count }) { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Stops it as Ctrl-C does and returns its exit status.
    func interrupt() -> Int32 {
        process.interrupt()
        process.waitUntilExit()
        return process.terminationStatus
    }
}
