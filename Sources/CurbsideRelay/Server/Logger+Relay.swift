import Logging

extension Logger {
    /// Labelled "curbside.relay" and writing nowhere: the relay's logger when whoever runs it gives none (tests, tools).
    public static var relayDisabled: Logger {
        Logger(label: "curbside.relay", factory: { _ in SwiftLogNoOpLogHandler() })
    }
}
