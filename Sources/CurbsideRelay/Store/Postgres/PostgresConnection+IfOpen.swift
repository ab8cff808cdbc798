import Logging
import PostgresNIO

/// A statement not sent because its connection had closed: the server went away (or the pool closed it).
struct PostgresConnectionClosed: Error {}

extension PostgresConnection {
    /// `query(_:logger:)`, refused at once with `PostgresConnectionClosed` on a connection that has closed.
    ///
    /// PostgresNIO 1.33 loses a statement written to a connection whose channel has closed and been torn down: its
    /// promise is never completed and the caller waits for ever (vapor/postgres-nio#487, reverted by #501). A server
    /// that dies mid-transaction closes the connection between two statements, and a pool may lend a connection the
    /// moment before it learns of its close; so the store's every statement checks first. (A close that begins and
    /// is torn down entirely between this check and the write is not covered.)
    @discardableResult
    func query(
        ifOpen query: PostgresQuery,
        logger: Logger,
        file: String = #fileID,
        line: Int = #line
    ) async throws -> PostgresRowSequence {
        guard !isClosed else { throw PostgresConnectionClosed() }
        return try await self.query(query, logger: logger, file: file, line: line)
    }
}
