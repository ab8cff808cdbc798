import CurbsideClient
import Foundation

/// `curbside report`'s table for people and as CSV.
struct ReportTable {
    let report: TurnaroundReport

    init(_ report: TurnaroundReport) { self.report = report }

    static let csvHeader =
        "direction,grouping,value,consults,delivered,delivered_median_ms,delivered_p90_ms,read,read_median_ms,read_p90_ms,"
        + "answered,answered_median_ms,answered_p90_ms"

    /// One row per group, times in milliseconds, empty where no consult reached the step.
    var csv: String {
        let rows = report.rows.map { (row: TurnaroundReport.Row) -> String in
            var fields: [String] = [row.direction == .outgoing ? "sent" : "received", row.grouping.rawValue, Self.csvField(row.value)]
            fields.append(String(row.consults))
            for figures in [row.delivered, row.read, row.answered] {
                fields.append(String(figures.count))
                fields.append(figures.median.map { String($0) } ?? "")
                fields.append(figures.p90.map { String($0) } ?? "")
            }
            return fields.joined(separator: ",")
        }
        return ([Self.csvHeader] + rows).map { $0 + "\n" }.joined()
    }

    static func csvField(_ text: String) -> String {
        text.contains(where: { ",\"\n".contains($0) }) ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }

    /// ```
    /// consults created 2026-11-01T00:00:00Z to 2026-12-01T00:00:00Z; times from creation, median / 90th percentile
    ///
    /// sent                consults  delivered              read                    answered
    ///   all                      4  4  1 min 0 s / 5 min   3  20 min 0 s / 1 h 00  2  2 h 00 min / 3 h 00 min
    ///   urgent                   1  ...
    ///   to osei.derm             4  ...
    ///
    /// unanswered after 24h: 1
    ///   46fc9803593ede3c8d9c6f6100ce23f0  to osei.derm  [urgent]  Pigmented lesion, left forearm  waiting 2 d 04 h
    /// ```
    var text: String {
        let period = report.since.map { "consults created \(formatTime($0)) to \(formatTime(report.until))" }
            ?? "consults created up to \(formatTime(report.until))"
        var lines = ["\(period); times from creation, median / 90th percentile"]
        if report.rows.isEmpty { lines.append("no consults sent or received in this period") }
        for direction in [Direction.outgoing, .incoming] {
            let rows = report.rows.filter { $0.direction == direction }
            guard !rows.isEmpty else { continue }
            var table = [[direction == .outgoing ? "sent" : "received", "consults", "delivered", "read", "answered"]]
            for row in rows {
                let label: String =
                    switch row.grouping {
                    case .all: "  all"
                    case .urgency: "  " + row.value
                    case .peer: (direction == .outgoing ? "  to " : "  from ") + row.value
                    }
                table.append([label, "\(row.consults)", Self.figures(row.delivered), Self.figures(row.read), Self.figures(row.answered)])
            }
            lines += [""] + Self.aligned(table)
        }
        let threshold = SettingValue.render(duration: .milliseconds(Int64(clamping: report.unansweredAfter)))
        lines += ["", "unanswered after \(threshold): \(report.unanswered.count)"]
        for waiting in report.unanswered {
            let consult = waiting.consult
            lines.append(
                "  \(consult.id)  \(consult.direction == .outgoing ? "to" : "from") \(consult.peer)  \(MessageLine.tag(consult.urgency))  "
                    + "\(MessageLine.shortened(consult.subject, to: 40))  waiting \(Self.span(waiting.waiting))"
            )
        }
        return lines.joined(separator: "\n")
    }

    /// "3  12 min 5 s / 1 h 02 min": how many reached the step, then the median and 90th percentile.
    static func figures(_ figures: TurnaroundReport.Figures) -> String {
        guard let median = figures.median, let p90 = figures.p90 else { return "0" }
        return "\(figures.count)  \(span(median)) / \(span(p90))"
    }

    /// A duration as `formatDuration` prints it, with days from one day up ("2 d 04 h").
    static func span(_ milliseconds: UInt64) -> String {
        let hours = milliseconds / 3_600_000
        return hours >= 24 ? "\(hours / 24) d \(String(format: "%02d", hours % 24)) h" : formatDuration(milliseconds)
    }

    /// Columns padded to their widest cell; the second (a count) aligned right.
    static func aligned(_ table: [[String]]) -> [String] {
        let widths = table[0].indices.map { column in table.map { $0[column].count }.max() ?? 0 }
        return table.map { cells in
            var line = cells.enumerated().map { column, cell in
                column == 1
                    ? String(repeating: " ", count: widths[column] - cell.count) + cell
                    : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }
            .joined(separator: "  ")
            while line.hasSuffix(" ") { line.removeLast() }
            return line
        }
    }
}
