import Foundation

extension RelaySettings {
    /// The relay.conf `relay init` writes: `listen` and `names` set, `database` set when it is not SQLite, and every
    /// other key commented out with its default and a line saying what it does, so an operator reads the whole file in
    /// one place. Passwords are never written.
    var fileText: String {
        let defaults = RelaySettings(dataDirectory: dataDirectory)
        var text = """
            # Curbside relay settings, written by `curbside relay init`; docs/relay-configuration.md describes them.
            #
            # One `key = value` a line; a `#` at the start of a line or after a space starts a comment ("..." quotes a
            # value). Sizes are bytes, with a unit if you like: B, KiB, MiB, GiB, TiB (or kB, MB, GB, TB). Durations
            # need one: ms, s, min, h, d.
            # Every key can also be set in the environment, as CURBSIDE_RELAY_ and the key in capitals
            # (CURBSIDE_RELAY_IDLE_TIMEOUT=60s, CURBSIDE_RELAY_DATABASE_PASSWORD=...), which wins over this file.
            # Settings left commented out have the default shown; remove the `#` to change one.
            # `curbside relay check-config --data DIR` reports every problem and prints the settings in effect.

            """
        var section = ""
        for key in RelaySettingKey.all {
            if key.section != section {
                section = key.section
                text += "\n## \(section)\n"
            }
            text += "# \(key.help)\n"
            let value = key.get(self)
            if key.isSecret {
                text += "# \(key.name) =\n"
            } else if ["listen", "names"].contains(key.name) || value != key.get(defaults) {
                text += "\(key.name) = \(value ?? "")\n"
            } else {
                text += "# \(key.name) = \(value ?? "")\n"
            }
        }
        return text
    }

    /// Every key with the value in effect and where it came from, for check-config; a password shows as `<redacted>`.
    var effective: [(key: String, value: String, source: String)] {
        RelaySettingKey.all.map { key in
            (key.name, key.get(self) ?? "(not set)", sources[key.name]?.description ?? "default")
        }
    }
}

extension RelaySettings {
    /// The relay.conf `text` with `database = value`: the line that sets `database` replaced, else the value written
    /// after the commented-out `# database = …` that `relay init` leaves, else appended. Every other line, comments
    /// included, stays as it was.
    static func settingDatabase(_ value: String, in text: String) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let setting = "database = \(value)"
        func key(of line: String) -> String? {
            guard let equals = line.firstIndex(of: "=") else { return nil }
            return line[..<equals].trimmingCharacters(in: .whitespaces)
        }
        if let index = lines.firstIndex(where: { key(of: $0) == "database" }) {
            lines[index] = setting
        } else if let index = lines.firstIndex(where: {
            $0.hasPrefix("#") && key(of: String($0.drop { $0 == "#" || $0 == " " })) == "database"
        }) {
            lines.insert(setting, at: index + 1)
        } else {
            if lines.last == "" { lines.removeLast() }
            lines += [setting, ""]
        }
        return lines.joined(separator: "\n")
    }
}
