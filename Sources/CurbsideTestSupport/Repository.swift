import Foundation

/// Paths inside the source tree, found from this file's location so tests need no resources copied.
public enum Repository {
    /// The repository root: three levels above Sources/CurbsideTestSupport/Repository.swift.
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()

    /// spec/vectors/, the one copy of the protocol's test vectors.
    public static var vectors: URL { root.appendingPathComponent("spec/vectors") }

    /// Tests/References/: published reference data (the RFC 9180 vectors), each file with its provenance beside it.
    public static var references: URL { root.appendingPathComponent("Tests/References") }
}
