extension RelaySettings {
    /// Reads relay.conf's text, then every `CURBSIDE_RELAY_*` variable of `environment` over it, and returns the
    /// settings with every problem found — unknown keys, keys set twice, malformed lines, bad and out-of-range values,
    /// limits that contradict each other — rather than stopping at the first.
    ///
    /// The format: one `key = value` a line; a `#` at the start of a line or after a space or tab starts a comment,
    /// unless it is inside a double-quoted value (`"…"`, with `\"` and `\\`); blank lines are ignored. An environment
    /// variable that is empty counts as unset. A problem never quotes a password.
    static func read(
        text: String,
        path: String,
        environment: [String: String],
        dataDirectory: String
    ) -> (settings: RelaySettings, problems: [RelaySettingsProblem]) {
        var settings = RelaySettings(dataDirectory: dataDirectory)
        var problems: [RelaySettingsProblem] = []
        let keys = RelaySettingKey.all

        func apply(_ key: RelaySettingKey, _ value: String, from source: RelaySettingSource) {
            do throws(SettingValueError) {
                try key.set(value, &settings)
                settings.sources[key.name] = source
            } catch {
                problems.append(RelaySettingsProblem(source: source, file: path, key: key.name, message: error.message))
            }
        }

        var firstLine: [String: Int] = [:]
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let source = RelaySettingSource.file(path: path, line: index + 1)
            let entry: (key: String, value: String)?
            do throws(SettingValueError) {
                entry = try parseLine(String(line))
            } catch {
                problems.append(RelaySettingsProblem(source: source, file: path, key: nil, message: error.message))
                continue
            }
            guard let entry else { continue }
            guard let key = keys.first(where: { $0.name == entry.key }) else {
                problems.append(
                    RelaySettingsProblem(
                        source: source,
                        file: path,
                        key: entry.key,
                        message: unknownKeyMessage(entry.key, keys, spelled: \.name)
                    )
                )
                continue
            }
            if let first = firstLine[key.name] {
                problems.append(
                    RelaySettingsProblem(
                        source: source,
                        file: path,
                        key: key.name,
                        message: "is set twice (first on line \(first))"
                    )
                )
                continue
            }
            firstLine[key.name] = index + 1
            apply(key, entry.value, from: source)
        }

        for (variable, value) in environment.sorted(by: { $0.key < $1.key })
        where variable.hasPrefix(RelaySettingKey.environmentPrefix) && !value.isEmpty {
            let source = RelaySettingSource.environment(variable: variable)
            let name = variable.dropFirst(RelaySettingKey.environmentPrefix.count).lowercased()
            guard let key = keys.first(where: { $0.environmentVariable == variable }) else {
                problems.append(
                    RelaySettingsProblem(
                        source: source,
                        file: path,
                        key: name,
                        message: unknownKeyMessage(name, keys, spelled: \.environmentVariable)
                    )
                )
                continue
            }
            apply(key, value, from: source)
        }

