/// Turnaround across consults — time from a consult's creation to its delivery, reading and answer — counted,
/// with medians and 90th percentiles, overall, by urgency and by peer, separately for consults sent and received;
/// and the consults still unanswered past a threshold (`curbside report`).
///
/// Percentiles are nearest-rank: the p-th percentile of n figures is the ⌈p·n/100⌉-th smallest, always one of the
/// figures themselves (the median of 1, 2, 3, 4 is 2). A consult that has not reached a step is counted in
/// `consults` but not in that step's figures.
public struct TurnaroundReport: Sendable, Hashable, Codable {
    /// One step's figures over a group of consults.
    public struct Figures: Sendable, Hashable, Codable {
        /// How many of the group's consults reached the step.
        public let count: Int
        /// Nearest-rank median of the times to the step, milliseconds; nil when none reached it.
        public let median: UInt64?
        /// Nearest-rank 90th percentile, milliseconds; nil when none reached it.
        public let p90: UInt64?

        /// Figures as given.
        public init(count: Int, median: UInt64?, p90: UInt64?) {
            self.count = count
            self.median = median
            self.p90 = p90
        }

        /// The figures of `times`, milliseconds in any order.
        init(_ times: [UInt64]) {
            let sorted = times.sorted()
            count = sorted.count
            median = TurnaroundReport.percentile(50, of: sorted)
            p90 = TurnaroundReport.percentile(90, of: sorted)
        }
    }

    /// What a row groups by.
    public enum Grouping: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
        /// Every consult in the direction.
        case all
        /// The consults of one urgency.
        case urgency
        /// The consults with one peer.
        case peer

        public var description: String { rawValue }
    }

    /// One line of the table: a group of consults and its figures.
    public struct Row: Sendable, Hashable, Codable {
        /// Sent or received.
        public let direction: Direction
        public let grouping: Grouping
        /// The urgency or the peer's handle; "all" for everything.
        public let value: String
        /// How many consults the group has.
        public let consults: Int
        public let delivered: Figures
        public let read: Figures
        public let answered: Figures
    }

    /// A consult with no answer yet, created longer than the threshold before the end of the period.
    public struct Unanswered: Sendable, Hashable, Codable {
        public let consult: ConsultTimes
        /// Milliseconds from its creation to the end of the period.
        public let waiting: UInt64
    }

    /// The period's start (consults created at or after it), milliseconds since 1970; nil for all of them.
    public let since: UInt64?
    /// The period's end (consults created before it), and the time "unanswered" is judged at.
    public let until: UInt64
    /// How long a consult may wait for an answer before it is listed as unanswered, milliseconds.
    public let unansweredAfter: UInt64
    /// Sent, then received: all, each urgency (emergency, urgent, routine) present, then each peer by handle.
    public let rows: [Row]
    /// Unanswered past the threshold, longest waiting first.
    public let unanswered: [Unanswered]

    /// The report over `consults` created in `since..<until`.
    public init(consults: [ConsultTimes], since: UInt64?, until: UInt64, unansweredAfter: UInt64) {
        self.since = since
        self.until = until
        self.unansweredAfter = unansweredAfter
        let inPeriod = consults.filter { $0.created < until && $0.created >= (since ?? 0) }
        var rows: [Row] = []
        for direction in [Direction.outgoing, .incoming] {
            let mine = inPeriod.filter { $0.direction == direction }
            guard !mine.isEmpty else { continue }
            rows.append(Self.row(direction, .all, "all", mine))
            for urgency in [Urgency.emergency, .urgent, .routine] {
                let group = mine.filter { $0.urgency == urgency }
                if !group.isEmpty { rows.append(Self.row(direction, .urgency, urgency.rawValue, group)) }
            }
            for peer in Set(mine.map(\.peer)).sorted() {
                rows.append(Self.row(direction, .peer, peer, mine.filter { $0.peer == peer }))
            }
        }
        self.rows = rows
        unanswered = inPeriod.filter { $0.answered == nil && until - $0.created > unansweredAfter }
            .map { Unanswered(consult: $0, waiting: until - $0.created) }
            .sorted { ($0.waiting, $0.consult.id) > ($1.waiting, $1.consult.id) }
    }

    static func row(_ direction: Direction, _ grouping: Grouping, _ value: String, _ consults: [ConsultTimes]) -> Row {
        Row(
            direction: direction,
            grouping: grouping,
            value: value,
            consults: consults.count,
            delivered: Figures(consults.compactMap { $0.elapsed(to: $0.delivered) }),
            read: Figures(consults.compactMap { $0.elapsed(to: $0.read) }),
            answered: Figures(consults.compactMap { $0.elapsed(to: $0.answered) })
        )
    }

    /// The nearest-rank `p`-th percentile of `sorted` (ascending); nil when it is empty.
    static func percentile(_ p: Int, of sorted: [UInt64]) -> UInt64? {
        guard !sorted.isEmpty else { return nil }
        let rank = (p * sorted.count + 99) / 100
        return sorted[max(rank, 1) - 1]
    }
}
