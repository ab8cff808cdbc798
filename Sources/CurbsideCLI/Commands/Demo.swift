import ArgumentParser
import CurbsideWire

extension Curbside {
    /// Runs the main job end to end on this machine and prints each step.
    struct Demo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a consult end to end on this machine and show each step.",
            discussion: """
                Two providers with fresh identities: one publishes a prekey bundle, the other seals a consult \
                with an attachment descriptor to it, the first opens and verifies it and answers with a \
                signed receipt and a reply. Nothing is written to disk.
                """
        )

        func run() throws {
            for line in try DemoScript.run() { print(line) }
        }
    }
}

/// The demo's steps, kept apart from printing so tests can check them.
enum DemoScript {
    static func run(now: Timestamp = .now()) throws -> [String] {
        var out: [String] = []

        let gpKey = SigningKey()
        let dermKey = SigningKey()
        let gp = Party(identityKey: gpKey.verifyingKey, handle: try Handle("amara.gp"))
        let derm = Party(identityKey: dermKey.verifyingKey, handle: try Handle("osei.derm"))
        out.append("identities   \(gp.handle) and \(derm.handle)")
        let safety = SafetyNumber(gp, derm)
        out.append("safety number (the same on both sides):")
        out += safety.displayLines.map { "             \($0)" }

        // The dermatologist publishes a signed prekey and one one-time prekey; the GP only a signed prekey.
        var (bundle, dermRing) = publish(derm, signedBy: dermKey, oneTimePrekeyID: 100, now: now)
        let (gpBundle, gpRing) = publish(gp, signedBy: gpKey, oneTimePrekeyID: nil, now: now)
        out.append("bundle       \(bundle.encoded.count) bytes, signed prekey 1, one-time prekey 100")

        // The GP seals a consult with one image descriptor.
        let consult = try Consult(
            subject: "Pigmented lesion, left forearm",
            urgency: .urgent,
            specialty: "dermatology",
            question: "Does this need excision within two weeks?",
            clinicalSummary: "54-year-old, lesion grown over 3 months, irregular border, 7 mm."
        )
        let image = try AttachmentDescriptor(
            size: 48_213,
            sha256: SHA256.hash(Array("placeholder image ciphertext".utf8)),
            mediaType: "image/jpeg",
            fileName: "forearm.jpg",
            ageIdentity: AgreementKey.Private()
        )
        let message = try Message(sender: gp, recipient: derm, content: .consult(consult), attachments: [image])
        let sealed = try SealedEnvelope.seal(message, to: bundle, signedBy: gpKey, now: now)
        let wire = sealed.encoded
        out.append("sealed       consult \(message.id) → \(wire.count) bytes to \(sealed.header.prekey)")

        // The dermatologist opens it; the one-time prekey is then deleted.
        let opened = try SealedEnvelope(decoding: wire).open(as: derm, using: dermRing)
        dermRing.oneTimePrekeys[opened.prekey.id] = nil
        guard case .consult(let received) = opened.message.content else {
            throw ValidationError("demo: the opened message is not a consult")
        }
        out.append("opened       \"\(received.subject)\" (\(received.urgency)), signature of \(opened.message.sender.handle) verified")
        do {
            _ = try SealedEnvelope(decoding: wire).open(as: derm, using: dermRing)
            out.append("replay       opened again: this must not happen")
        } catch let error as EnvelopeError {
            out.append("replay       refused: \(error.code.name) (the one-time prekey is gone)")
        }

        // A signed receipt and the answer go back to the GP.
        let receipt = try Message(
            sender: derm,
            recipient: gp,
            threadID: message.threadID,
            content: .receipt(.delivered(message.id))
        )
        let reply = try Message(
            sender: derm,
            recipient: gp,
            threadID: message.threadID,
            content: .reply(try Reply(inReplyTo: message.id, text: "Features suggest dysplastic naevus; excise within 2 weeks."))
        )
        for outgoing in [receipt, reply] {
            let envelope = try SealedEnvelope.seal(outgoing, to: gpBundle, signedBy: dermKey, now: now)
            let back = try SealedEnvelope(decoding: envelope.encoded).open(as: gp, using: gpRing)
            switch back.message.content {
            case .receipt(let r): out.append("receipt      \(r.kind) for \(r.messageID), \(envelope.encoded.count) bytes")
            case .reply(let r): out.append("answer       \"\(r.text)\"")
            case .consult: break
            }
        }
        out.append("done         the consult was sealed, opened, acknowledged and answered")
        return out
    }

    /// A bundle with signed prekey 1, valid for a week, and optionally one one-time prekey; with its private keys.
    private static func publish(
        _ owner: Party,
        signedBy key: SigningKey,
        oneTimePrekeyID: UInt32?,
        now: Timestamp
    ) -> (PrekeyBundle, PrekeyRing) {
        let signedPrekey = AgreementKey.Private()
        var ring = PrekeyRing(signedPrekeys: [1: signedPrekey])
        var oneTime: OneTimePrekey?
        if let id = oneTimePrekeyID {
            let oneTimeKey = AgreementKey.Private()
            ring.oneTimePrekeys[id] = oneTimeKey
            oneTime = OneTimePrekey(id: id, publicKey: oneTimeKey.publicKey, signedBy: key)
        }
        let bundle = PrekeyBundle(
            owner: owner,
            signedPrekey: SignedPrekey(
                id: 1,
                publicKey: signedPrekey.publicKey,
                expiresAt: now.adding(seconds: 7 * 24 * 3600),
                signedBy: key
            ),
            oneTimePrekey: oneTime
        )
        return (bundle, ring)
    }
}
