import CurbsideTestSupport
import Foundation
import Testing

@testable import CurbsideWire

/// The oracle of `make fuzz`, run in `make test` without libFuzzer: seeded mutations of every byte string in
/// spec/vectors (bytes flipped, inserted, removed, cut off) go through the decoders of untrusted bytes, which must
/// never trap, and whatever decodes must re-encode to exactly the same bytes (one encoding per value). Inputs that
/// once crashed a harness are kept in fuzz/regressions/<harness>/ and replayed here too.
@Suite("decoders under mutation")
struct DecoderMutationTests {
    enum Decoder: String, CaseIterable, Sendable {
        case frames, envelope, bundle

        /// The vector files whose byte strings seed this decoder.
        var vectorFiles: [String] {
            switch self {
            case .frames: ["relay.json", "encoding.json"]
            case .envelope: ["envelopes.json", "encoding.json"]
            case .bundle: ["bundles.json", "encoding.json"]
            }
        }

        var harness: String { "fuzz-\(rawValue)" }

        /// How many inputs decoded; records an issue for any that re-encodes differently.
        func check(_ bytes: [UInt8]) -> Int {
            switch self {
            case .frames:
                var parser = FrameParser(maximumLength: 1 << 16)
                parser.append(bytes)
                var decoded = 0
                while let frame = try? parser.next() {
                    guard let message = try? RelayMessage(decoding: frame) else { continue }
                    decoded += 1
                    #expect(message.frame(requestID: frame.requestID) == frame, "frame type \(frame.type) is not canonical: \(bytes.hexString)")
                }
                return decoded
            case .envelope:
                var decoded = 0
                if let envelope = try? SealedEnvelope(decoding: bytes) {
                    decoded += 1
                    #expect(envelope.encoded == bytes, "sealed envelope is not canonical: \(bytes.hexString)")
                }
                if let message = try? Message(decoding: bytes) {
                    decoded += 1
                    #expect(message.encoded == bytes, "message is not canonical: \(bytes.hexString)")
                }
                return decoded
            case .bundle:
                guard let bundle = try? PrekeyBundle(decoding: bytes) else { return 0 }
                #expect(bundle.encoded == bytes, "prekey bundle is not canonical: \(bytes.hexString)")
                try? bundle.verify(now: Timestamp(millisecondsSince1970: 0))
                return 1
            }
        }
    }

    /// Every even-length hex string in the decoder's vector files.
    static func seeds(for decoder: Decoder) throws -> [[UInt8]] {
        func strings(_ value: Any) -> [String] {
            if let text = value as? String { return [text] }
            if let object = value as? [String: Any] { return object.values.flatMap(strings) }
            if let array = value as? [Any] { return array.flatMap(strings) }
            return []
        }
        return try decoder.vectorFiles.flatMap { name in
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Repository.vectors.appendingPathComponent(name)))
            return strings(json).compactMap { text in
                text.count >= 2 && text.count % 2 == 0 ? [UInt8](hexString: text) : nil
            }
        }
    }

    @Test(arguments: Decoder.allCases)
    func mutatedVectorsNeverTrapAndWhatDecodesIsCanonical(decoder: Decoder) throws {
        let seeds = try Self.seeds(for: decoder)
        try #require(!seeds.isEmpty)
        var generator = SplitMix64(seed: 20_261_129)
        // The vectors themselves: valid ones must round-trip, so some inputs do decode.
        let decodedSeeds = seeds.reduce(0) { $0 + decoder.check($1) }
        #expect(decodedSeeds > 0)
        var decodedMutants = 0
        for _ in 0..<20_000 {
            decodedMutants += decoder.check(mutate(seeds.randomElement(using: &generator)!, using: &generator))
        }
        let regressions = Repository.root.appendingPathComponent("fuzz/regressions/\(decoder.harness)")
        let replayed = (try? FileManager.default.contentsOfDirectory(at: regressions, includingPropertiesForKeys: nil)) ?? []
        for file in replayed { _ = decoder.check([UInt8](try Data(contentsOf: file))) }
        print("\(decoder): \(seeds.count) seeds (\(decodedSeeds) decoded), 20000 mutants (\(decodedMutants) decoded), \(replayed.count) regressions replayed")
    }
}
