import Foundation

extension Executable {
    /// A provider command on the profile in `home`, with the tests' passphrase and `environment` on top.
    static func provider(_ arguments: [String], home: String, environment: [String: String] = [:]) throws
        -> (status: Int32, stdout: String, stderr: String)
    {
        try run(arguments + ["--home", home], environment: ProviderCommandTests.environment.merging(environment) { $1 })
    }

    /// A new empty temporary directory whose name says what it is for.
    static func scratchDirectory(_ purpose: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("curbside-\(purpose)-\(UUID())").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
