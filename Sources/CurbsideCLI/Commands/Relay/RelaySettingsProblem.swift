/// One thing wrong with a relay's settings, named where an operator can find it:
/// `/srv/curbside/relay.conf:12: idle_timeout: "300" needs a unit: ms, s, min, h or d (such as 300s)`, or
/// `CURBSIDE_RELAY_IDLE_TIMEOUT: idle_timeout: …` for the environment. Never quotes a password.
struct RelaySettingsProblem: Hashable, CustomStringConvertible, Encodable {
    /// The line or variable at fault; nil when no single one is (only for contradictions among defaults).
    let source: RelaySettingSource?
    /// The relay.conf the settings were read from.
    let file: String
    /// The key, when the line got as far as naming one.
    let key: String?
    /// What is wrong, as a lowercase phrase.
    let message: String

    var description: String {
        [source?.description ?? file, key, message].compactMap { $0 }.joined(separator: ": ")
    }

    private enum CodingKeys: String, CodingKey {
        case file, line, variable, key, message, text
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch source {
        case .file(let path, let line):
            try container.encode(path, forKey: .file)
            try container.encode(line, forKey: .line)
        case .environment(let variable):
            try container.encode(variable, forKey: .variable)
        case nil:
            try container.encode(file, forKey: .file)
        }
        try container.encodeIfPresent(key, forKey: .key)
        try container.encode(message, forKey: .message)
        try container.encode(description, forKey: .text)
    }
}

/// A relay's settings could not be used: every problem found, one `curbside: error:` line each.
struct RelaySettingsError: CurbsideReportableError, CustomStringConvertible {
    let file: String
    let problems: [RelaySettingsProblem]

    var description: String { problems.map(\.description).joined(separator: "\n") }

    var report: String {
        problems.map { "curbside: error: \($0)\n" }.joined()
            + "curbside: hint: docs/relay-configuration.md describes every setting; a new relay's relay.conf lists them "
            + "with their defaults\n"
    }

    var exitStatus: Int32 { ExitStatus.configuration }

    var jsonReport: String {
        Curbside.encode(
            CLIErrorBody(
                code: "configuration",
                message: "\(file) or the CURBSIDE_RELAY_* variables have \(problems.count) problem(s)",
                hint: "docs/relay-configuration.md describes every setting",
                problems: problems.map(\.description)
            )
        )
    }
}
