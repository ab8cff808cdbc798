// Writes spec/vectors/*.json. Usage: curbside-vectors <directory>
import CurbsideVectors
import Foundation

let arguments = CommandLine.arguments
guard arguments.count == 2 else {
    FileHandle.standardError.write(Data("usage: curbside-vectors <directory>\n".utf8))
    exit(2)
}
let directory = URL(fileURLWithPath: arguments[1], isDirectory: true)
do {
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    for file in VectorGenerator.files() {
        let url = directory.appendingPathComponent(file.name)
        try Data(file.contents.utf8).write(to: url)
        print("wrote \(url.path)")
    }
} catch {
    FileHandle.standardError.write(Data("curbside-vectors: error: \(error)\n".utf8))
    exit(1)
}
