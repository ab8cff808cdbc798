import CurbsideWire
import NIOCore
import Testing

@testable import CurbsideRelay

@Suite("bundle fetch limiter")
struct BundleFetchLimiterTests {
    let start = NIODeadline.now()
    let gp = try! Handle("amara.gp")
    let derm = try! Handle("osei.derm")
    let cardio = try! Handle("kofi.cardio")

    /// A burst of `burst` one-time prekeys, then one per refill interval, per (requester, owner).
    @Test func aBurstThenOnePerInterval() async {
        let limiter = BundleFetchLimiter(burst: 10, refill: .seconds(60))
        var granted = 0
        for _ in 0..<150 where await limiter.take(requester: gp, owner: derm, now: start) { granted += 1 }
        #expect(granted == 10)
        #expect(await limiter.take(requester: gp, owner: derm, now: start + .seconds(59)) == false)
        #expect(await limiter.take(requester: gp, owner: derm, now: start + .seconds(60)) == true)
        #expect(await limiter.take(requester: gp, owner: derm, now: start + .seconds(61)) == false)
        // Two intervals later, two more; the clock counts from the last credit, not from the last take.
        #expect(await limiter.take(requester: gp, owner: derm, now: start + .seconds(180)) == true)
        #expect(await limiter.take(requester: gp, owner: derm, now: start + .seconds(180)) == true)
        #expect(await limiter.take(requester: gp, owner: derm, now: start + .seconds(180)) == false)
    }

    /// Another requester of the same owner, and the same requester of another owner, have buckets of their own.
    @Test func pairsAreIndependent() async {
        let limiter = BundleFetchLimiter(burst: 2, refill: .seconds(60))
        for _ in 0..<5 { _ = await limiter.take(requester: gp, owner: derm, now: start) }
        #expect(await limiter.take(requester: gp, owner: derm, now: start) == false)
        #expect(await limiter.take(requester: cardio, owner: derm, now: start) == true)
        #expect(await limiter.take(requester: gp, owner: cardio, now: start) == true)
    }

    /// Buckets that have filled up again are forgotten.
    @Test func fullBucketsAreForgotten() async {
        let limiter = BundleFetchLimiter(burst: 2, refill: .seconds(1))
        _ = await limiter.take(requester: gp, owner: derm, now: start)
        _ = await limiter.take(requester: cardio, owner: derm, now: start)
        #expect(await limiter.trackedPairs == 2)
        _ = await limiter.take(requester: gp, owner: cardio, now: start + .seconds(10))
        #expect(await limiter.trackedPairs == 1)
    }

    /// The table never grows past its bound: a new pair finding it full (and nothing to forget) gets no one-time
    /// prekey, while pairs already tracked go on.
    @Test func theTableIsBounded() async throws {
        let limiter = BundleFetchLimiter(burst: 2, refill: .seconds(60), maximumPairs: 2)
        #expect(await limiter.take(requester: gp, owner: derm, now: start))
        #expect(await limiter.take(requester: cardio, owner: derm, now: start))
        #expect(await limiter.take(requester: gp, owner: cardio, now: start) == false)
        #expect(await limiter.trackedPairs == 2)
        #expect(await limiter.take(requester: gp, owner: derm, now: start))
        // Once the tracked buckets are full again they are forgotten and a new pair has room.
        #expect(await limiter.take(requester: gp, owner: cardio, now: start + .seconds(600)))
    }
}
