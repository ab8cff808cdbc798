import ArgumentParser
import CurbsideClient
import CurbsideWire
import Foundation

extension Curbside {
    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turnaround across consults: time to delivered, read and answered, by urgency and by peer.",
            discussion: """
                For the consults you sent (and those you received, as a specialist does): how many, and the median \
                and 90th percentile (nearest rank) of the time from each consult's creation to its delivery, its \
                reading and its answer — overall, by urgency and by peer — then the consults still unanswered after \
                --unanswered-after. Times come from the receipts this profile holds (a sync runs first when the \
                relay can be reached). --json gives milliseconds; --csv gives the table, one row per group.
                """
        )
        @OptionGroup var options: ProviderOptions
        @Option(help: ArgumentHelp("Only consults created at or after this date (2026-11-01, or an RFC 3339 time).", valueName: "date"))
        var since: String?
        @Option(help: ArgumentHelp("Only consults created before this date; unanswered is judged at it (default: now).", valueName: "date"))
        var until: String?
        @Option(help: ArgumentHelp("List consults unanswered for longer than this (90min, 36h, 7d).", valueName: "duration"))
        var unansweredAfter = "24h"
        @Flag(help: "The table as comma-separated values, times in milliseconds.") var csv = false

        func validate() throws {
            if csv, options.json { throw ValidationError("give at most one of --json and --csv") }
            if let since { _ = try Self.date(since, option: "--since") }
            if let until { _ = try Self.date(until, option: "--until") }
            _ = try Self.threshold(unansweredAfter)
        }

        func run() async throws {
            let client = try await options.open()
            _ = try await client.sync()
            let report = TurnaroundReport(
                consults: try await client.consultTimes(),
                since: try since.map { try Self.date($0, option: "--since") },
                until: try until.map { try Self.date($0, option: "--until") } ?? Timestamp.now().millisecondsSince1970,
                unansweredAfter: try Self.threshold(unansweredAfter)
            )
            if csv {
                print(ReportTable(report).csv, terminator: "")
                return
            }
            try options.output(report) { ReportTable(report).text }
        }

        /// 2026-11-01 (midnight UTC) or an RFC 3339 time, as milliseconds since 1970.
        static func date(_ text: String, option: String) throws -> UInt64 {
            let full = ISO8601DateFormatter()
            full.formatOptions = [.withInternetDateTime]
            let fractional = ISO8601DateFormatter()
            fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let day = ISO8601DateFormatter()
            day.formatOptions = [.withFullDate]
            guard let date = full.date(from: text) ?? fractional.date(from: text) ?? day.date(from: text), date.timeIntervalSince1970 >= 0 else {
                throw ValidationError("\(option) \"\(text)\" is not a date: give 2026-11-01 or 2026-11-01T08:00:00Z")
            }
            return UInt64(date.timeIntervalSince1970 * 1000)
        }

        static func threshold(_ text: String) throws -> UInt64 {
            do {
                let duration = try SettingValue.duration(text)
                return UInt64(duration.components.seconds) * 1000 + UInt64(duration.components.attoseconds / 1_000_000_000_000_000)
            } catch {
                throw ValidationError("--unanswered-after \(error.message)")
            }
        }
    }
}
