// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Curbside",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "curbside", targets: ["curbside"]),
        .library(name: "CurbsideWire", targets: ["CurbsideWire"]),
        .library(name: "CurbsideClient", targets: ["CurbsideClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // C libraries, one system-library target each; only CurbsideWire/Sodium, CurbsideTLS and CurbsideDigest
        // import them.
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"]), .brew(["libsodium"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]
        ),
        .target(
            name: "COpenSSLShims",
            dependencies: ["COpenSSL"]
        ),

        // The wire format: codec, keys, HPKE, envelopes. Pure functions of bytes and keys.
        .target(
            name: "CurbsideWire",
            dependencies: ["CSodium"]
        ),
        // SHA-256 of bulk data (attachments) on OpenSSL's libcrypto, which uses the CPU's SHA extensions.
        .target(
            name: "CurbsideDigest",
            dependencies: ["COpenSSL"]
        ),
        // OpenSSL 3 bindings for the relay's transport.
        .target(
            name: "CurbsideTLS",
            dependencies: [
                "COpenSSL",
                "COpenSSLShims",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]
        ),
        // Relay frames over TLS on SwiftNIO: the frame codec and client connections, shared by relay and client.
        .target(
            name: "CurbsideTransport",
            dependencies: [
                "CurbsideWire",
                "CurbsideTLS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The relay: SQLite store (GRDB) or PostgreSQL store (PostgresNIO), sessions, delivery, expiry.
        .target(
            name: "CurbsideRelay",
            dependencies: [
                "CurbsideWire",
                "CurbsideDigest",
                "CurbsideTLS",
                "CurbsideTransport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // The client library: relay connections, profiles, contacts, consults, receipts.
        .target(
            name: "CurbsideClient",
            dependencies: [
                "CurbsideWire",
                "CurbsideDigest",
                "CurbsideTLS",
                "CurbsideTransport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "CurbsideCLI",
            dependencies: [
                "CurbsideWire",
                "CurbsideTLS",
                "CurbsideTransport",
                "CurbsideRelay",
                "CurbsideClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "curbside",
            dependencies: [
                "CurbsideCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // `make bench`: Curbside's side of each benchmark (bench/run.sh measures the peers and writes the table).
        .executableTarget(
            name: "curbside-bench",
            dependencies: [
                "CSodium",
                "CurbsideWire",
                "CurbsideTLS",
                "CurbsideTransport",
                "CurbsideRelay",
                "CurbsideClient",
                "CurbsideTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),

        // `make reliability` and the fault tests: runs that attack a live relay process and count what was lost.
        .executableTarget(
            name: "curbside-faults",
            dependencies: [
                "CurbsideWire",
                "CurbsideTestSupport",
                "CurbsideTLS",
                "CurbsideTransport",
                "CurbsideClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),

        // The deterministic generator of spec/vectors/*.json, and its command.
        .target(
            name: "CurbsideVectors",
            dependencies: ["CurbsideWire"]
        ),
        .executableTarget(
            name: "curbside-vectors",
            dependencies: ["CurbsideVectors"]
        ),

        // What tests and the fault runs share: relays in process and as child processes, provider profiles on them,
        // PostgreSQL clusters, ports, sample files.
        .target(
            name: "CurbsideTestSupport",
            dependencies: [
                "CurbsideWire",
                "CurbsideTLS",
                "CurbsideTransport",
                "CurbsideRelay",
                "CurbsideClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Sources/CurbsideTestSupport"
        ),
        .testTarget(
            name: "CurbsideWireTests",
            dependencies: ["CurbsideWire", "CurbsideVectors", "CurbsideTestSupport"]
        ),
        .testTarget(
            name: "CurbsideDigestTests",
            dependencies: ["CurbsideDigest", "CurbsideWire"]
        ),
        .testTarget(
            name: "CurbsideTLSTests",
            dependencies: [
                "CurbsideTLS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "CurbsideTransportTests",
            dependencies: [
                "CurbsideTransport",
                "CurbsideTLS",
                "CurbsideWire",
                "CurbsideTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "CurbsideClientTests",
            dependencies: [
                "CurbsideClient",
                "CurbsideRelay",
                "CurbsideTLS",
                "CurbsideTransport",
                "CurbsideTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "CurbsideRelayTests",
            dependencies: [
                "CurbsideRelay",
                "CurbsideTLS",
                "CurbsideTransport",
                "CurbsideClient",
                "CurbsideTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        .testTarget(
            name: "CurbsideCLITests",
            dependencies: [
                "CurbsideCLI", "CurbsideClient", "CurbsideTLS", "CurbsideTransport", "CurbsideWire", "CurbsideTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
