import CurbsideWire
import GRDB

extension Client {
    /// The times of every consult this profile sent or received (replies are not consults), oldest first — what
    /// ``TurnaroundReport`` is computed from. Consults whose sender's key changed and is not verified are left out:
    /// their content, urgency included, stays hidden.
    public func consultTimes() async throws -> [ConsultTimes] {
        let records = try await database.writer.read { db in try MessageStore.consults(db) }
        var out: [ConsultTimes] = []
        for record in records where !record.senderKeyChanged {
            let id = record.id
            guard case .consult(let consult) = try Content(decoding: try database.unseal(record.body, column: "message.body", row: id.rawValue))
            else { continue }
            let timeline = try await timeline(id)
            func first(_ kind: DeliveryState) -> UInt64? { timeline.first { $0.kind == kind }?.at }
            let created = UInt64(clamping: record.createdAt)
            let times: ConsultTimes
            if record.direction == .outgoing {
                times = ConsultTimes(
                    id: id.description, direction: .outgoing, peer: record.peer, subject: consult.subject, urgency: Urgency(consult.urgency),
                    created: first(.created) ?? created, delivered: first(.delivered), read: first(.read), answered: first(.answered)
                )
            } else {
                let answered = try await database.writer.read { db in try MessageStore.firstReplySent(db, inThread: record.threadID) }
                times = ConsultTimes(
                    id: id.description, direction: .incoming, peer: record.peer, subject: consult.subject, urgency: Urgency(consult.urgency),
                    created: created, delivered: first(.received), read: first(.read), answered: answered.map { UInt64(clamping: $0) }
                )
            }
            out.append(times)
        }
        return out
    }
}
