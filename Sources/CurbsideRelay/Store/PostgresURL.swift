/// Where a PostgreSQL relay store lives, in libpq's URL form:
/// `postgres://USER[:PASSWORD]@HOST[:PORT][,HOST[:PORT]…]/DATABASE[?OPTION=VALUE&…]`.
///
/// Several hosts name a primary and its standbys, tried in order (libpq's multi-host form). A host that starts with
/// `/` after percent-decoding (`%2Fvar%2Frun%2Fpostgresql`) is a directory holding the server's Unix socket, as in
/// libpq. User, password, hosts and database are percent-decoded. Only the options in `knownOptions` are accepted,
/// each with the values libpq accepts.
///
/// The password never appears in `description` or in a `PostgresURLError`: it prints as `<redacted>`. Relays usually
/// get it from `database_password` or `CURBSIDE_RELAY_DATABASE_PASSWORD` instead of the URL.
public struct PostgresURL: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// One server: a host name or address and its port, or a Unix socket directory and the port naming the socket.
    public struct Host: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int = PostgresURL.defaultPort) {
            self.host = host
            self.port = port
        }

        /// The socket's path when `host` is a directory (libpq's `DIR/.s.PGSQL.PORT`), else nil.
        public var unixSocketPath: String? {
            host.hasPrefix("/") ? "\(host.hasSuffix("/") ? String(host.dropLast()) : host)/.s.PGSQL.\(port)" : nil
        }

        public var description: String {
            if host.hasPrefix("/") { return "\(PostgresURL.percentEncoded(host, keeping: Self.plain)):\(port)" }
            return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }

        static let plain = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
    }

    public static let defaultPort = 5432

    /// The options a relay accepts after `?`, and the values each may take (nil: any non-empty value).
    public static let knownOptions: [String: Set<String>?] = [
        "sslmode": ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"],
        "sslrootcert": nil,
        "target_session_attrs": ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"],
        "connect_timeout": nil,
        "application_name": nil,
    ]

    /// In the order written; at least one.
    public var hosts: [Host]
    public var user: String
    /// From the URL, or set afterwards from `database_password` or the environment.
    public var password: String?
    public var database: String
    /// The query options, by name (each at most once; names from `knownOptions`).
    public var options: [String: String]

    public init(hosts: [Host], user: String, password: String? = nil, database: String, options: [String: String] = [:])
    {
        self.hosts = hosts
        self.user = user
        self.password = password
        self.database = database
        self.options = options
    }

    /// Parses and checks a URL; the error says what is wrong without repeating the password.
    public init(parsing text: String) throws(PostgresURLError) {
        var rest = Substring(text)
        guard let schemeEnd = rest.range(of: "://"),
            ["postgres", "postgresql"].contains(rest[..<schemeEnd.lowerBound].lowercased())
        else {
            throw PostgresURLError("must start with postgres:// or postgresql://")
        }
        rest = rest[schemeEnd.upperBound...]
        guard !rest.contains("#") else { throw PostgresURLError("has a fragment (#…); write # as %23") }

        var query: Substring = ""
        if let questionMark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: questionMark)...]
            rest = rest[..<questionMark]
        }
        guard let slash = rest.firstIndex(of: "/") else {
            throw PostgresURLError("names no database; add /DATABASE after the hosts")
        }
        let authority = rest[..<slash]
        let database = try Self.decoded(rest[rest.index(after: slash)...], "the database name")
        guard !database.isEmpty else { throw PostgresURLError("names no database; add /DATABASE after the hosts") }

        guard let at = authority.lastIndex(of: "@") else {
            throw PostgresURLError("names no user; write postgres://USER@HOST/DATABASE")
        }
        let userInfo = authority[..<at]
        let user: String
        var password: String?
        if let colon = userInfo.firstIndex(of: ":") {
            user = try Self.decoded(userInfo[..<colon], "the user name")
            // The password is never quoted back, even when it is what is malformed.
            guard let decoded = Self.percentDecoded(userInfo[userInfo.index(after: colon)...]) else {
                throw PostgresURLError("the password has a malformed %-escape")
            }
            password = decoded
        } else {
            user = try Self.decoded(userInfo, "the user name")
        }
        guard !user.isEmpty else { throw PostgresURLError("names no user; write postgres://USER@HOST/DATABASE") }

        let hostList = authority[authority.index(after: at)...]
        guard !hostList.isEmpty else { throw PostgresURLError("names no host") }
        var hosts: [Host] = []
        for (index, entry) in hostList.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            hosts.append(try Self.host(entry, number: index + 1))
        }

        var options: [String: String] = [:]
        if !query.isEmpty {
            for pair in query.split(separator: "&", omittingEmptySubsequences: false) {
                guard let equals = pair.firstIndex(of: "=") else {
                    throw PostgresURLError("option \"\(pair)\" has no value; write NAME=VALUE")
                }
                let name = try Self.decoded(pair[..<equals], "an option name")
                let value = try Self.decoded(pair[pair.index(after: equals)...], "option \(name)")
                guard let allowed = Self.knownOptions[name] else {
                    throw PostgresURLError(
                        "unknown option \"\(name)\"; known: \(Self.knownOptions.keys.sorted().joined(separator: ", "))"
                    )
                }
                guard options[name] == nil else { throw PostgresURLError("option \(name) is given twice") }
                guard !value.isEmpty else { throw PostgresURLError("option \(name) is empty") }
                if let allowed, !allowed.contains(value) {
                    throw PostgresURLError(
                        "option \(name) is \"\(value)\"; expected one of \(allowed.sorted().joined(separator: ", "))"
                    )
                }
                if name == "connect_timeout", Int(value).map({ $0 >= 0 }) != true {
                    throw PostgresURLError("option connect_timeout is \"\(value)\"; expected whole seconds")
                }
                options[name] = value
            }
        }
        self.init(hosts: hosts, user: user, password: password, database: database, options: options)
    }

    /// The URL with the password, if any, shown as `<redacted>`.
    public var description: String {
        let credentials = Self.percentEncoded(user, keeping: Host.plain) + (password == nil ? "" : ":<redacted>")
        let query = options.keys.sorted().map { "\($0)=\(Self.percentEncoded(options[$0]!, keeping: Host.plain))" }
        return "postgres://\(credentials)@\(hosts.map(\.description).joined(separator: ","))/"
            + Self.percentEncoded(database, keeping: Host.plain)
            + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
    }

    public var debugDescription: String { description }

    private static func host(_ entry: Substring, number: Int) throws(PostgresURLError) -> Host {
        let which = "host \(number)"
        guard !entry.isEmpty else { throw PostgresURLError("\(which) is empty") }
        var name: String
        var portText: Substring?
        if entry.hasPrefix("[") {
            guard let close = entry.firstIndex(of: "]") else { throw PostgresURLError("\(which) has no closing ]") }
            name = String(entry[entry.index(after: entry.startIndex)..<close])
            let after = entry[entry.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw PostgresURLError("\(which) has text after ]") }
                portText = after.dropFirst()
            }
            guard name.contains(":"), name.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw PostgresURLError("\(which) \"\(name)\" is not an IPv6 address")
            }
        } else {
            let parts = entry.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            name = try decoded(parts[0], which)
            if parts.count == 2 { portText = parts[1] }
            let isSocketDirectory = name.hasPrefix("/")
            guard isSocketDirectory || (!name.isEmpty && name.allSatisfy({ Self.hostCharacters.contains($0) })) else {
                throw PostgresURLError(
                    "\(which) \"\(name)\" is not a host name or address "
                        + "(IPv6 goes in brackets, a socket directory as %2F…)"
                )
            }
        }
        var port = defaultPort
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw PostgresURLError("\(which) (\(name)) has port \"\(portText)\"; expected 1 to 65535")
            }
            port = value
        }
        return Host(host: name, port: port)
    }

    private static let hostCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")

    private static func decoded(_ text: Substring, _ what: String) throws(PostgresURLError) -> String {
        guard let value = percentDecoded(text) else { throw PostgresURLError("\(what) has a malformed %-escape") }
        return value
    }

    /// `%XX` escapes decoded as UTF-8; nil for a malformed escape or invalid UTF-8.
    static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var index = text.utf8.startIndex
        let utf8 = text.utf8
        while index < utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%") {
                let high = utf8.index(after: index)
                guard high < utf8.endIndex, utf8.index(after: high) < utf8.endIndex,
                    let value = UInt8(String(decoding: utf8[high...utf8.index(after: high)], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
                index = utf8.index(high, offsetBy: 2)
            } else {
                bytes.append(byte)
                index = utf8.index(after: index)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func percentEncoded(_ text: String, keeping plain: Set<Character>) -> String {
        var result = ""
        for character in text {
            if plain.contains(character) {
                result.append(character)
            } else {
                for byte in String(character).utf8 {
                    result += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
                }
            }
        }
        return result
    }
}

/// Why a `postgres://` URL was refused: a lowercase phrase naming the part at fault, never the password.
public struct PostgresURLError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String

    init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
