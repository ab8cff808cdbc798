import ArgumentParser
import Foundation

extension Curbside.Relay {
    /// Checks relay.conf and the `CURBSIDE_RELAY_*` variables and reports every problem at once.
    struct RelayCheckConfig: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check-config",
            abstract: "Check relay.conf and CURBSIDE_RELAY_* variables: every problem, or the settings in effect.",
            discussion: """
                Reads the settings as `relay serve` would and reports every problem at once (exit status 78), or \
                prints each setting in effect with where it came from: default, FILE:LINE or the variable. A \
                password prints as <redacted>. docs/relay-configuration.md describes every setting.
                """
        )

        @OptionGroup var options: RelayDataOption

        @Flag(help: "Machine-readable output: one JSON document, problems included.")
        var json = false

        struct Report: Encodable {
            struct Setting: Encodable {
                let value: String
                let source: String
            }
            let file: String
            let ok: Bool
            let problems: [RelaySettingsProblem]
            /// Present when there are no problems.
            let settings: [String: Setting]?
        }

        func run() async throws {
            let directory = options.directory
            let (settings, problems) = try directory.readSettingsCollectingProblems()
            if json {
                let report = Report(
                    file: directory.configurationPath,
                    ok: problems.isEmpty,
                    problems: problems,
                    settings: problems.isEmpty
                        ? Dictionary(
                            uniqueKeysWithValues: settings.effective.map {
                                ($0.key, Report.Setting(value: $0.value, source: $0.source))
                            }
                        )
                        : nil
                )
                print(try CLIJSON.text(report))
                if !problems.isEmpty { throw ExitCode(ExitStatus.configuration) }
                return
            }
            guard problems.isEmpty else {
                throw RelaySettingsError(file: directory.configurationPath, problems: problems)
            }
            print("\(directory.configurationPath): no problems; the settings in effect:")
            let effective = settings.effective
            let width = effective.map(\.key.count).max() ?? 0
            let valueWidth = effective.map(\.value.count).max() ?? 0
            for setting in effective {
                let key = setting.key.padding(toLength: width, withPad: " ", startingAt: 0)
                let value = setting.value.padding(toLength: valueWidth, withPad: " ", startingAt: 0)
                print("\(key)  \(value)  \(setting.source)")
            }
        }
    }
}
