import NIOCore
import Testing

@testable import CurbsideRelay

@Suite("login rate limiter")
struct LoginRateLimiterTests {
    let start = NIODeadline.now()

    @Test func concurrentAttemptsCountBeforeTheyFail() async {
        let limiter = LoginRateLimiter(limit: 5, window: .seconds(60))
        let admitted = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<20 { group.addTask { await limiter.admit("192.0.2.1", now: start) != nil } }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(admitted == 5, "no more attempts than the limit, however many arrive at once")
        #expect(await limiter.admit("192.0.2.2", now: start) != nil, "another address is unaffected")
    }

    @Test func successfulLoginsDoNotCount() async throws {
        let limiter = LoginRateLimiter(limit: 2, window: .seconds(60))
        for second in 0..<10 {
            let attempt = try #require(await limiter.admit("192.0.2.1", now: start + .seconds(Int64(second))))
            await limiter.succeeded(attempt)
        }
        _ = await limiter.admit("192.0.2.1", now: start + .seconds(20))
        _ = await limiter.admit("192.0.2.1", now: start + .seconds(21))
        #expect(await limiter.admit("192.0.2.1", now: start + .seconds(22)) == nil)
        #expect(await limiter.admit("192.0.2.1", now: start + .seconds(81)) != nil, "the window slid past the failures")
    }

    @Test func addressesNotSeenForAWindowAreForgotten() async {
        let limiter = LoginRateLimiter(limit: 5, window: .seconds(60))
        for n in 0..<1000 { _ = await limiter.admit("198.51.100.\(n)", now: start + .seconds(1)) }
        #expect(await limiter.trackedAddresses == 1000)
        _ = await limiter.admit("203.0.113.9", now: start + .seconds(120))
        #expect(await limiter.trackedAddresses == 1)
    }
}
