import CurbsideTestSupport
import Foundation
import GRDB
import Testing

@testable import CurbsideCLI

/// Issue 17, items 5, 6 and 10: what a busy clinician reads — the inbox, `watch`, shortened ids, fingerprints
/// as printed, one's own half of a safety number — through the real binary, each provider a process of its own.
@Suite("curbside inbox, watch, ids and fingerprints", .serialized)
struct ReadingCommandTests {
    typealias Result = (status: Int32, stdout: String, stderr: String)

    func curbside(_ arguments: String..., home: String, environment: [String: String] = [:]) throws -> Result {
        try Executable.provider(arguments, home: home, environment: environment)
    }

    func base() throws -> String { try Executable.scratchDirectory("reading") }

    func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object: \(text)")
    }

    /// Item 5: consults and replies one line each, unread marked, urgency shown, a reply under its consult's
    /// subject, receipts only with --all, an attachment with its format and real size and how to export it.
    @Test func theInboxListsWhatMattersAndSaysWhereAttachmentsAre() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { _ in
            let photo = "\(base)/lesion.jpg"
            try Data(SamplePhoto.jpeg(scan: 140_000)).write(to: URL(fileURLWithPath: photo))
            let sent = try curbside(
                "send", "osei.derm", "--subject", "Pigmented lesion, left forearm", "--question", "Excise within two weeks?",
                "--urgency", "urgent", "--image", photo, home: gp
            )
            #expect(sent.status == 0, "\(sent.stderr)")
            let id = try #require(sent.stdout.firstMatch(of: /[0-9a-f]{32}/)).output

            let inbox = try curbside("inbox", home: derm)
            #expect(inbox.status == 0, "\(inbox.stderr)")
            let line = try #require(inbox.stdout.split(separator: "\n").first { $0.contains(id) }, "\(inbox.stdout)")
            #expect(line.hasPrefix("* \(id)  20"), "unread: \(line)")
            #expect(line.contains("consult from amara.gp  [urgent]  Pigmented lesion, left forearm  (lesion.jpg, JPEG, "), "\(line)")
            #expect(inbox.stdout.contains("* 1 unread: `curbside show ID` reads one"))
            #expect(inbox.stdout.contains("`curbside show ID --save-dir DIR` exports attachments"))

            // The size shown is the photo's own (GPS removed), not the encrypted file's: exactly what export writes.
            let listed = try json(try curbside("inbox", "--json", home: derm).stdout)["messages"] as? [[String: Any]]
            let attachment = try #require((listed?.first?["attachments"] as? [[String: Any]])?.first)
            let shown = try curbside("show", String(id.prefix(8)), home: derm)
            #expect(shown.status == 0, "\(shown.stderr)")
            #expect(shown.stdout.contains("lesion.jpg, JPEG, ") && shown.stdout.contains(" — `curbside show \(id.prefix(8)) --save-dir DIR` to export"), "\(shown.stdout)")
            let saved = try curbside("show", String(id), "--save-dir", "\(base)/export", home: derm)
            let exported = try FileManager.default.attributesOfItem(atPath: "\(base)/export/lesion.jpg")[.size] as? Int
            #expect(attachment["content_size"] as? Int == exported)
            #expect((attachment["size"] as? Int ?? 0) > exported ?? .max, "the encrypted file is larger")
            let size = formatBytes(UInt64(exported ?? 0))
            #expect(size.hasSuffix(" KiB") && line.contains("(lesion.jpg, JPEG, \(size))"), "\(size) in \(line)")
            #expect(saved.stdout.contains("lesion.jpg, JPEG, \(size) — saved as \(base)/export/lesion.jpg"), "\(saved.stdout)")
            #expect(!saved.stdout.contains("bytes"))

            // Read: no longer marked.
            let read = try curbside("inbox", home: derm)
            #expect(read.stdout.contains("  \(id)  20") && !read.stdout.contains("* \(id)"), "\(read.stdout)")
            #expect(!read.stdout.contains("unread"))

            let replied = try curbside("reply", String(id.prefix(10)), "--text", "Dysplastic naevus likely; excise with 2 mm margins.\nSee attached.", home: derm)
            #expect(replied.status == 0, "\(replied.stderr)")
            let replyID = try #require(replied.stdout.firstMatch(of: /[0-9a-f]{32}/)).output

            // The GP: the answer under the consult's subject; the derm's delivered and read receipts not listed.
            let gpInbox = try curbside("inbox", home: gp)
            #expect(gpInbox.status == 0, "\(gpInbox.stderr)")
            let lines = gpInbox.stdout.split(separator: "\n").filter { $0.contains(/[0-9a-f]{32}/) }
            #expect(lines.count == 1, "only the reply: \(gpInbox.stdout)")
            #expect(
                lines.first?.contains("* \(replyID)  ") == true
                    && lines.first?.contains("reply   from osei.derm  re: Pigmented lesion, left forearm — Dysplastic naevus likely; excise with 2 mm margins.") == true,
                "\(gpInbox.stdout)"
            )
            #expect(!gpInbox.stdout.contains("receipt for"))
            #expect(gpInbox.stdout.contains("2 receipts not listed (--all lists them)"), "\(gpInbox.stdout)")
            let all = try curbside("inbox", "--all", home: gp)
            #expect(all.stdout.contains("receipt from osei.derm  delivered receipt for \(id)"), "\(all.stdout)")
            #expect(all.stdout.contains("receipt from osei.derm  read receipt for \(id)"), "\(all.stdout)")
            let gpJSON = try json(try curbside("inbox", "--json", home: gp).stdout)["messages"] as? [[String: Any]]
            #expect(gpJSON?.count == 1)
            #expect(gpJSON?.first?["consult_subject"] as? String == "Pigmented lesion, left forearm")
            #expect(gpJSON?.first?["unread"] as? Bool == true)
        }
    }

    /// Item 10: any unique prefix of 6 or more hex digits names a message; a shorter one, or one that several ids
    /// begin with, is a usage error (the second listing the candidates), and nothing is shown or sent.
    @Test func messageIDsMayBeShortenedWhileUnique() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { _ in
            var ids: [String] = []
            for subject in ["Retinal photo", "Rash on both hands"] {
                let sent = try curbside("send", "osei.derm", "--subject", subject, "--question", "Refer?", home: gp)
                #expect(sent.status == 0, "\(sent.stderr)")
                ids.append(String(try #require(sent.stdout.firstMatch(of: /[0-9a-f]{32}/)).output))
            }
            #expect(try curbside("inbox", home: derm).status == 0)

            let prefix = try curbside("show", String(ids[0].prefix(6)).uppercased(), home: derm)
            #expect(prefix.status == 0, "\(prefix.stderr)")
            #expect(prefix.stdout.contains("consult \(ids[0]) from amara.gp") && prefix.stdout.contains("Retinal photo"))
            #expect(try curbside("status", String(ids[1].prefix(7)), home: gp).stdout.contains("Rash on both hands"))

            let short = try curbside("show", String(ids[0].prefix(5)), home: derm)
            #expect(short.status == ExitStatus.usage)
            #expect(short.stderr.hasPrefix("curbside: error: \"\(ids[0].prefix(5))\" is not a message id: too short, give at least 6"), "\(short.stderr)")
            let notHex = try curbside("show", "pigmented", home: derm)
            #expect(notHex.status == ExitStatus.usage && notHex.stderr.contains("is not a message id"), "\(notHex.stderr)")
            let unknown = try curbside("show", "000000000", home: derm)
            #expect(unknown.status == ExitStatus.usage && unknown.stderr.contains("no message id begins with 000000000"), "\(unknown.stderr)")

            // Make the second consult's id begin as the first's does (its content is never opened on this path).
            // The ninth digit is made to differ from the first id's, so that nine digits tell them apart.
            let ninth = ids[0].dropFirst(8).first == "0" ? "1" : "0"
            let collided = String(ids[0].prefix(8)) + ninth + String(ids[1].dropFirst(9))
            let profile = try DatabaseQueue(path: "\(derm)/profile.sqlite")
            let second = ids[1]
            try await profile.write { db in
                try db.execute(sql: "UPDATE message SET id = X'\(collided)' WHERE id = X'\(second)'")
            }
            try profile.close()
            let ambiguous = try curbside("show", String(ids[0].prefix(8)), home: derm)
            #expect(ambiguous.status == ExitStatus.usage)
            #expect(ambiguous.stderr.contains("is the beginning of several message ids"), "\(ambiguous.stderr)")
            #expect(ambiguous.stderr.contains(ids[0]) && ambiguous.stderr.contains(collided), "both listed: \(ambiguous.stderr)")
            #expect(ambiguous.stderr.contains("curbside: hint: give more digits"))
            let replied = try curbside("reply", String(ids[0].prefix(8)), "--text", "which?", home: derm)
            #expect(replied.status == ExitStatus.usage, "nothing is sent to an ambiguous id: \(replied.stdout)")
            // One more digit settles it.
            #expect(try curbside("show", String(ids[0].prefix(9)), home: derm).stdout.contains("Retinal photo"))
        }
    }

    /// Item 10: the relay fingerprint in each form Curbside prints — bare hex (relay init), sha256:… (relay serve's
    /// log), in capitals or grouped — pins the relay; a shortened one is refused. `whoami` shows one's half of
    /// every safety number, grouped as `contacts show` prints the whole.
    @Test func fingerprintsAsPrintedAndTheSafetyNumberHalf() async throws {
        let base = try base()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let (relay, gp, derm) = try await RelayProcess.startWithGPAndDerm(base: base)
        try await withStopping(relay) { relay in
            let hex = relay.fingerprint
            let grouped = stride(from: 0, to: 64, by: 2).map { offset in
                String(hex.dropFirst(offset).prefix(2))
            }.joined(separator: ":").uppercased()
            for (number, form) in ["sha256:\(hex)", "SHA256:\(hex.uppercased())", grouped].enumerated() {
                let home = "\(base)/colleague\(number)"
                let created = try curbside(
                    "init", "--handle", "colleague\(number).gp", "--relay", "127.0.0.1:\(relay.port)", "--relay-fingerprint", form,
                    "--code", try relay.enroll("colleague\(number).gp"), home: home
                )
                #expect(created.status == 0, "\(form): \(created.stderr)")
                #expect(try curbside("whoami", home: home).stdout.contains("fingerprint    \(hex)"), "stored as bare hex")
            }
            let shortened = try curbside(
                "init", "--handle", "shortened.gp", "--relay", "127.0.0.1:\(relay.port)", "--relay-fingerprint",
                "\(hex.prefix(8))…\(hex.suffix(4))", "--code", try relay.enroll("shortened.gp"), home: "\(base)/shortened"
            )
            #expect(shortened.status == ExitStatus.usage, "\(shortened.stderr)")
            #expect(!FileManager.default.fileExists(atPath: "\(base)/shortened/identity.json"))

            let whoami = try curbside("whoami", home: gp)
            #expect(whoami.status == 0, "\(whoami.stderr)")
            let half = try #require(whoami.stdout.firstMatch(of: /safety number[^\n]*\n +(\d{5} \d{5} \d{5} \d{5})\n +(\d{5} \d{5})\n/), "\(whoami.stdout)")
            let halfDigits = String(half.output.1 + half.output.2).filter(\.isNumber)
            #expect(halfDigits.count == 30)
            let halfJSON = try json(try curbside("whoami", "--json", home: gp).stdout)["safety_number_half"] as? String
            #expect(halfJSON?.filter(\.isNumber) == halfDigits)
            let contact = try curbside("contacts", "show", "amara.gp", home: derm)
            #expect(contact.status == 0, "\(contact.stderr)")
            let whole = contact.stdout.split(separator: "\n").filter { $0.wholeMatch(of: /^ +(\d{5} ){3}\d{5}$/) != nil }
            let wholeDigits = whole.joined().filter(\.isNumber)
            #expect(wholeDigits.count == 60, "\(contact.stdout)")
            #expect(wholeDigits.hasPrefix(halfDigits) || wholeDigits.hasSuffix(halfDigits), "\(halfDigits) in \(wholeDigits)")
            // The dermatologist's own half is the other one.
            let dermHalf = try json(try curbside("whoami", "--json", home: derm).stdout)["safety_number_half"] as? String
            #expect(dermHalf?.filter(\.isNumber) != halfDigits)
            #expect(wholeDigits.contains(dermHalf?.filter(\.isNumber) ?? "-"))
        }
    }
}
