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

    @Test func sendersNotSeenForAWindowAreForgotten() async {
        let limiter = NewRecipientLimiter(limit: 3, window: .seconds(60))
        _ = await limiter.admit(sender: gp, recipient: recipients[0], now: start)
        #expect(await limiter.trackedSenders == 1)
        _ = await limiter.admit(sender: try! Handle("kofi.cardio"), recipient: recipients[0], now: start + .seconds(120))
        #expect(await limiter.trackedSenders == 1)
    }
}
