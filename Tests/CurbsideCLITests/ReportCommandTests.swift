import CurbsideTestSupport
import Foundation
import GRDB
import Testing

@testable import CurbsideCLI

/// Issue 17, item 13: `curbside report` over consults whose times the test sets in the profiles (real consults,
/// sent and answered through a relay, then dated at fixed times), on the GP's side and the specialist's.
@Suite("curbside report", .serialized)
struct ReportCommandTests {
    func curbside(_ arguments: String..., home: String) throws -> (status: Int32, stdout: String, stderr: String) {
        try Executable.run(arguments + ["--home", home], environment: ProviderCommandTests.environment)
    }

    static let minute: Int64 = 60_000
    /// 2026-11-02T08:00:00Z.
    static let start: Int64 = 1_793_606_400_000

    /// Consult `a` (urgent) is delivered after 1 min, read after 10 and answered after 2 h; `b` (routine, an hour
    /// later) delivered after 2 min and read after 30; `c` (routine, two hours later) delivered after 5 min.
    static let plan: [(created: Int64, delivered: Int64, read: Int64?, answered: Int64?)] = [
        (start, start + 1 * minute, start + 10 * minute, start + 120 * minute),
        (start + 60 * minute, start + 62 * minute, start + 90 * minute, nil),
        (start + 120 * minute, start + 125 * minute, nil, nil),
    ]

    @Test func turnaroundFiguresOnBothSides() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-report-\(UUID())").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { _ in
            var ids: [String] = []
            for (subject, urgency) in [("Pigmented lesion", "urgent"), ("Rash on both hands", "routine"), ("Nail changes", "routine")] {
                let sent = try curbside("send", "osei.derm", "--subject", subject, "--question", "Advice?", "--urgency", urgency, home: gp)
                #expect(sent.status == 0, "\(sent.stderr)")
                ids.append(String(try #require(sent.stdout.firstMatch(of: /[0-9a-f]{32}/)).output))
            }
            #expect(try curbside("inbox", home: derm).status == 0)
            #expect(try curbside("show", ids[0], home: derm).status == 0)
            #expect(try curbside("show", ids[1], home: derm).status == 0)
            #expect(try curbside("reply", ids[0], "--text", "Excise.", home: derm).status == 0)
            #expect(try curbside("sync", home: gp).status == 0)

            // Date every step as planned, on both sides.
            let gpProfile = try DatabaseQueue(path: "\(gp)/profile.sqlite")
            let dermProfile = try DatabaseQueue(path: "\(derm)/profile.sqlite")
            for (id, times) in zip(ids, Self.plan) {
                try await gpProfile.write { db in
                    try db.execute(sql: "UPDATE message SET created_at = ? WHERE id = X'\(id)'", arguments: [times.created])
                    for (kind, at) in [("created", times.created), ("stored", times.created), ("delivered_to_device", times.created)]
                        + [("delivered", times.delivered), ("read", times.read), ("answered", times.answered)].compactMap({ kind, at in at.map { (kind, $0) } })
                    {
                        try db.execute(sql: "UPDATE event SET at = ? WHERE message_id = X'\(id)' AND kind = ?", arguments: [at, kind])
                    }
                    #expect(try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM event WHERE message_id = X'\(id)' AND kind = 'answered')") == (times.answered != nil))
                }
                try await dermProfile.write { db in
                    try db.execute(sql: "UPDATE message SET created_at = ? WHERE id = X'\(id)'", arguments: [times.created])
                    try db.execute(sql: "UPDATE event SET at = ? WHERE message_id = X'\(id)' AND kind = 'received'", arguments: [times.delivered])
                    if let read = times.read {
                        try db.execute(sql: "UPDATE event SET at = ? WHERE message_id = X'\(id)' AND kind = 'read'", arguments: [read])
                    }
                    if let answered = times.answered {
                        try db.execute(
                            sql: "UPDATE message SET created_at = ? WHERE thread_id = X'\(id)' AND direction = 'out' AND kind = 2",
                            arguments: [answered]
                        )
                    }
                }
            }
            try gpProfile.close()
            try dermProfile.close()

            let period = ["--since", "2026-11-01", "--until", "2026-11-04T00:00:00Z"]
            let text = try Executable.run(["report"] + period + ["--home", gp], environment: ProviderCommandTests.environment)
            #expect(text.status == 0, "\(text.stderr)")
            let lines = text.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first == "consults created 2026-11-01T00:00:00Z to 2026-11-04T00:00:00Z; times from creation, median / 90th percentile")
            func row(_ label: String) -> String? { lines.first { $0.hasPrefix(label + " ") } }
            // Delivered 1, 2, 5 min: median 2 min, 90th percentile 5 min; read 10 and 30 min; answered 2 h.
            #expect(row("sent")?.contains(/^sent +consults +delivered +read +answered$/) == true, "\(text.stdout)")
            #expect(row("  all")?.contains(/^  all +3  3  2 min 0 s \/ 5 min 0 s +2  10 min 0 s \/ 30 min 0 s +1  2 h 00 min \/ 2 h 00 min$/) == true, "\(text.stdout)")
            #expect(row("  urgent")?.contains(#/ 1  1  1 min 0 s \/ 1 min 0 s +1  10 min 0 s \/ 10 min 0 s +1  2 h 00 min/#) == true, "\(text.stdout)")
            #expect(row("  routine")?.contains(#/ 2  2  2 min 0 s \/ 5 min 0 s +1  30 min 0 s \/ 30 min 0 s +0$/#) == true, "\(text.stdout)")
            #expect(row("  to osei.derm")?.contains(#/ 3  3  2 min 0 s \/ 5 min 0 s/#) == true, "\(text.stdout)")
            // Unanswered after a day, as of the period's end: b waited 39 h, c 38 h; a was answered.
            let unanswered = try #require(lines.firstIndex(of: "unanswered after 1d: 2"), "\(text.stdout)")
            #expect(lines[unanswered + 1].hasPrefix("  \(ids[1])  to osei.derm  [routine]  Rash on both hands  waiting 1 d 15 h"), "\(text.stdout)")
            #expect(lines[unanswered + 2].hasPrefix("  \(ids[2])  to osei.derm  [routine]  Nail changes  waiting 1 d 14 h"), "\(text.stdout)")
            #expect(!text.stdout.contains("received"), "the GP received no consults")

            let csv = try Executable.run(["report", "--csv"] + period + ["--home", gp], environment: ProviderCommandTests.environment)
            #expect(csv.status == 0, "\(csv.stderr)")
            #expect(
                csv.stdout == ReportTable.csvHeader + "\n"
                    + "sent,all,all,3,3,120000,300000,2,600000,1800000,1,7200000,7200000\n"
                    + "sent,urgency,urgent,1,1,60000,60000,1,600000,600000,1,7200000,7200000\n"
                    + "sent,urgency,routine,2,2,120000,300000,1,1800000,1800000,0,,\n"
                    + "sent,peer,osei.derm,3,3,120000,300000,2,600000,1800000,1,7200000,7200000\n",
                "\(csv.stdout)"
            )

