import CurbsideWire
import NIOCore

/// How many recipients one sender may start writing to in a sliding window (spec/relay.md §Limits): a send to a
/// recipient the sender has written to within the window always passes (and renews it); one to another passes
/// only while fewer than `limit` recipients are in the window. With each sender's share of a queue, this bounds how
/// much of the relay's queues one account can fill. Answering is never new: a recipient that wrote to the sender
/// within the window may always be written back to (a specialist's receipts and replies to many referrers). Senders
/// not seen for a window are forgotten.
actor NewRecipientLimiter {
    private let limit: Int
    private let window: TimeAmount
    /// Per sender, the recipients written to within the window and when last.
    private var recent: [Handle: [Handle: NIODeadline]] = [:]
    private var lastSweep = NIODeadline.now()

    init(limit: Int, window: TimeAmount) {
        self.limit = limit
        self.window = window
    }

    /// Records a send from `sender` to `recipient`; false (nothing recorded) if it would start one recipient too many.
    func admit(sender: Handle, recipient: Handle, now: NIODeadline = .now()) -> Bool {
        sweepIfDue(now: now)
        // Writing on to a recipient in the window, as most sends do: renewed, without rebuilding the sender's table
        // (the recipients that left the window go at the next new recipient or sweep, before anything counts them).
        if let last = recent[sender]?[recipient], last + window > now {
            recent[sender]![recipient] = now
            return true
        }
        var recipients = recent[sender, default: [:]]
        recipients = recipients.filter { $0.value + window > now }
        // An answer neither needs room nor takes any.
        if recipients[recipient] == nil, recent[recipient]?[sender].map({ $0 + window > now }) == true {
            recent[sender] = recipients.isEmpty ? nil : recipients
            return true
        }
        guard recipients[recipient] != nil || recipients.count < limit else {
            recent[sender] = recipients
            return false
        }
        recipients[recipient] = now
        recent[sender] = recipients
        return true
    }

    /// Senders with recipients in the window (for tests).
    var trackedSenders: Int { recent.count }

    private func sweepIfDue(now: NIODeadline) {
        guard lastSweep + window <= now else { return }
        lastSweep = now
        for (sender, recipients) in recent {
            let current = recipients.filter { $0.value + window > now }
            recent[sender] = current.isEmpty ? nil : current
        }
    }
}
