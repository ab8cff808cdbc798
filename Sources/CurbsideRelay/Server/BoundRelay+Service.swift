import ServiceLifecycle

/// A bound relay runs as a service of a `ServiceGroup`: `run()` serves until the group shuts down gracefully (SIGTERM,
/// SIGINT) or is cancelled, and either stops it the way cancelling `serve()` does — the listener closes, idle
/// connections close at once, busy ones after their answer, and any still open after `shutdownGracePeriod` are
/// closed regardless — and then returns.
extension BoundRelay: Service {
    public func run() async throws {
        let logger = server.logger
        let grace = server.configuration.shutdownGracePeriod
        try await withGracefulShutdownHandler {
            try await cancelWhenGracefulShutdown {
                try await serve()
            }
        } onGracefulShutdown: {
            logger.info("stopping: answering requests under way, for at most \(grace)")
        }
    }
}

extension BoundRelay: CustomStringConvertible {
    /// What a `ServiceGroup` names in its log: the port, not every field of the server.
    public var description: String { "relay listener on port \(port)" }
}
