import CurbsideWire
import NIOCore
import Testing

@testable import CurbsideRelay

@Suite("login rate limiter")
struct LoginRateLimiterTests {
    let start = NIODeadline.now()
    let gp = try! Handle("amara.gp")
    let derm = try! Handle("osei.derm")

    /// Guesses sent all at once cannot all pass the check before any fails: at most `concurrent` are under way,
    /// and once `limit` have failed no more are admitted.
    @Test func parallelGuessesAreBounded() async {
        let limiter = LoginRateLimiter(limit: 5, window: .seconds(60), concurrent: 8)
        let admitted = await withTaskGroup(of: LoginRateLimiter.Attempt?.self) { group in
            for _ in 0..<20 { group.addTask { await limiter.admit("192.0.2.1", handle: gp, now: start) } }
            return await group.reduce(into: [LoginRateLimiter.Attempt]()) { if let attempt = $1 { $0.append(attempt) } }
        }
        #expect(admitted.count == 8, "no more attempts under way than allowed, however many arrive at once")
        for attempt in admitted { await limiter.end(attempt, failed: true, now: start) }
        #expect(await limiter.admit("192.0.2.1", handle: gp, now: start) == nil, "the failures reached the limit")
        #expect(await limiter.admit("192.0.2.2", handle: gp, now: start) != nil, "another address is unaffected")
        #expect(await limiter.admit("192.0.2.1", handle: derm, now: start) != nil, "so is another handle at the address")
    }

    /// Devices behind one address logging in together are not refused: successes never count.
    @Test func successfulLoginsDoNotCount() async throws {
        let limiter = LoginRateLimiter(limit: 2, window: .seconds(60), concurrent: 8)
        var together: [LoginRateLimiter.Attempt] = []
        for _ in 0..<6 { together.append(try #require(await limiter.admit("192.0.2.1", handle: gp, now: start))) }
        for attempt in together { await limiter.end(attempt, failed: false, now: start) }
        for second in 0..<10 {
            let attempt = try #require(await limiter.admit("192.0.2.1", handle: gp, now: start + .seconds(Int64(second))))
            _ = try await limiter.counting(attempt) { true }
        }
        for second in 20..<22 {
            let attempt = try #require(await limiter.admit("192.0.2.1", handle: gp, now: start + .seconds(Int64(second))))
            await limiter.end(attempt, failed: true, now: start + .seconds(Int64(second)))
        }
        #expect(await limiter.admit("192.0.2.1", handle: gp, now: start + .seconds(22)) == nil)
        #expect(await limiter.admit("192.0.2.1", handle: gp, now: start + .seconds(82)) != nil, "the window slid past the failures")
    }

    @Test func addressesNotSeenForAWindowAreForgotten() async {
        let limiter = LoginRateLimiter(limit: 5, window: .seconds(60))
        for n in 0..<1000 {
            if let attempt = await limiter.admit("198.51.100.\(n)", handle: gp, now: start + .seconds(1)) {
                await limiter.end(attempt, failed: true, now: start + .seconds(1))
            }
        }
        #expect(await limiter.trackedAddresses == 1000)
        _ = await limiter.admit("203.0.113.9", handle: gp, now: start + .seconds(120))
        #expect(await limiter.trackedAddresses == 1)
    }
}
