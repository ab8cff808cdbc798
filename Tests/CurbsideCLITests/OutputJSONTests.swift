import CurbsideClient
import CurbsideWire
import Foundation
import Testing

@testable import CurbsideCLI

/// The `--json` output of `inbox`, `show`, `status` and `watch`, pinned byte for byte: the client library's typed
/// directions, kinds and states encode as the words the CLI has always printed.
///
/// Each document is decoded into the library's type and encoded again as the CLI encodes it; before the states were
/// typed every field was a string, so an unchanged document means unchanged output.
struct OutputJSONTests {
    private func reencoded<T: Codable>(_ type: T.Type, _ json: String) throws -> String {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return String(decoding: try JSONEncoder.cli.encode(try decoder.decode(T.self, from: Data(json.utf8))), as: UTF8.self)
    }

    static let inbox = [
        #"{"created_at":1767225600000,"direction":"in","id":"00112233445566778899aabbccddeeff","kind":"consult","#
            + #""peer":"amara.gp","state":"received","thread":"00112233445566778899aabbccddeeff","title":"Rash","#
            + #""untrusted":false,"urgency":"routine"}"#,
        #"{"created_at":1767225600001,"direction":"in","id":"0102030405060708090a0b0c0d0e0f10","kind":"reply","#
            + #""peer":"amara.gp","state":"read","thread":"00112233445566778899aabbccddeeff","title":"Thanks","#
            + #""untrusted":false}"#,
        #"{"created_at":1767225600002,"direction":"in","id":"1112131415161718191a1b1c1d1e1f20","kind":"receipt","#
            + #""peer":"amara.gp","state":"created","thread":"00112233445566778899aabbccddeeff","#
            + #""title":"delivered receipt for 0102030405060708090a0b0c0d0e0f10","untrusted":false}"#,
        #"{"created_at":1767225600003,"direction":"in","id":"2122232425262728292a2b2c2d2e2f30","kind":"consult","#
            + #""peer":"mallory.gp","state":"received","thread":"2122232425262728292a2b2c2d2e2f30","#
            + #""title":"(hidden: the sender's identity key changed)","untrusted":true}"#,
    ]

    @Test(arguments: inbox)
    func messageSummary(_ json: String) throws {
        #expect(try reencoded(MessageSummary.self, json) == json)
    }

    static let shown =
        #"{"attachments":[{"file_name":"forearm.jpg","index":0,"media_type":"image/jpeg","sha256":"ab01","size":1024,"#
        + #""state":"saved"},{"file_name":"scan.png","index":1,"media_type":"image/png","sha256":"cd02","size":2048,"#
        + #""state":"too_large"},{"file_name":"x.png","index":2,"media_type":"image/png","sha256":"ef03","size":3,"#
        + #""state":"over_sender_limit"},{"file_name":"y.png","index":3,"media_type":"image/png","sha256":"0004","#
        + #""size":4,"state":"unavailable"},{"file_name":"z.png","index":4,"media_type":"image/png","sha256":"0005","#
        + #""size":5,"state":"corrupt"}],"clinical_summary":"Itchy for 3 weeks","question":"Eczema or psoriasis?","#
        + #""specialty":"dermatology","subject":"Rash","summary":{"created_at":1767225600000,"direction":"in","#
        + #""id":"00112233445566778899aabbccddeeff","kind":"consult","peer":"amara.gp","state":"read","#
        + #""thread":"00112233445566778899aabbccddeeff","title":"Rash","untrusted":false,"urgency":"urgent"},"#
        + #""timeline":[{"at":1767225600100,"kind":"received"},{"at":1767225600200,"kind":"read"}]}"#

    @Test func shownMessage() throws {
        #expect(try reencoded(ShownMessage.self, Self.shown) == Self.shown)
    }

    static let status =
        #"[{"answered":1767225609000,"created":1767225600000,"delivered":1767225603000,"#
        + #""delivered_to_device":1767225602000,"queued":false,"read":1767225604000,"stored":1767225601000,"#
        + #""summary":{"created_at":1767225600000,"direction":"out","id":"00112233445566778899aabbccddeeff","#
        + #""kind":"consult","peer":"osei.derm","state":"answered","thread":"00112233445566778899aabbccddeeff","#
        + #""title":"Rash","untrusted":false,"urgency":"routine"},"time_to_answer":9000,"timeline":["#
        + #"{"at":1767225600000,"kind":"created"},{"at":1767225601000,"kind":"stored"},"#
        + #"{"at":1767225602000,"kind":"delivered_to_device"},{"at":1767225603000,"kind":"delivered"},"#
        + #"{"at":1767225604000,"kind":"read"},{"at":1767225609000,"kind":"answered"}]},"#
        + #"{"created":1767225700000,"queued":true,"summary":{"created_at":1767225700000,"direction":"out","#
        + #""id":"0102030405060708090a0b0c0d0e0f10","kind":"reply","peer":"osei.derm","state":"failed","#
        + #""thread":"00112233445566778899aabbccddeeff","title":"See attached","untrusted":false},"timeline":["#
        + #"{"at":1767225700000,"kind":"created"},{"at":1767225800000,"kind":"expired"},"#
        + #"{"at":1767225900000,"detail":"attachment_corrupt: an attachment's size, SHA-256 or encryption did not check","#
        + #""kind":"failed"}]}]"#

