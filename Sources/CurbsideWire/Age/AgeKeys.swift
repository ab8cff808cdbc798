/// age's X25519 keys in their text forms: identities `AGE-SECRET-KEY-1…`, recipients `age1…` (Bech32, BIP 173).
public enum AgeKeys {
    static let identityPrefix = "AGE-SECRET-KEY-"
    static let recipientPrefix = "age"

    /// `AGE-SECRET-KEY-1…`, upper case, as `age-keygen` writes it.
    public static func encode(identity: AgreementKey.Private) -> String {
        Bech32.encode(hrp: identityPrefix.lowercased(), data: identity.rawRepresentation.copiedBytes).uppercased()
    }

    /// `age1…`, lower case.
    public static func encode(recipient: AgreementKey.Public) -> String {
        Bech32.encode(hrp: recipientPrefix, data: recipient.rawRepresentation)
    }

    /// - Throws: `AgeError.malformedKey` unless `text` is an X25519 age identity.
    public static func identity(_ text: String) throws(AgeError) -> AgreementKey.Private {
        guard let (hrp, data) = Bech32.decode(text), hrp == identityPrefix.lowercased(), data.count == 32,
            let key = try? AgreementKey.Private(rawRepresentation: SecretBytes(data))
        else {
            throw AgeError(.malformedKey, "not an age X25519 identity")
        }
        return key
    }

    /// - Throws: `AgeError.malformedKey` unless `text` is an X25519 age recipient.
    public static func recipient(_ text: String) throws(AgeError) -> AgreementKey.Public {
        guard let (hrp, data) = Bech32.decode(text), hrp == recipientPrefix, data.count == 32,
            let key = try? AgreementKey.Public(rawRepresentation: data)
        else {
            throw AgeError(.malformedKey, "not an age X25519 recipient")
        }
        return key
    }
}

/// Bech32 (BIP 173, checksum constant 1) without the 90-character limit, as age uses it.
enum Bech32 {
    static let charset = Array("qpzry9x8gf2tvdw0s3jn54khce6mua7l".utf8)

    static func encode(hrp: String, data: [UInt8]) -> String {
        let values = convertBits(data, from: 8, to: 5, pad: true)!
        let checksum = createChecksum(hrp: Array(hrp.utf8), values: values)
        return hrp + "1" + String(decoding: (values + checksum).map { charset[Int($0)] }, as: UTF8.self)
    }

    /// The human-readable part (lower case) and the data; nil for a bad checksum, mixed case or bad characters.
    static func decode(_ text: String) -> (String, [UInt8])? {
        let bytes = Array(text.utf8)
        guard bytes.allSatisfy({ $0 >= 33 && $0 <= 126 }) else { return nil }
        let hasLower = bytes.contains { $0 >= 97 && $0 <= 122 }, hasUpper = bytes.contains { $0 >= 65 && $0 <= 90 }
        guard !(hasLower && hasUpper) else { return nil }
        let lower = bytes.map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 }
        guard let separator = lower.lastIndex(of: UInt8(ascii: "1")), separator >= 1, lower.count - separator > 6 else { return nil }
        let hrp = Array(lower[..<separator])
        var values: [UInt8] = []
        for byte in lower[(separator + 1)...] {
            guard let index = charset.firstIndex(of: byte) else { return nil }
            values.append(UInt8(index))
        }
        guard polymod(expand(hrp) + values) == 1 else { return nil }
        guard let data = convertBits(Array(values.dropLast(6)), from: 5, to: 8, pad: false) else { return nil }
        return (String(decoding: hrp, as: UTF8.self), data)
    }

    private static func polymod(_ values: [UInt8]) -> UInt32 {
        let generator: [UInt32] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3]
        var check: UInt32 = 1
        for value in values {
            let top = check >> 25
            check = (check & 0x1ff_ffff) << 5 ^ UInt32(value)
            for i in 0..<5 where (top >> i) & 1 == 1 { check ^= generator[i] }
        }
        return check
    }

    private static func expand(_ hrp: [UInt8]) -> [UInt8] {
        hrp.map { $0 >> 5 } + [0] + hrp.map { $0 & 31 }
    }

    private static func createChecksum(hrp: [UInt8], values: [UInt8]) -> [UInt8] {
        let mod = polymod(expand(hrp) + values + [0, 0, 0, 0, 0, 0]) ^ 1
        return (0..<6).map { UInt8((mod >> (5 * (5 - UInt32($0)))) & 31) }
    }

    private static func convertBits(_ data: [UInt8], from: Int, to: Int, pad: Bool) -> [UInt8]? {
        var accumulator = 0, bits = 0
        var out: [UInt8] = []
        let maximum = (1 << to) - 1
        for value in data {
            guard Int(value) >> from == 0 else { return nil }
            accumulator = (accumulator << from) | Int(value)
            bits += from
            while bits >= to {
                bits -= to
                out.append(UInt8((accumulator >> bits) & maximum))
            }
        }
        if pad {
            if bits > 0 { out.append(UInt8((accumulator << (to - bits)) & maximum)) }
        } else if bits >= from || (accumulator << (to - bits)) & maximum != 0 {
            return nil
        }
        return out
    }
}

/// Standard base64 without padding, canonical only (RFC 4648 §3.5), as age's header uses it.
enum RawBase64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ data: [UInt8]) -> String {
        var out: [UInt8] = []
        var index = 0
        while index + 3 <= data.count {
            let n = Int(data[index]) << 16 | Int(data[index + 1]) << 8 | Int(data[index + 2])
            out += [alphabet[n >> 18 & 63], alphabet[n >> 12 & 63], alphabet[n >> 6 & 63], alphabet[n & 63]]
            index += 3
        }
        let rest = data.count - index
        if rest == 1 {
            let n = Int(data[index]) << 16
            out += [alphabet[n >> 18 & 63], alphabet[n >> 12 & 63]]
        } else if rest == 2 {
            let n = Int(data[index]) << 16 | Int(data[index + 1]) << 8
            out += [alphabet[n >> 18 & 63], alphabet[n >> 12 & 63], alphabet[n >> 6 & 63]]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// nil for padding, a character outside the alphabet, a length of 1 mod 4, or non-zero unused bits.
    static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        var values: [Int] = []
        for byte in text {
            guard let value = alphabet.firstIndex(of: byte) else { return nil }
            values.append(value)
        }
        guard values.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        var index = 0
        while index + 4 <= values.count {
            let n = values[index] << 18 | values[index + 1] << 12 | values[index + 2] << 6 | values[index + 3]
            out += [UInt8(n >> 16 & 255), UInt8(n >> 8 & 255), UInt8(n & 255)]
            index += 4
        }
        let rest = values.count - index
        if rest == 2 {
            guard values[index + 1] & 15 == 0 else { return nil }
            out.append(UInt8((values[index] << 2 | values[index + 1] >> 4) & 255))
        } else if rest == 3 {
            guard values[index + 2] & 3 == 0 else { return nil }
            let n = values[index] << 18 | values[index + 1] << 12 | values[index + 2] << 6
            out += [UInt8(n >> 16 & 255), UInt8(n >> 8 & 255)]
        }
        return out
    }
}
