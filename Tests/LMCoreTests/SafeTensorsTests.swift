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

    /// A safetensors file made by hand: `header` as written (repeated keys kept), then `dataBytes` zero bytes.
    func handMade(_ header: String, dataBytes: Int, _ name: String) -> String {
        var bytes = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array(header.utf8))
        bytes.append(Data(count: dataBytes))
        let p = dir + "/" + name + ".safetensors"
        FileManager.default.createFile(atPath: p, contents: bytes)
        return p
    }

    func testAbsurdShapesAndInconsistentOffsetsAreOneLineErrors() throws {
        func expect(_ tensors: String, dataBytes: Int = 64, _ fragments: [String], line: UInt = #line) {
            let p = handMade("{" + tensors + "}", dataBytes: dataBytes, "bad-\(line)")
            XCTAssertThrowsError(try SafeTensorsFile(path: p), line: line) { e in
                guard let e = e as? LMError else { return XCTFail("not an LMError: \(e)", line: line) }
                XCTAssertEqual(e.kind, .corruptFile, line: line)
                for f in ["bad-\(line).safetensors"] + fragments {
                    XCTAssertTrue(e.message.contains(f), "'\(e.message)' should mention '\(f)'", line: line)
                }
                XCTAssertFalse(e.message.contains("\n"), "one line", line: line)
            }
        }
        func t(_ name: String, _ shape: String, _ offsets: String, _ dtype: String = "F32") -> String {
            "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":\(offsets)}"
        }
        // Element counts and byte sizes that do not fit in an Int (these trapped).
        expect(t("huge", "[1099511627776,1099511627776]", "[0,64]"), ["'huge'", "too many elements"])
        expect(t("huge", "[4,4,4611686018427387904]", "[0,64]"), ["'huge'", "too many elements"])
        expect(t("bytes", "[4611686018427387904]", "[0,64]"), ["'bytes'", "too many elements"])
        expect(t("far", "[9223372036854775807]", "[0,9223372036854775807]", "U8"), ["'far'", "data section"])
        // Numbers that are not integers an Int holds (these wrapped to 0 or Int.min).
        expect(t("wide", "[18446744073709551616]", "[0,0]"), ["'wide'", "shape"])
        expect(t("wide", "[1e30]", "[0,0]"), ["'wide'", "shape"])
        expect(t("half", "[2.5]", "[0,8]"), ["'half'", "shape"])
        expect(t("end", "[0]", "[0,18446744073709551616]"), ["'end'", "data_offsets"])
        // Negative dimensions, backwards or out-of-range offsets.
        expect(t("neg", "[-4,-4]", "[0,64]"), ["'neg'", "negative dimension"])
        expect(t("back", "[2]", "[8,0]"), ["'back'", "data_offsets [8, 0]"])
        expect(t("before", "[2]", "[-8,0]"), ["'before'", "data_offsets [-8, 0]"])
        expect(t("past", "[16]", "[64,128]"), ["'past'", "data section"])
        expect(t("size", "[16]", "[0,32]"), ["'size'", "needs 64 bytes"])
        // Overlapping tensors, and a tensor named twice.
        expect(t("a", "[8]", "[0,32]") + "," + t("b", "[8]", "[16,48]"), ["'a'", "'b'", "overlap"])
        expect(t("a", "[16]", "[0,64]") + "," + t("b", "[2]", "[8,16]"), ["'a'", "'b'", "overlap"])
        expect(t("a", "[8]", "[0,32]") + "," + t("a", "[8]", "[32,64]"), ["'a'", "twice"])
        expect(t("a\\u0062", "[8]", "[0,32]") + "," + t("ab", "[8]", "[32,64]"), ["'ab'", "twice"])
    }

    func testAdjacentAndEmptyTensorsAreAccepted() throws {
        let p = handMade(#"{"__metadata__":{"format":"pt","n":"{\"x\":1,\"x\":2}"},"# +
                         #""a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]},"# +
                         #""b":{"dtype":"F16","shape":[2,8],"data_offsets":[32,64]},"# +
                         #""e":{"dtype":"F32","shape":[0,4],"data_offsets":[32,32]},"# +
                         #""f":{"dtype":"I8","shape":[4,0],"data_offsets":[16,16]},"# +
                         #""s":{"dtype":"F32","shape":[],"data_offsets":[64,68]},"# +
                         #""c\"d,{[":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#, dataBytes: 68, "ok")
        let f = try SafeTensorsFile(path: p)
        XCTAssertEqual(f.names, ["a", "b", "c\"d,{[", "e", "f", "s"])
        XCTAssertEqual(f.entries["b"]?.range, 32..<64)
        XCTAssertEqual(try f.tensor("e").count, 0)
        XCTAssertEqual(try f.tensor("s").shape, [])
        XCTAssertEqual(f.metadata["n"], #"{"x":1,"x":2}"#)
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
