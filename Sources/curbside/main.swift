import ArgumentParser
import CurbsideCLI

import Foundation

/// Parses and runs a command; errors a person can act on print as `curbside: error: …` with hints, the way age
/// does (as one JSON object with --json), with the exit status of their kind; parsing errors and --help print the
/// way argument-parser does.
func run(_ root: Curbside.Type) async {
    var command: any ParsableCommand
    do {
        command = try root.parseAsRoot()
    } catch {
        if let failure = root.parseFailure(error) { fail(failure) }
        root.exit(withError: error)
    }
    do {
        if var asyncCommand = command as? any AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
    } catch {
        let json = (command as? any JSONReportingCommand)?.reportsJSON ?? false
        if let failure = root.failure(error, json: json) { fail(failure) }
        // --help, validation and the parser's own errors.
        root.exit(withError: error)
    }
}

func fail(_ failure: (report: String, status: Int32)) -> Never {
    FileHandle.standardError.write(Data(failure.report.utf8))
    exit(failure.status)
}

/// Keeps glibc's allocator from handing the same memory back and forth with the kernel. Attachments move through
/// 1 MiB buffers (file pieces, frames, TLS records), and by default glibc serves blocks from 128 KiB up with mmap and
/// returns more than 128 KiB free at a heap's top, so nearly every buffer was new pages the kernel faulted in and
/// zeroed: 290,000 page faults and half the CPU of `curbside inbox` for a 256 MiB attachment, 140,000 in the relay
/// for its upload. Blocks under 4 MiB now come from the heap and up to 32 MiB free at its top is kept for reuse
/// (the same as GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=33554432). Looked up
/// at run time because Glibc's Swift module does not export `mallopt`; where it is missing nothing changes.
func keepAllocatorMemory() {
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    guard let symbol = dlsym(nil, "mallopt") else { return }  // nil: RTLD_DEFAULT
    let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
    let (trimThreshold, mmapThreshold): (Int32, Int32) = (-1, -3)  // M_TRIM_THRESHOLD, M_MMAP_THRESHOLD in malloc.h
    _ = mallopt(mmapThreshold, 4 << 20)
    _ = mallopt(trimThreshold, 32 << 20)
}

keepAllocatorMemory()
await run(Curbside.self)
