import Foundation
import XCTest
@testable import LMTokenizers

/// Where the tokenizer tests find their data.
///
/// Small fixtures are checked in beside the tests (`Fixtures/`). Large ones (GGUF vocabularies,
/// the GPT-2 and MiniLM vocabularies, WikiText-2, Tiny Shakespeare) are read from `../shared`
/// beside the package root, or from `$LM_SHARED`. A missing file fails the test with a message
/// naming it: CI always has `../shared`, so these tests are never skipped.
enum TestData {
    /// The package root (this file is Tests/LMTokenizersTests/TestData.swift).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let fixtures = packageRoot.appendingPathComponent("Tests/LMTokenizersTests/Fixtures")

    static var shared: URL {
        if let env = ProcessInfo.processInfo.environment["LM_SHARED"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    }

    /// A checked-in fixture.
    static func fixture(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let path = fixtures.appendingPathComponent(name).path
        guard FileManager.default.fileExists(atPath: path) else {
            XCTFail("missing fixture \(path)", file: file, line: line)
            throw LMTestDataMissing(message: "missing fixture \(path)")
        }
        return path
    }

    /// A file under ../shared (or $LM_SHARED); fails loudly when it is not there.
    static func sharedFile(_ relative: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let path = shared.appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: path) else {
            let message = "missing \(path): these tests need the shared data folder beside the package (../shared) or LM_SHARED=/path/to/shared"
            XCTFail(message, file: file, line: line)
            throw LMTestDataMissing(message: message)
        }
        return path
    }

    static func json(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw LMTestDataMissing(message: "\(path) is not a JSON object")
        }
        return object
    }

    static func ints(_ value: Any?) -> [Int] {
        (value as? [NSNumber])?.map(\.intValue) ?? []
    }

    static func bytes(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func text(_ path: String) throws -> String {
        String(decoding: try bytes(path), as: UTF8.self)
    }

    /// The cases of a llama.cpp `.inp`/`.out` pair: (input, expected ids).
    static func llamaCppCases(_ name: String) throws -> [(String, [Int])] {
        let inp = try text(fixture(name + ".gguf.inp"))
        let out = try text(fixture(name + ".gguf.out"))
        let separator = "\n__ggml_vocab_test__\n"
        var inputs: [String] = []
        var rest = Substring(inp)
        while let r = rest.range(of: separator) {
            inputs.append(String(rest[..<r.lowerBound]))
            rest = rest[r.upperBound...]
        }
        var lines = out.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        XCTAssertEqual(inputs.count, lines.count, "\(name): .inp and .out disagree on the number of tests")
        return zip(inputs, lines).map { input, line in
            (input, line.split(separator: " ").compactMap { Int($0) })
        }
    }
}

struct LMTestDataMissing: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
