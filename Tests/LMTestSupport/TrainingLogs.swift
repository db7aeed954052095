import Foundation
import LMCore
import XCTest

/// log.jsonl lines of a training run without the fields that time it (which differ between
/// runs), keys sorted: two runs that trained alike compare equal line by line.
public func logLinesWithoutTiming(_ runDirectory: String) throws -> [String] {
    let timing: Set<String> = ["ms_per_step", "tokens_per_s", "examples_per_s"]
    return try String(contentsOfFile: runDirectory + "/log.jsonl", encoding: .utf8).split(separator: "\n").map { line in
        guard let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw CocoaError(.propertyListReadCorrupt)
        }
        let kept = obj.filter { !timing.contains($0.key) }
        return String(decoding: try JSONSerialization.data(withJSONObject: kept, options: [.sortedKeys]), as: UTF8.self)
    }
}

/// Starts `binary` with `arguments`, waits for `runDirectory/checkpoint.safetensors` to appear,
/// then kills the process with SIGKILL at a random moment 1–40 ms later.
public func killAfterFirstCheckpoint(_ binary: String, _ arguments: [String], runDirectory: String) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: binary)
    p.arguments = arguments
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    let t0 = Date()
    while !FileManager.default.fileExists(atPath: runDirectory + "/checkpoint.safetensors") && Date().timeIntervalSince(t0) < 60 {
        usleep(2_000)
    }
    usleep(UInt32.random(in: 1_000...40_000))
    kill(p.processIdentifier, SIGKILL)
    p.waitUntilExit()
}

/// Asserts that two model folders hold the same tensors, bit for bit.
public func assertSameWeights(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) throws {
    let x = try SafeTensorsFile(path: a + "/model.safetensors"), y = try SafeTensorsFile(path: b + "/model.safetensors")
    XCTAssertEqual(x.names, y.names, file: file, line: line)
    for name in x.names where y.contains(name) {
        XCTAssertEqual(try x.tensor(name).scalars, try y.tensor(name).scalars, name, file: file, line: line)
    }
}
