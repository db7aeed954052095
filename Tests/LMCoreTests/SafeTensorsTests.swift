import Foundation
import LMCore
import LMTestSupport
import XCTest

final class SafeTensorsTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws { dir = try TestPaths.temporaryDirectory("safetensors") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testRoundTripFloatAndRawTensors() throws {
        let a = try Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, -6])
        let b = try Tensor(shape: [4], values: [0.5, 0.25, -1, 1e-8])
        let path = dir + "/t.safetensors"
        try SafeTensorsWriter.write(items: [("a", .float(a)), ("b", .float(b)),
                                            ("q", .raw(dtype: .i8, shape: [3], bytes: [1, 0xFF, 7]))], to: path)
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.names, ["a", "b", "q"])
        XCTAssertEqual(f.metadata["format"], "pt")
        XCTAssertEqual(try f.tensor("a").scalars, a.scalars)
        XCTAssertEqual(try f.tensor("a").shape, [2, 3])
        XCTAssertEqual(try f.tensor("b").scalars, b.scalars)
        let (entry, bytes) = try f.rawBytes("q")
        XCTAssertEqual(entry.dtype, .i8)
        XCTAssertEqual(Array(bytes), [1, 0xFF, 7])
        // The header is padded so tensor data is 8-byte aligned: F32 loads are zero-copy views.
        XCTAssertEqual(try f.tensor("a").storage.count, 6)
    }

    func testHalfAndBFloat16AreConvertedOnLoad() throws {
        let values: [Float] = [1, -2.5, 0.333251953125, 65504]
        var f16: [UInt8] = [], bf16: [UInt8] = []
        for v in values {
            let h = Float16(v).bitPattern
            f16 += [UInt8(h & 0xFF), UInt8(h >> 8)]
            let b = UInt16(v.bitPattern >> 16)
            bf16 += [UInt8(b & 0xFF), UInt8(b >> 8)]
        }
        let path = dir + "/h.safetensors"
        try SafeTensorsWriter.write(items: [("h", .raw(dtype: .f16, shape: [4], bytes: f16)),
                                            ("b", .raw(dtype: .bf16, shape: [2, 2], bytes: bf16))], to: path)
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(try f.tensor("h").scalars, values)
        let bf = try f.tensor("b")
        XCTAssertEqual(bf.shape, [2, 2])
        for (x, y) in zip(bf.scalars, values) { XCTAssertEqual(x, y, accuracy: abs(y) / 128) }
    }

    func testErrorsNameTheProblem() throws {
        let good = dir + "/good.safetensors"
        try SafeTensorsWriter.write([("w", try Tensor(shape: [64], values: [Float](repeating: 1, count: 64)))], to: good)
        let data = try Data(contentsOf: URL(fileURLWithPath: good))

        func expect(_ bytes: Data, _ kind: LMError.Kind, _ fragment: String, line: UInt = #line) {
            let p = dir + "/bad-\(line).safetensors"
            FileManager.default.createFile(atPath: p, contents: bytes)
            XCTAssertThrowsError(try SafeTensorsFile(path: p), line: line) { e in
                guard let e = e as? LMError else { return XCTFail("not an LMError: \(e)", line: line) }
                XCTAssertEqual(e.kind, kind, line: line)
                XCTAssertTrue(e.message.contains(fragment), "'\(e.message)' should mention '\(fragment)'", line: line)
                XCTAssertFalse(e.message.contains("\n"), "one line", line: line)
            }
        }
        expect(data.prefix(data.count - 10), .corruptFile, "truncated")
        expect(data.prefix(5), .corruptFile, "too short")
        expect(Data([0xFF, 0xFF, 0, 0, 0, 0, 0, 0]) + data.dropFirst(8), .corruptFile, "header length")
        var garbage = data
        garbage.replaceSubrange(8..<12, with: Data("!!!!".utf8))
        expect(garbage, .corruptFile, "not a JSON object")

        XCTAssertThrowsError(try SafeTensorsFile(path: dir + "/nope.safetensors")) { e in
            XCTAssertEqual((e as? LMError)?.kind, .fileNotFound)
        }
        let f = try SafeTensorsFile(path: good)
        XCTAssertThrowsError(try f.tensor("missing")) { e in XCTAssertEqual((e as? LMError)?.kind, .missingTensor) }
        XCTAssertThrowsError(try f.tensor("w", shape: [8, 8])) { e in XCTAssertEqual((e as? LMError)?.kind, .shapeMismatch) }
        XCTAssertEqual(try f.tensor("w", shape: [64]).count, 64)
    }

    func testAtomicWriteLeavesNoTemporaryFiles() throws {
        let path = dir + "/a.safetensors"
        try SafeTensorsWriter.write([("x", Tensor(zeros: [3]))], to: path)
        try SafeTensorsWriter.write([("x", try Tensor(shape: [1], values: [2]))], to: path)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["a.safetensors"])
        XCTAssertEqual(try SafeTensorsFile(path: path).tensor("x").scalars, [2])
    }
}

final class RNGTests: XCTestCase {
    func testSameSeedSameStreamAndStateRestores() throws {
        var a = SeededRNG(seed: 42), b = SeededRNG(seed: 42), c = SeededRNG(seed: 43)
        let xa = (0..<100).map { _ in a.next() }
        XCTAssertEqual(xa, (0..<100).map { _ in b.next() })
        XCTAssertNotEqual(xa, (0..<100).map { _ in c.next() })
        var d = try SeededRNG(stateWords: a.stateWords)
        XCTAssertEqual(a.next(), d.next())
        XCTAssertThrowsError(try SeededRNG(stateWords: [0, 0, 0, 0]))
    }

    func testNormalSamplesHaveUnitVariance() {
        var rng = SeededRNG(seed: 7)
        var buf = [Float](repeating: 0, count: 100_001)
        buf.withUnsafeMutableBufferPointer { rng.fillNormal($0, std: 2) }
        let mean = buf.reduce(0, +) / Float(buf.count)
        let variance = buf.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(buf.count)
        XCTAssertEqual(mean, 0, accuracy: 0.03)
        XCTAssertEqual(variance, 4, accuracy: 0.1)
        for _ in 0..<1000 { let f = rng.nextFloat(); XCTAssertTrue(f >= 0 && f < 1) }
    }
}
