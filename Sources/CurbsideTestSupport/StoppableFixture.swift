/// Something a test starts and must stop — a relay, a set of provider profiles, a connection — before it ends.
public protocol StoppableFixture {
    func stop() async
    /// Removes what the fixture made for itself (its temporary directory), once it has stopped for good.
    func discard()
}

extension StoppableFixture {
    /// Nothing to remove by default.
    public func discard() {}
}

/// Runs `body` with `fixture`, then stops `fixture` and waits until it has stopped, whether `body` returned or threw,
/// so no test leaves a relay running behind it for the next test to meet; then discards what it made for itself.
public func withStopping<Fixture: StoppableFixture, Result>(
    _ fixture: Fixture,
    _ body: (Fixture) async throws -> Result
) async throws -> Result {
    let result: Result
    do {
        result = try await body(fixture)
    } catch {
        await fixture.stop()
        fixture.discard()
        throw error
    }
    await fixture.stop()
    fixture.discard()
    return result
}
