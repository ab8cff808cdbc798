import CurbsideTestSupport

extension CraftedPeer: StoppableFixture {
    func stop() async { await close() }
}
