import CurbsideWire

/// A provider's keys with no profile and no relay: an identity, signed prekey 1 and one-time prekey 7 (kept in
/// `ring`), and the bundle a sender would fetch. For tests of the wire format and of the relay's key directory;
/// tests that need a profile on a live relay use ``Providers``.
public struct ProviderKeys: Sendable {
    /// The time the keys are made for; the bundle's signed prekey expires an hour later.
    public static let now = Timestamp(millisecondsSince1970: 1_800_000_000_000)

    public let key: SigningKey
    public let party: Party
    public let ring: PrekeyRing
    public let bundle: PrekeyBundle
    public var handle: Handle { party.handle }

    /// New keys for `handle`; without `oneTime`, the bundle has no one-time prekey.
    public init(_ handle: String, oneTime: Bool = true) {
        key = SigningKey()
        party = Party(identityKey: key.verifyingKey, handle: try! Handle(handle))
        let signed = AgreementKey.Private(), oneTimeKey = AgreementKey.Private()
        ring = PrekeyRing(signedPrekeys: [1: signed], oneTimePrekeys: oneTime ? [7: oneTimeKey] : [:])
        bundle = PrekeyBundle(
            owner: party,
            signedPrekey: SignedPrekey(id: 1, publicKey: signed.publicKey, expiresAt: Self.now.adding(seconds: 3600), signedBy: key),
            oneTimePrekey: oneTime ? OneTimePrekey(id: 7, publicKey: oneTimeKey.publicKey, signedBy: key) : nil
        )
    }

    /// A fresh signed prekey valid for a day from ``now``, signed by this identity or by `signer` (a forgery).
    public func signedPrekey(id: UInt32 = 1, signer: SigningKey? = nil) -> SignedPrekey {
        SignedPrekey(id: id, publicKey: AgreementKey.Private().publicKey, expiresAt: Self.now.adding(seconds: 86_400), signedBy: signer ?? key)
    }

    /// Fresh one-time prekeys numbered `ids`, signed by this identity or by `signer` (a forgery).
    public func oneTimePrekeys(_ ids: Range<UInt32>, signer: SigningKey? = nil) -> [OneTimePrekey] {
        ids.map { OneTimePrekey(id: $0, publicKey: AgreementKey.Private().publicKey, signedBy: signer ?? key) }
    }
}
