import CurbsideWire
import NIOCore
import Testing

@testable import CurbsideRelay

@Suite("new recipient limiter")
struct NewRecipientLimiterTests {
    let start = NIODeadline.now()
    let gp = try! Handle("amara.gp")
    let recipients = (0..<5).map { try! Handle("colleague\($0)") }

    /// At most `limit` recipients a window; those already written to always pass; the window slides.
    @Test func aSenderStartsAtMostLimitRecipientsAWindow() async {
        let limiter = NewRecipientLimiter(limit: 3, window: .seconds(3600))
        for recipient in recipients[0..<3] { #expect(await limiter.admit(sender: gp, recipient: recipient, now: start)) }
        #expect(await limiter.admit(sender: gp, recipient: recipients[3], now: start) == false)
        #expect(await limiter.admit(sender: gp, recipient: recipients[0], now: start + .seconds(1800)), "a known recipient passes")
        #expect(await limiter.admit(sender: try! Handle("kofi.cardio"), recipient: recipients[3], now: start), "another sender has its own")
        // recipients 1 and 2 leave the window; 0 was renewed.
        #expect(await limiter.admit(sender: gp, recipient: recipients[3], now: start + .seconds(3600)))
        #expect(await limiter.admit(sender: gp, recipient: recipients[4], now: start + .seconds(3600)))
        #expect(await limiter.admit(sender: gp, recipient: recipients[1], now: start + .seconds(3600)) == false)
    }

    /// A specialist answering many referrers (automatic receipts, replies) is never limited: whoever wrote to it
    /// within the window may be written back to (found in review: receipts to a 61st referrer were refused).
    @Test func answeringSomeoneWhoWroteIsNeverNew() async throws {
        let limiter = NewRecipientLimiter(limit: 2, window: .seconds(3600))
        let specialist = try Handle("osei.derm")
        for referrer in recipients.prefix(5) { #expect(await limiter.admit(sender: referrer, recipient: specialist, now: start)) }
        for referrer in recipients.prefix(5) {
            #expect(await limiter.admit(sender: specialist, recipient: referrer, now: start + .seconds(60)), "answering \(referrer)")
        }
        // Someone who never wrote is still new, and the specialist's new recipients were used up by no one.
        #expect(await limiter.admit(sender: specialist, recipient: try Handle("kofi.cardio"), now: start + .seconds(60)))
        // Once the referrers' sends leave the window, writing to them counts again.
        #expect(await limiter.admit(sender: specialist, recipient: try Handle("ama.peds"), now: start + .seconds(120)))
        #expect(await limiter.admit(sender: specialist, recipient: try Handle("yaw.ent"), now: start + .seconds(130)) == false)
    }

    @Test func sendersNotSeenForAWindowAreForgotten() async {
        let limiter = NewRecipientLimiter(limit: 3, window: .seconds(60))
        _ = await limiter.admit(sender: gp, recipient: recipients[0], now: start)
        #expect(await limiter.trackedSenders == 1)
        _ = await limiter.admit(sender: try! Handle("kofi.cardio"), recipient: recipients[0], now: start + .seconds(120))
        #expect(await limiter.trackedSenders == 1)
    }
}
