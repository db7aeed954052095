import Foundation
import LMCore
import LMModels
import LMTestSupport
import XCTest

/// Broken GGUF files give one-line errors naming the problem, never a crash: made by editing the
/// bytes of the tiny Gemma 3 fixture.
final class GGUFLoadingTests: XCTestCase {
    var original: [UInt8] = []
    var dir = ""

    override func setUpWithError() throws {
        let path = try TestPaths.checkedIn("LMModelsTests", "gemma3-tiny/tiny-f32.gguf")
        original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        dir = try TestPaths.temporaryDirectory("gguf")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// Where the fields of each tensor description are: (name, byte of its type id, byte of its offset).
    func tensorFields(_ bytes: [UInt8]) throws -> [(name: String, type: Int, offset: Int)] {
        let meta = try bytes.withUnsafeBytes { try GGUFMetadata(bytes: $0) }
        var p = meta.endOffset
        func u64(_ at: Int) -> Int { (0..<8).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) } }
        func u32(_ at: Int) -> Int { (0..<4).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) } }
        var out: [(String, Int, Int)] = []
        for _ in 0..<meta.tensorCount {
            let n = u64(p)
            let name = String(decoding: bytes[(p + 8)..<(p + 8 + n)], as: UTF8.self)
            p += 8 + n
            let dims = u32(p)
            p += 4 + 8 * dims
            out.append((name, p, p + 4))
            p += 12
        }
        return out
    }

    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = dir + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func expectError(_ path: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ModelRegistry.loadCausalLM(path: path, pool: ThreadPool(threads: 1)), file: file, line: line) { e in
            let message = "\(e)"
            XCTAssertTrue(message.contains(fragment), "'\(message)' should mention '\(fragment)'", file: file, line: line)
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", file: file, line: line)
        }
    }

    func testTheFixtureLoads() throws {
        let model = try ModelRegistry.loadCausalLM(path: try write(original, "ok.gguf"), pool: ThreadPool(threads: 1))
        XCTAssertEqual(model.layerCount, 6)
        XCTAssertEqual(model.weightTypes, ["F32": 43])
    }

    func testTruncatedFilesAreErrors() throws {
        let fields = try tensorFields(original)
        let dataStart = (fields.last!.offset + 8 + 31) / 32 * 32
        for cut in [0, 3, 7, 20, 100, 5_000, fields[3].type, dataStart + 10, original.count - 1] {
            let path = try write(Array(original[0..<cut]), "cut-\(cut).gguf")
            XCTAssertThrowsError(try ModelRegistry.loadCausalLM(path: path, pool: ThreadPool(threads: 1)), "cut at \(cut)") { e in
                let m = "\(e)"
                XCTAssertTrue(m.contains("truncated") || m.contains("not a GGUF") || m.contains("neither"), "cut at \(cut): \(m)")
            }
        }
    }

    func testAnUnsupportedTensorTypeNamesTheTensorAndTheSupportedTypes() throws {
        var bytes = original
        let f = try tensorFields(bytes).first { $0.name == "blk.2.ffn_up.weight" }!
        bytes[f.type] = 2  // Q4_0: smaller than the F32 data, so the file stays consistent
        expectError(try write(bytes, "q4_0.gguf"), "blk.2.ffn_up.weight' has type Q4_0, which swift-lm cannot compute yet (supported: F32, F16, BF16, Q8_0, Q5_0, Q4_K, Q6_K)")
        bytes[f.type] = 99
        expectError(try write(bytes, "type99.gguf"), "unknown ggml type id 99")
    }

    func testAnUnknownArchitectureIsNamed() throws {
        var bytes = original
        let arch = Array("gemma3".utf8)
        let i = (0..<(bytes.count - 6)).first { Array(bytes[$0..<($0 + 6)]) == arch && bytes[$0 - 8] == 6 }!
        bytes[i + 5] = UInt8(ascii: "9")   // general.architecture = "gemma9"
        expectError(try write(bytes, "arch.gguf"), "'gemma9' model, an architecture swift-lm cannot run yet (supported GGUF architectures: gemma3)")
    }

    func testMetadataThatContradictsTheTensorShapesIsAnError() throws {
        var bytes = original
        // gemma3.feed_forward_length: 128 → 96.
        let key = Array("gemma3.feed_forward_length".utf8)
        let i = (0..<(bytes.count - key.count)).first { Array(bytes[$0..<($0 + key.count)]) == key }!
        let value = i + key.count + 4  // after the u32 value type
        XCTAssertEqual(bytes[value], 128)
        bytes[value] = 96
        expectError(try write(bytes, "ffn.gguf"), "the metadata contradicts the tensor shapes")
    }

    func testATensorPastTheEndOfTheFileIsAnError() throws {
        var bytes = original
        let f = try tensorFields(bytes).last!
        // Move the last tensor's data 1 MiB further: past the end.
        var off = (0..<8).reduce(0) { $0 | Int(bytes[f.offset + $1]) << (8 * $1) } + (1 << 20)
        for k in 0..<8 { bytes[f.offset + k] = UInt8(off & 0xFF); off >>= 8 }
        expectError(try write(bytes, "past.gguf"), "is truncated")
        // An offset that is not aligned.
        bytes = original
        bytes[f.offset] &+= 4
        expectError(try write(bytes, "align.gguf"), "not aligned")
    }

    func testAbsurdTensorDimensionsAreErrorsNotOverflowTraps() throws {
        let f = try tensorFields(original).first { $0.name == "blk.0.ffn_up.weight" }!
        func withDims(_ dims: [UInt64], _ name: String) throws -> String {
            var bytes = original
            // The u64 dimensions sit just before the type id; their count just before them.
            let first = f.type - 8 * dims.count
            XCTAssertEqual(Int(bytes[first - 4]), dims.count)
            for (i, d) in dims.enumerated() {
                for k in 0..<8 { bytes[first + 8 * i + k] = UInt8(truncatingIfNeeded: d >> (8 * UInt64(k))) }
            }
            return try write(bytes, name)
        }
        expectError(try withDims([1 << 40, 1 << 40], "square.gguf"), "blk.0.ffn_up.weight' [1099511627776, 1099511627776] has too many elements")
        expectError(try withDims([UInt64.max, 2], "max.gguf"), "blk.0.ffn_up.weight' has a dimension of 18446744073709551615")
        expectError(try withDims([1 << 63, 1 << 63], "sign.gguf"), "blk.0.ffn_up.weight' has a dimension of 9223372036854775808")
        expectError(try withDims([64, 1 << 36], "long.gguf"), "blk.0.ffn_up.weight' (F32 [68719476736, 64]) ends at byte")
    }

    func testInspectableTypesAndSizes() throws {
        let file = try GGUFFile(path: try write(original, "t.gguf"))
        XCTAssertEqual(file.tensors.count, 80)
        let e = try file.tensor("token_embd.weight")
        XCTAssertEqual(e.shape, [512, 64])
        XCTAssertEqual(e.type, .f32)
        XCTAssertEqual(e.byteCount, 512 * 64 * 4)
        XCTAssertEqual(GGMLType.q4_K.bytes(elements: 512), 288)
        XCTAssertEqual(WeightType(ggml: .q6_K), .q6_K)
        XCTAssertNil(WeightType(ggml: .q4_0))
    }
}