            // The specialist: the same consults received, answered by its own reply.
            let json = try Executable.run(["report", "--json"] + period + ["--home", derm], environment: ProviderCommandTests.environment)
            #expect(json.status == 0, "\(json.stderr)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            let rows = try #require(report["rows"] as? [[String: Any]])
            let all = try #require(rows.first)
            #expect(all["direction"] as? String == "in" && all["grouping"] as? String == "all" && all["consults"] as? Int == 3)
            #expect((all["delivered"] as? [String: Any])?["median"] as? Int == 120_000)
            #expect((all["delivered"] as? [String: Any])?["p90"] as? Int == 300_000)
            #expect((all["read"] as? [String: Any])?["count"] as? Int == 2)
            #expect((all["answered"] as? [String: Any])?["median"] as? Int == 7_200_000)
            #expect(rows.contains { $0["grouping"] as? String == "peer" && $0["value"] as? String == "amara.gp" && $0["consults"] as? Int == 3 })
            #expect((report["unanswered"] as? [[String: Any]])?.count == 2)
            #expect(report["until"] as? Int == 1_793_750_400_000)
            let dermText = try Executable.run(["report"] + period + ["--home", derm], environment: ProviderCommandTests.environment)
            #expect(dermText.stdout.contains("  from amara.gp"), "\(dermText.stdout)")

            // The period narrows what is counted: from 08:30 on, consult a is left out.
            let later = try Executable.run(
                ["report", "--csv", "--since", "2026-11-02T08:30:00Z", "--until", "2026-11-04", "--home", gp],
                environment: ProviderCommandTests.environment
            )
            #expect(later.stdout.contains("\nsent,all,all,2,2,120000,300000,1,1800000,1800000,0,,\n"), "\(later.stdout)")

            let both = try curbside("report", "--csv", "--json", home: gp)
            #expect(both.status == ExitStatus.usage && both.stderr.contains("at most one of --json and --csv"), "\(both.stderr)")
            let badDate = try curbside("report", "--since", "yesterday", home: gp)
            #expect(badDate.status == ExitStatus.usage && badDate.stderr.contains("--since \"yesterday\" is not a date"), "\(badDate.stderr)")
            let badThreshold = try curbside("report", "--unanswered-after", "3", home: gp)
            #expect(badThreshold.status == ExitStatus.usage && badThreshold.stderr.contains("needs a unit"), "\(badThreshold.stderr)")
        }
    }

    /// The help of the commands this part added or changed reads as prose: no stray line-continuation backslashes.
    @Test func helpOfReportWatchAndInboxReadsAsProse() {
        for help in [Curbside.Report.helpMessage(), Curbside.Watch.helpMessage(), Curbside.Inbox.helpMessage()] {
            #expect(!help.contains("\\"), "\(help)")
            #expect(help.contains("--json"))
        }
        #expect(Curbside.Report.helpMessage().contains("--unanswered-after <duration>"))
        #expect(Curbside.Inbox.helpMessage().contains("--all"))
    }
}
