import CurbsideTestSupport
import Foundation
import Testing

/// `curbside send --image` judges a file by its bytes, not its name (spec/attachments.md §Privacy before
/// encryption): run as a clinician would, two providers and a relay in separate processes.
@Suite("curbside send --image: content, not name", .serialized)
struct ImageContentCommandTests {
    @Test func filesAreJudgedByTheirBytes() async throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-content-\(UUID())").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { relay in
            func curbside(_ arguments: String..., home: String) throws -> (status: Int32, stdout: String, stderr: String) {
                try Executable.run(arguments + ["--home", home], environment: ProviderCommandTests.environment)
            }
            func file(_ name: String, _ bytes: [UInt8]) throws -> String {
                let path = "\(base)/\(name)"
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                return path
            }
            func send(_ path: String, _ extra: String...) throws -> (status: Int32, stdout: String, stderr: String) {
                try Executable.run(
                    ["send", "osei.derm", "--subject", "Lesion", "--question", "Excise?", "--image", path, "--json"] + extra + ["--home", gp],
                    environment: ProviderCommandTests.environment
                )
            }

            // Refused, each with a message that says what the file is and a hint; nothing is queued.
            let refusals: [(path: String, error: String, hint: String)] = [
                (
                    try file("fundus.webp", SamplePhoto.webp),
                    "fundus.webp is a WebP file; Curbside can remove location data (EXIF GPS) only from JPEG and PNG",
                    "convert it to JPEG or PNG first, or send it as it is with --keep-metadata"
                ),
                (
                    try file("fundus-renamed.jpg", SamplePhoto.webp),
                    "fundus-renamed.jpg is a WebP file (whatever its name says);",
                    "convert it to JPEG or PNG first"
                ),
                (try file("empty.jpg", []), "empty.jpg is empty; there is nothing to attach", "check that the file finished"),
                (
                    try file("notreally.jpg", Array("this is a referral letter, not a photo\n".utf8)),
                    "notreally.jpg is not a JPEG image: its content is not any image format Curbside recognises",
                    "check that you attached the file you meant"
                ),
            ]
            // With --json, the error is one JSON object on standard error.
            func error(_ stderr: String) throws -> (code: String?, message: String, hint: String) {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(stderr.utf8)) as? [String: Any], "\(stderr)")
                let error = try #require(object["error"] as? [String: Any])
                return (error["code"] as? String, error["message"] as? String ?? "", error["hint"] as? String ?? "")
            }
            for refusal in refusals {
                let sent = try send(refusal.path)
                #expect(sent.status == 64, "\(refusal.path): \(sent.stderr)")
                let said = try error(sent.stderr)
                #expect(said.code == "unsupported_attachment")
                #expect(said.message.hasPrefix(refusal.error), "\(sent.stderr)")
                #expect(said.hint.contains(refusal.hint), "\(sent.stderr)")
            }
            // An empty file and a text file named .jpg stay refused with --keep-metadata: keeping metadata is no
            // reason to send what is not the photo the user thinks it is.
            #expect(try error(try send(refusals[2].path, "--keep-metadata").stderr).message.hasPrefix(refusals[2].error))
            #expect(try error(try send(refusals[3].path, "--keep-metadata").stderr).message.hasPrefix(refusals[3].error))
            let nothingSent = try curbside("status", "--json", home: gp)
            #expect((try JSONSerialization.jsonObject(with: Data(nothingSent.stdout.utf8)) as? [Any])?.isEmpty == true, "\(nothingSent.stdout)")
            let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: "\(gp)/attachments")) ?? []
            #expect(leftovers.isEmpty, "no encrypted file is left behind: \(leftovers)")

            // The WebP goes as it is when the user says so, recorded as image/webp.
            let keptWebP = try send(refusals[0].path, "--keep-metadata")
            #expect(keptWebP.status == 0, "\(keptWebP.stderr)")
            // A PNG named .jpg is a PNG: its text chunk is removed and the descriptor says image/png.
            let png = try send(try file("photo.jpg", SamplePhoto.png(metadata: "tEXt", Array("Location\0Kumasi 6.69 N 1.62 W".utf8))))
            #expect(png.status == 0, "\(png.stderr)")
            let outcome = try JSONSerialization.jsonObject(with: Data(png.stdout.utf8)) as? [String: Any]
            #expect(outcome?["removed_metadata"] as? [String] == ["photo.jpg: PNG text chunks"])

            #expect(try curbside("inbox", home: derm).status == 0)
            for (sent, line) in [(keptWebP, "fundus.webp, WebP, "), (png, "photo.jpg, PNG, ")] {
                let id = try #require((try JSONSerialization.jsonObject(with: Data(sent.stdout.utf8)) as? [String: Any])?["id"] as? String)
                let shown = try curbside("show", id, home: derm)
                #expect(shown.stdout.contains(line), "\(shown.stdout)")
            }
        }
    }
}
