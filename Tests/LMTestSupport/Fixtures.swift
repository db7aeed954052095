import Foundation
import LMCore
import XCTest

/// Where test data lives: the package root, `../shared` beside it (or `$LM_SHARED`).
public enum TestPaths {
    /// The package root (the folder holding Package.swift).
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url.path
            }
        }
        return FileManager.default.currentDirectoryPath
    }()

    /// The shared data folder: `$LM_SHARED`, else `../shared` next to the package.
    public static var shared: String {
        if let env = ProcessInfo.processInfo.environment["LM_SHARED"] { return env }
        return URL(fileURLWithPath: packageRoot).deletingLastPathComponent().appendingPathComponent("shared").path
    }

    /// A path inside the shared folder; fails the test with a clear message when it is absent.
    public static func sharedFile(_ relative: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let p = shared + "/" + relative
        guard FileManager.default.fileExists(atPath: p) else {
            XCTFail("missing test data \(p): put the project's shared/ folder beside the checkout or set LM_SHARED", file: file, line: line)
            throw XCTSkip("missing \(p)")
        }
        return p
    }

    /// A fixture checked in beside a test target (`Tests/<target>/Fixtures/<name>`).
    public static func checkedIn(_ target: String, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let p = packageRoot + "/Tests/\(target)/Fixtures/" + name
        guard FileManager.default.fileExists(atPath: p) else {
            XCTFail("missing checked-in fixture \(p)", file: file, line: line)
            throw XCTSkip("missing \(p)")
        }
        return p
    }

    /// The real all-MiniLM-L6-v2 folder: `$LM_MINILM`, else `../shared/models/minilm-l6-v2`.
    /// Fails the test with a message naming both places when it is absent.
    public static func miniLM(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let p = ProcessInfo.processInfo.environment["LM_MINILM"] ?? shared + "/models/minilm-l6-v2"
        guard FileManager.default.fileExists(atPath: p + "/model.safetensors") else {
            XCTFail("MiniLM weights not found at \(p): set LM_MINILM=/path/to/minilm-l6-v2 or put shared/models/minilm-l6-v2 beside the checkout", file: file, line: line)
            throw XCTSkip("MiniLM weights absent (\(p))")
        }
        return p
    }

    /// A bundled model folder under `models/`.
    public static func model(_ name: String) -> String { packageRoot + "/models/" + name }

    /// The built `lm` executable (next to the test bundle).
    public static var lmBinary: String {
        if let env = ProcessInfo.processInfo.environment["LM_BINARY"] { return env }
        // On Linux the bundle URL is the build products folder; on Darwin the .xctest bundle inside it.
        let bundle = Bundle(for: BundleToken.self).bundleURL
        for dir in [bundle, bundle.deletingLastPathComponent()] {
            let candidate = dir.appendingPathComponent("lm").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return bundle.appendingPathComponent("lm").path
    }

    /// A fresh temporary directory.
    public static func temporaryDirectory(_ prefix: String = "lm-test") throws -> String {
        let dir = NSTemporaryDirectory() + "/\(prefix)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }
}

private final class BundleToken {}

/// Reads a JSON fixture as a dictionary.
public func loadJSON(_ path: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw LMError(.corruptFile, "\(path) is not a JSON object")
    }
    return obj
}

/// Converts a JSON number array to [Int].
public func ints(_ any: Any?) -> [Int] { (any as? [Any])?.compactMap { ($0 as? NSNumber)?.intValue } ?? [] }
/// Converts a JSON number array to [Float].
public func floats(_ any: Any?) -> [Float] { (any as? [Any])?.compactMap { ($0 as? NSNumber)?.floatValue } ?? [] }
