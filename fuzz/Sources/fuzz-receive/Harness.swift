@_spi(Fuzzing) import CurbsideClient
import Dispatch
import Foundation

/// The client's receive path on a real profile (ReceivePathHarness): whatever an envelope holds, it is settled once
/// (acknowledged or rejected), a re-delivery is settled the same way and changes nothing, and nothing traps. The
/// profile lives under FUZZ_PROFILES (fuzz/run.sh points it at a directory in memory it removes afterwards), else
/// in the temporary directory.
let harness: ReceivePathHarness = {
    let parent = ProcessInfo.processInfo.environment["FUZZ_PROFILES"].map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory
    return wait { try await ReceivePathHarness(in: parent) }
}()

/// Runs async work to completion from libFuzzer's synchronous callback (the cooperative pool runs it).
func wait<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) -> T {
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var result: Result<T, any Error>?
    Task {
        do { result = .success(try await body()) } catch { result = .failure(error) }
        done.signal()
    }
    done.wait()
    switch result! {
    case .success(let value): return value
    case .failure(let error): fatalError("fuzz-receive: \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReceive(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let harness = harness
    _ = wait { try await harness.run(bytes) }
    return 0
}
