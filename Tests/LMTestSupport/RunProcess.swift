import Foundation
import XCTest

/// The result of running a command.
public struct ProcessResult {
    public let status: Int32
    public let stdout: String
    public let stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// Reads `handle` to its end on another thread (so a full pipe never blocks the child);
/// the returned function waits for the end and gives the bytes.
public func readInBackground(_ handle: FileHandle) -> () -> Data {
    final class Box: @unchecked Sendable { var data = Data() }
    let box = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        box.data = handle.readDataToEndOfFile()
        group.leave()
    }
    return {
        group.wait()
        return box.data
    }
}

/// Runs `executable` with `arguments`, feeding `stdin`, and waits.
public func runProcess(_ executable: String, _ arguments: [String], stdin: String? = nil,
                       environment: [String: String]? = nil, cwd: String? = nil) throws -> ProcessResult {
    try runProcess(executable, arguments, stdinBytes: stdin.map { Data($0.utf8) }, environment: environment, cwd: cwd)
}

/// Runs `executable` with `arguments`, feeding raw bytes (which need not be UTF-8), and waits.
public func runProcess(_ executable: String, _ arguments: [String], stdinBytes: Data?,
                       environment: [String: String]? = nil, cwd: String? = nil) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let environment {
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inp
    try p.run()
    if let stdinBytes { inp.fileHandleForWriting.write(stdinBytes) }
    try inp.fileHandleForWriting.close()
    // Read both pipes concurrently so a full pipe never blocks the child.
    let errData = readInBackground(err.fileHandleForReading)
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return ProcessResult(status: p.terminationStatus,
                         stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData(), as: UTF8.self))
}

extension XCTestCase {
    /// Runs the built `lm` binary (`TestPaths.lmBinary`) with `args`, feeding `stdin`.
    public func run(_ args: [String], stdin: String? = nil) throws -> ProcessResult {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: TestPaths.lmBinary), "lm binary not found at \(TestPaths.lmBinary)")
        return try runProcess(TestPaths.lmBinary, args, stdin: stdin)
    }

    /// The last stdout line of a command, parsed as a JSON object (a failure shows all output).
    public func lastJSON(_ r: ProcessResult) throws -> [String: Any] {
        let line = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], r.stdout + r.stderr)
    }
}
