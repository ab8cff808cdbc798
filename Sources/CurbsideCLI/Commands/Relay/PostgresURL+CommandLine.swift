import ArgumentParser
import CurbsideRelay

extension PostgresURL {
    /// The `postgres://` URL given to `option` on the command line.
    ///
    /// - Throws: `ValidationError` for a malformed URL, or one holding the password: on a command line it lands in
    ///   the shell's history and in `ps`, so it comes from CURBSIDE_RELAY_DATABASE_PASSWORD instead.
    static func commandLineValue(_ text: String, option: String) throws -> PostgresURL {
        let url: PostgresURL
        do throws(PostgresURLError) {
            url = try PostgresURL(parsing: text)
        } catch {
            throw ValidationError("\(option): postgres URL \(error.message)")
        }
        guard url.password == nil else {
            throw ValidationError(
                "\(option) must not hold the password; set CURBSIDE_RELAY_DATABASE_PASSWORD where the relay runs "
                    + "(or database_password in relay.conf)"
            )
        }
        return url
    }
}
