/// Something a test starts and must stop — a relay, a set of provider profiles, a connection — before it ends.
public protocol StoppableFixture {
    func stop() async
}

/// Runs `body` with `fixture`, then stops `fixture` and waits until it has stopped, whether `body` returned or threw,
/// so no test leaves a relay running behind it for the next test to meet.
public func withStopping<Fixture: StoppableFixture, Result>(
    _ fixture: Fixture,
    _ body: (Fixture) async throws -> Result
) async throws -> Result {
    let result: Result
    do {
        result = try await body(fixture)
    } catch {
        await fixture.stop()
        throw error
    }
    await fixture.stop()
    return result
}
