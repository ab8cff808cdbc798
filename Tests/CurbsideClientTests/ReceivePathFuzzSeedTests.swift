import CurbsideTestSupport
import Foundation
import Testing

@_spi(Fuzzing) @testable import CurbsideClient

/// `fuzz-receive`'s seed corpus, run in `make test` without libFuzzer: every byte string of spec/vectors' encoding
/// and envelope files in each of the harness's modes (as fuzz/seeds.py writes them), seeded mutations of those, and
/// the inputs kept in fuzz/regressions/fuzz-receive/. Each goes through a real profile's receive path twice; the
/// harness throws a finding when a rule breaks (an envelope's own fault thrown as an error, a re-delivery settled
/// differently or changing the profile, a rejection not recorded).
@Suite("receive path under fuzz seeds")
struct ReceivePathFuzzSeedTests {
    static let prefixes: [[UInt8]] = [[0], [1, 1], [2, 0], [3, 1], [4]]

    static func seeds() throws -> [[UInt8]] {
        func strings(_ value: Any) -> [String] {
            if let text = value as? String { return [text] }
            if let object = value as? [String: Any] { return object.values.flatMap(strings) }
            if let array = value as? [Any] { return array.flatMap(strings) }
            return []
        }
        let bytes = try ["encoding.json", "envelopes.json"].flatMap { name in
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Repository.vectors.appendingPathComponent(name)))
            return strings(json).compactMap { text in text.count >= 2 && text.count % 2 == 0 ? [UInt8](hexString: text) : nil }
        }
        return bytes.flatMap { string in prefixes.map { $0 + string } }
    }

    @Test func seedsMutantsAndRegressionsAreSettledOnceAndAlike() async throws {
        let parent = FileManager.default.fileExists(atPath: "/dev/shm") ? URL(fileURLWithPath: "/dev/shm") : FileManager.default.temporaryDirectory
        let harness = try await ReceivePathHarness(in: parent)
        defer { harness.remove() }
        let seeds = try Self.seeds()
        try #require(seeds.count > 500)
        var outcomes: [ReceivePathHarness.Outcome: Int] = [:]
        func run(_ input: [UInt8]) async {
            do {
                outcomes[try await harness.run(input), default: 0] += 1
            } catch {
                Issue.record("\(error) for input \(input.hexString)")
            }
        }
        for seed in seeds { await run(seed) }
        // The vectors hold valid messages and envelopes: some must open and be acknowledged, some must be rejected.
        #expect(outcomes[.acknowledged, default: 0] >= 5 && outcomes[.rejected, default: 0] > 50, "\(outcomes)")
        var generator = SplitMix64(seed: 20_261_204)
        for _ in 0..<1_000 {
            var mutant = mutate(Array(seeds.randomElement(using: &generator)!.dropFirst()), using: &generator)
            mutant.insert(UInt8.random(in: 0...4, using: &generator), at: 0)
            await run(mutant)
        }
        let regressions = Repository.root.appendingPathComponent("fuzz/regressions/fuzz-receive")
        let replayed = (try? FileManager.default.contentsOfDirectory(at: regressions, includingPropertiesForKeys: nil)) ?? []
        for file in replayed { await run([UInt8](try Data(contentsOf: file))) }
        print("receive path: \(seeds.count) seeds, 1000 mutants, \(replayed.count) regressions: \(outcomes)")
    }
}
