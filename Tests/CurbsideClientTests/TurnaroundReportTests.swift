import CurbsideClient
import Testing

/// `TurnaroundReport`'s arithmetic on consults with chosen times: nearest-rank percentiles, groups, the period,
/// clocks that disagree, and what counts as unanswered.
struct TurnaroundReportTests {
    static let hour: UInt64 = 3_600_000

    func consult(
        _ id: String,
        _ direction: Direction = .outgoing,
        peer: String = "osei.derm",
        urgency: Urgency = .routine,
        created: UInt64,
        delivered: UInt64? = nil,
        read: UInt64? = nil,
        answered: UInt64? = nil
    ) -> ConsultTimes {
        ConsultTimes(
            id: id, direction: direction, peer: peer, subject: "s", urgency: urgency, created: created,
            delivered: delivered.map { created + $0 }, read: read.map { created + $0 }, answered: answered.map { created + $0 }
        )
    }

    @Test(arguments: [
        ([5], 5, 5),
        ([1, 2], 1, 2),
        ([4, 1, 3, 2], 2, 4),
        ([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 50, 90),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 6, 10),
    ])
    func nearestRankPercentiles(_ times: [UInt64], _ median: UInt64, _ p90: UInt64) {
        let consults = times.enumerated().map { consult("c\($0.offset)", created: 1_000, delivered: $0.element) }
        let all = TurnaroundReport(consults: consults, since: nil, until: 10_000_000, unansweredAfter: .max).rows[0]
        #expect(all.delivered == .init(count: times.count, median: median, p90: p90))
        #expect(all.read == .init(count: 0, median: nil, p90: nil))
    }

    @Test func groupsByDirectionUrgencyAndPeerAndKeepsToThePeriod() {
        let consults = [
            consult("a", urgency: .urgent, created: 10 * Self.hour, delivered: 60_000),
            consult("b", peer: "ama.card", urgency: .emergency, created: 11 * Self.hour, delivered: 30_000, answered: Self.hour),
            consult("c", .incoming, peer: "amara.gp", created: 12 * Self.hour, delivered: 5_000),
            consult("early", created: 1 * Self.hour, delivered: 1),
            consult("late", created: 50 * Self.hour, delivered: 1),
        ]
        let report = TurnaroundReport(consults: consults, since: 10 * Self.hour, until: 50 * Self.hour, unansweredAfter: 24 * Self.hour)
        #expect(
            report.rows.map { "\($0.direction) \($0.grouping) \($0.value) \($0.consults)" } == [
                "out all all 2", "out urgency emergency 1", "out urgency urgent 1", "out peer ama.card 1", "out peer osei.derm 1",
                "in all all 1", "in urgency routine 1", "in peer amara.gp 1",
            ]
        )
        // Unanswered for more than a day at the period's end, longest first; the answered one is not.
        #expect(report.unanswered.map(\.consult.id) == ["a", "c"])
        #expect(report.unanswered.map(\.waiting) == [40 * Self.hour, 38 * Self.hour])
    }

    @Test func aStepDatedBeforeCreationCountsAsNoTime() {
        // The recipient's clock runs behind the sender's: its receipt is dated before the consult was written.
        let skewed = ConsultTimes(
            id: "a", direction: .outgoing, peer: "p", subject: "s", urgency: .urgent, created: 10_000, delivered: 9_000, read: nil, answered: nil
        )
        let report = TurnaroundReport(consults: [skewed], since: nil, until: 20_000, unansweredAfter: 10_000)
        #expect(report.rows[0].delivered.median == 0)
        #expect(report.unanswered.isEmpty, "10 s waited is not more than 10 s")
    }
}