        if case .postgres(var url) = settings.database, let password = settings.databasePassword {
            url.password = password
            settings.database = .postgres(url)
        }
        problems += settings.contradictions(path: path)
        return (settings, problems)
    }

    /// A line's key and value; nil for a blank or comment line. A `#` starts a comment at the start of a line or
    /// after a space or tab, so `s3cr#t` in a URL stays whole; a quoted value may hold anything.
    static func parseLine(_ line: String) throws(SettingValueError) -> (key: String, value: String)? {
        let beforeComment = withoutComment(Substring(line))
        guard let equals = beforeComment.firstIndex(of: "=") else {
            if beforeComment.trimmingSpaces.isEmpty { return nil }
            throw SettingValueError("expected `key = value`")
        }
        let key = line[..<equals].trimmingSpaces
        guard !key.isEmpty else { throw SettingValueError("expected `key = value`; the key is missing") }
        let rest = Substring(line[line.index(after: equals)...].trimmingSpaces)
        guard rest.hasPrefix("\"") else { return (key, withoutComment(rest).trimmingSpaces) }
        // A quoted value may hold # and spaces; \" and \\ stand for " and \.
        var value = ""
        var escaped = false
        var index = rest.index(after: rest.startIndex)
        while index < rest.endIndex {
            let character = rest[index]
            index = rest.index(after: index)
            if escaped {
                value.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "\"" {
                let after = rest[index...].trimmingSpaces
                guard after.isEmpty || after.hasPrefix("#") else {
                    throw SettingValueError("\(key): text after the closing quote")
                }
                return (key, value)
            } else {
                value.append(character)
            }
        }
        throw SettingValueError("\(key): the opening quote has no closing quote")
    }

    /// The text before a comment: one starts at a `#` that begins the text or follows a space or tab.
    private static func withoutComment(_ text: Substring) -> Substring {
        var previous: Character = " "
        for index in text.indices {
            if text[index] == "#", previous == " " || previous == "\t" { return text[..<index] }
            previous = text[index]
        }
        return text
    }

    /// Suggests the key a typo (or the wrong case) meant, spelled as the file or the environment would spell it.
    private static func unknownKeyMessage(
        _ name: String,
        _ keys: [RelaySettingKey],
        spelled: KeyPath<RelaySettingKey, String>
    ) -> String {
        let lowered = name.lowercased()
        let close = keys.min { editDistance($0.name, lowered) < editDistance($1.name, lowered) }
        if let close, editDistance(close.name, lowered) <= max(2, name.count / 4) {
            return "is not a setting; did you mean \(close[keyPath: spelled])?"
        }
        return "is not a setting (docs/relay-configuration.md lists them)"
    }

    /// Levenshtein distance, for suggesting the key a typo meant.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    /// Limits that are each in range but cannot hold together. Each problem is reported at the one of its two keys
    /// that was written last (the environment after the file, a later line after an earlier one).
    func contradictions(path: String) -> [RelaySettingsProblem] {
        let c = configuration
        func size(_ value: Int) -> String { SettingValue.render(bytes: UInt64(value)) }
        /// `key (value) relation other (value)`, when `holds` is false.
        func rule(
            _ holds: Bool,
            _ key: String,
            _ value: String,
            _ relation: String,
            _ other: String,
            _ otherValue: String,
            _ consequence: String = ""
        ) -> (holds: Bool, keys: [String], message: String) {
            (holds, [key, other], "\(key) (\(value)) \(relation) \(other) (\(otherValue))\(consequence)")
        }
        let rules = [
            rule(
                c.maximumConnectionsPerAddress <= c.maximumConnections,
                "maximum_connections_per_address",
                "\(c.maximumConnectionsPerAddress)",
                "exceeds",
                "maximum_connections",
                "\(c.maximumConnections)"
            ),
            rule(
                c.maximumBufferedFrameBytesPerAccount <= c.maximumBufferedFrameBytes,
                "maximum_buffered_frame_bytes_per_account",
                size(c.maximumBufferedFrameBytesPerAccount),
                "exceeds",
                "maximum_buffered_frame_bytes",
                size(c.maximumBufferedFrameBytes)
            ),
            rule(
                c.maximumBufferedFrameBytesPerAccount >= c.maximumFrameLength,
                "maximum_buffered_frame_bytes_per_account",
                size(c.maximumBufferedFrameBytesPerAccount),
                "is below",
                "maximum_frame_length",
                size(c.maximumFrameLength),
                ": the largest frames would always be `relay_busy`"
            ),
            rule(
                c.unbudgetedFrameLength <= c.maximumFrameLength,
                "unbudgeted_frame_length",
                size(c.unbudgetedFrameLength),
                "exceeds",
                "maximum_frame_length",
                size(c.maximumFrameLength)
            ),
            rule(
                c.maximumQueuedEnvelopesPerSender <= c.maximumQueuedEnvelopesPerAccount,
                "maximum_queued_envelopes_per_sender",
                "\(c.maximumQueuedEnvelopesPerSender)",
                "exceeds",
                "maximum_queued_envelopes_per_account",
                "\(c.maximumQueuedEnvelopesPerAccount)"
            ),
            rule(
                c.maximumQueuedBytesPerSender <= c.maximumQueuedBytesPerAccount,
                "maximum_queued_bytes_per_sender",
                size(c.maximumQueuedBytesPerSender),
                "exceeds",
                "maximum_queued_bytes_per_account",
                size(c.maximumQueuedBytesPerAccount)
            ),
        ]
        return rules.filter { !$0.holds }.map { rule in
            let blamed = rule.keys.compactMap { key in sources[key].map { (key: key, source: $0) } }
                .max { Self.order($0.source) < Self.order($1.source) }
            return RelaySettingsProblem(
                source: blamed?.source,
                file: path,
                key: blamed?.key ?? rule.keys[0],
                message: rule.message
            )
        }
    }

    private static func order(_ source: RelaySettingSource) -> Int {
        switch source {
        case .file(_, let line): line
        case .environment: Int.max
        }
    }
}
