import CurbsideWire
import Foundation

/// What the profile remembers of its relay and the bound login (spec/relay.md §Bound login): when that relay, at
/// that address and key, last refused it. Kept in the profile's settings as JSON.
struct BoundLoginRefusal: Codable, Sendable, Hashable {
    static let settingKey = "relay_bound_login_refused"

    var relay: RelayEndpoint
    var refusedAt: UInt64

    /// Whether the relay should be asked again: another relay, or the refusal is older than `interval` seconds (the
    /// relay may have been upgraded since).
    func allowsBoundLogin(to endpoint: RelayEndpoint, now: Timestamp, interval: UInt64) -> Bool {
        endpoint != relay || now.millisecondsSince1970 >= refusedAt &+ interval * 1000
    }
}

extension Client {
    /// How long a relay that refused the bound login is logged in with its challenge before being asked again.
    static let boundLoginRetryInterval: UInt64 = 7 * 86_400

    /// Whether a new connection logs in with the bound login; false while the relay's refusal is recent.
    func relayTakesBoundLogin(now: Timestamp = .now()) async -> Bool {
        if case .unread = boundLoginRefusal {
            let stored = try? await database.setting(BoundLoginRefusal.settingKey)
            let refusal = stored.flatMap { try? JSONDecoder().decode(BoundLoginRefusal.self, from: Data($0.utf8)) }
            boundLoginRefusal = .read(refusal)
        }
        guard case .read(let refusal?) = boundLoginRefusal else { return true }
        return refusal.allowsBoundLogin(to: relay, now: now, interval: Self.boundLoginRetryInterval)
    }

    /// Remembers that the relay refused the bound login now; a profile that cannot store it still falls back for
    /// this session.
    func noteBoundLoginRefused(now: Timestamp = .now()) async {
        let refusal = BoundLoginRefusal(relay: relay, refusedAt: now.millisecondsSince1970)
        boundLoginRefusal = .read(refusal)
        guard let data = try? JSONEncoder().encode(refusal) else { return }
        do {
            try await database.setSetting(BoundLoginRefusal.settingKey, String(decoding: data, as: UTF8.self))
        } catch {
            logger.debug(
                "the relay's refusal of the bound login was not stored",
                metadata: ["error": "\(type(of: error))"]
            )
        }
    }

    /// The stored refusal, read once per client.
    enum BoundLoginRefusalState: Sendable {
        case unread
        case read(BoundLoginRefusal?)
    }
}