    @Test func consultStatus() throws {
        #expect(try reencoded([ConsultStatus].self, Self.status) == Self.status)
    }

    /// Connection events carry a sentence; events about a message carry its fields beside `event` and `at` (as
    /// `inbox --json` lists it), and receipts and notices the `step` reached.
    static let watch = [
        #"{"at":1767225600000,"detail":"127.0.0.1:7443","event":"connected"}"#,
        #"{"at":1767225600001,"detail":"the relay closed the connection","event":"disconnected"}"#,
        #"{"at":1767225600002,"detail":"in 1 s","event":"retrying"}"#,
        #"{"at":1767225600003,"created_at":1767225600000,"direction":"in","event":"received","#
            + #""id":"00112233445566778899aabbccddeeff","kind":"consult","peer":"amara.gp","state":"received","#
            + #""thread":"00112233445566778899aabbccddeeff","title":"Anaphylaxis","unread":true,"untrusted":false,"#
            + #""urgency":"emergency"}"#,
        #"{"at":1767225600004,"created_at":1767225600000,"direction":"out","event":"receipt","#
            + #""id":"0102030405060708090a0b0c0d0e0f10","kind":"consult","peer":"osei.derm","state":"read","step":"read","#
            + #""thread":"0102030405060708090a0b0c0d0e0f10","title":"Rash","untrusted":false,"urgency":"routine"}"#,
        #"{"at":1767225600005,"created_at":1767225600000,"direction":"out","event":"notice","#
            + #""id":"0102030405060708090a0b0c0d0e0f10","kind":"consult","peer":"osei.derm","state":"delivered_to_device","#
            + #""step":"delivered_to_device","thread":"0102030405060708090a0b0c0d0e0f10","title":"Rash","untrusted":false,"#
            + #""urgency":"routine"}"#,
        #"{"at":1767225600006,"created_at":1767225600000,"direction":"out","event":"sent","#
            + #""id":"1112131415161718191a1b1c1d1e1f20","kind":"reply","peer":"amara.gp","state":"stored","#
            + #""thread":"00112233445566778899aabbccddeeff","title":"Excise","untrusted":false}"#,
        #"{"at":1767225600007,"detail":"1 envelope(s) could not be opened; `curbside inbox` says from whom","event":"failed"}"#,
    ]

    @Test(arguments: watch)
    func watchEvent(_ json: String) throws {
        #expect(try reencoded(WatchEvent.self, json) == json)
    }

    /// A watch event's message decodes as the message, not as loose keys.
    @Test func watchEventCarriesItsMessage() throws {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let event = try decoder.decode(WatchEvent.self, from: Data(Self.watch[4].utf8))
        #expect(event.kind == .receipt && event.step == .read && event.detail == nil)
        #expect(event.message?.id == "0102030405060708090a0b0c0d0e0f10" && event.message?.urgency == .routine)
        #expect(try decoder.decode(WatchEvent.self, from: Data(Self.watch[0].utf8)).message == nil)
    }

    /// Every case has its word, and a word the library does not know is refused rather than guessed.
    @Test func wordsOfEachState() throws {
        #expect(Direction.allCases.map(\.rawValue) == ["in", "out"])
        #expect(MessageKind.allCases.map(\.rawValue) == ["consult", "reply", "receipt"])
        #expect(
            DeliveryState.allCases.map(\.rawValue)
                == ["created", "stored", "delivered_to_device", "delivered", "read", "answered", "received", "expired", "failed"]
        )
        #expect(
            AttachmentState.allCases.map(\.rawValue)
                == ["ready", "uploaded", "discarded", "saved", "unavailable", "corrupt", "too_large", "over_sender_limit"]
        )
        #expect(Urgency.allCases.map(\.rawValue) == ["routine", "urgent", "emergency"])
        for urgency in Consult.Urgency.allCases {
            // What the summary carried before it was typed: the wire case's name.
            #expect(Urgency(urgency).rawValue == "\(urgency)")
        }
        #expect(
            WatchEvent.Kind.allCases.map(\.rawValue)
                == ["connected", "disconnected", "retrying", "received", "receipt", "notice", "sent", "failed"]
        )
        // Interpolated (as the human output does) each prints its word, not its Swift name.
        #expect("\(DeliveryState.deliveredToDevice) \(AttachmentState.overSenderLimit) \(Direction.incoming)" == "delivered_to_device over_sender_limit in")
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(WatchEvent.self, from: Data(#"{"at":1,"detail":"","event":"exploded"}"#.utf8))
        }
    }
}
