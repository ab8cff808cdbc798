// swift-tools-version:6.1
// libFuzzer harnesses for the decoders that read untrusted bytes: `make fuzz` builds them with
// `swift build --sanitize=fuzzer` into .build-fuzz (never part of the main build) and runs each for a set time,
// seeded from spec/vectors. Each harness also checks that whatever decodes re-encodes to the same bytes (the
// encoding is canonical: one valid encoding per value).
import PackageDescription

let package = Package(
    name: "CurbsideFuzz",
    dependencies: [.package(name: "Curbside", path: "..")],
    targets: [
        .executableTarget(name: "fuzz-frames", dependencies: [.product(name: "CurbsideWire", package: "Curbside")]),
        .executableTarget(name: "fuzz-envelope", dependencies: [.product(name: "CurbsideWire", package: "Curbside")]),
        .executableTarget(name: "fuzz-bundle", dependencies: [.product(name: "CurbsideWire", package: "Curbside")]),
        .executableTarget(name: "fuzz-age", dependencies: [.product(name: "CurbsideWire", package: "Curbside")]),
        // The client's receive path on a real profile database: open, check, store, receipt decision.
        .executableTarget(
            name: "fuzz-receive",
            dependencies: [.product(name: "CurbsideClient", package: "Curbside"), .product(name: "CurbsideWire", package: "Curbside")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
