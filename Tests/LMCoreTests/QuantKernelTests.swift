import CKernels
import Foundation
import LMCore
import LMTestSupport
import XCTest

/// The GGUF block-quantized kernels (quant.h) against their references, on both instruction sets,
/// and the references against gguf-py on real blocks.
///
/// GEMV tolerance: |y − ref| ≤ 1e-5 · (Σ_k |w_k·x_k| + |bias| + |y₀|), ref = the row dequantized by the
/// reference and summed in double. A float32 sum whose longest chain has k roundings is off by at most
/// γ_k = k·2⁻²⁴/(1 − k·2⁻²⁴) times Σ|terms|; the kernels' chains are ≤ ~140 roundings for the n ≤ 2048
/// tested here (per-lane partial sums of ≤ n/16 terms, a scale product per block, an 8- or 16-lane
/// horizontal sum, then bias and y₀), so γ_k ≤ 8.4e-6 < 1e-5. Typical errors are ~100× smaller.
final class QuantKernelTests: XCTestCase {
    struct QType {
        let name: String
        let id: Int32
        let elems: Int
        let bytes: Int
    }

    static let f16 = QType(name: "F16", id: Int32(LM_TYPE_F16), elems: 1, bytes: 2)
    static let bf16 = QType(name: "BF16", id: Int32(LM_TYPE_BF16), elems: 1, bytes: 2)
    static let q8_0 = QType(name: "Q8_0", id: Int32(LM_TYPE_Q8_0), elems: 32, bytes: 34)
    static let q5_0 = QType(name: "Q5_0", id: Int32(LM_TYPE_Q5_0), elems: 32, bytes: 22)
    static let q4_K = QType(name: "Q4_K", id: Int32(LM_TYPE_Q4_K), elems: 256, bytes: 144)
    static let q6_K = QType(name: "Q6_K", id: Int32(LM_TYPE_Q6_K), elems: 256, bytes: 210)
    static let all = [f16, bf16, q8_0, q5_0, q4_K, q6_K]

    /// Runs body once per instruction set this CPU has (1 = AVX2, 2 = AVX-512), forcing it; restores
    /// run-time detection afterwards.
    func forEachISA(_ body: (Int32) throws -> Void) rethrows {
        let cpu = lm_quant_set_isa(0)
        defer { lm_quant_set_isa(0) }
        XCTAssertEqual(lm_quant_isa(), cpu)
        for isa in 1...max(1, cpu) {
            XCTAssertEqual(lm_quant_set_isa(isa), isa, "forcing ISA \(isa)")
            XCTAssertEqual(lm_quant_isa(), isa)
            try body(isa)
        }
    }

    // MARK: - Random blocks

    enum Fill { case random, zeroScales, extremes }

    static func f16Bits(_ f: Float) -> UInt16 { Float16(f).bitPattern }

    static func put16(_ bytes: inout [UInt8], _ at: Int, _ v: UInt16) {
        bytes[at] = UInt8(v & 0xFF)
        bytes[at + 1] = UInt8(v >> 8)
    }

    /// `blocks` blocks of type t: random bytes with sane fp16 scales (|d| ≤ 0.1, both signs), or
    /// with the edge cases: all scales zero; or the extreme quant values (every q at its minimum in
    /// even blocks, at its maximum in odd ones; Q8_0 alternates −128 and 127; Q6_K int8 scales ±127/−128).
    static func randomBlocks(_ t: QType, blocks: Int, seed: UInt64, fill: Fill) -> [UInt8] {
        var rng = SeededRNG(seed: seed)
        var b = (0..<(blocks * t.bytes)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        func scale() -> UInt16 {
            fill == .zeroScales ? (rng.next() & 1 == 0 ? 0 : 0x8000) : f16Bits((rng.nextFloat() * 2 - 1) * 0.1)
        }
        for k in 0..<blocks {
            let o = k * t.bytes
            let odd = k % 2 == 1
            switch t.id {
            case Int32(LM_TYPE_F16):
                put16(&b, o, f16Bits((rng.nextFloat() * 2 - 1) * 4))
            case Int32(LM_TYPE_BF16):
                put16(&b, o, UInt16(((rng.nextFloat() * 2 - 1) * 4).bitPattern >> 16))
            case Int32(LM_TYPE_Q8_0):
                put16(&b, o, scale())
                if fill == .extremes { for j in 0..<32 { b[o + 2 + j] = j % 2 == 0 ? 0x80 : 0x7F } }
            case Int32(LM_TYPE_Q5_0):
                put16(&b, o, scale())
                if fill == .extremes { for j in 2..<22 { b[o + j] = odd ? 0xFF : 0x00 } }
            case Int32(LM_TYPE_Q4_K):
                put16(&b, o, scale())
                put16(&b, o + 2, fill == .zeroScales ? 0 : f16Bits(rng.nextFloat() * 0.05))
                if fill == .extremes { for j in 4..<144 { b[o + j] = odd ? 0xFF : 0x00 } }
            case Int32(LM_TYPE_Q6_K):
                put16(&b, o + 208, scale())
                if fill == .extremes {
                    for j in 0..<192 { b[o + j] = odd ? 0xFF : 0x00 }
                    for j in 0..<16 { b[o + 192 + j] = [0x7F, 0x80, 0x81, 0x01][j % 4] }
                }
            default:
                break
            }
        }
        return b
    }

    func dequantize(_ t: QType, _ blocks: [UInt8], n: Int, ref: Bool) -> [Float] {
        var out = [Float](repeating: .nan, count: n)
        blocks.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { dst in
                if ref {
                    lm_dequantize_ref(t.id, src.baseAddress, dst.baseAddress, n)
                } else {
                    lm_dequantize(t.id, src.baseAddress, dst.baseAddress, n)
                }
            }
        }
        return out
    }

    func assertBitIdentical(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        guard a.count == b.count else { return }
        if let i = a.indices.first(where: { a[$0].bitPattern != b[$0].bitPattern }) {
            XCTFail("\(what): element \(i) differs: \(a[i]) (0x\(String(a[i].bitPattern, radix: 16))) vs \(b[i]) (0x\(String(b[i].bitPattern, radix: 16)))",
                    file: file, line: line)
        }
    }

    // MARK: - Tests

    func testBlockTable() {
        for t in Self.all {
            XCTAssertEqual(lm_quant_block_elems(t.id), t.elems, t.name)
            XCTAssertEqual(lm_quant_block_bytes(t.id), t.bytes, t.name)
        }
        XCTAssertEqual(lm_quant_block_elems(Int32(LM_TYPE_F32)), 1)
        XCTAssertEqual(lm_quant_block_bytes(Int32(LM_TYPE_F32)), 4)
        for unknown: Int32 in [2, 3, 7, 10, 13, 15, 99, -1] {
            XCTAssertEqual(lm_quant_block_elems(unknown), 0)
            XCTAssertEqual(lm_quant_block_bytes(unknown), 0)
        }
    }

    func testForcingAnInstructionSet() {
        let cpu = lm_quant_set_isa(0)
        defer { lm_quant_set_isa(0) }
        XCTAssertTrue(cpu == 1 || cpu == 2)
        XCTAssertEqual(lm_quant_set_isa(1), 1)
        XCTAssertEqual(lm_quant_set_isa(2), cpu, "a request the CPU cannot run falls back to what it has")
        XCTAssertEqual(lm_quant_set_isa(0), cpu)
    }

    /// Every half and bfloat16 bit pattern (zeros, subnormals, infinities, NaNs included).
    func testHalfConversionsAreBitIdenticalOnEveryPattern() {
        let all = (0...0xFFFF).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        forEachISA { isa in
            for t in [Self.f16, Self.bf16] {
                let ref = dequantize(t, all, n: 65536, ref: true), fast = dequantize(t, all, n: 65536, ref: false)
                assertBitIdentical(fast, ref, "\(t.name) ISA \(isa)")
                // Spot values of the reference itself.
                XCTAssertEqual(ref[0x3C00], t.id == Int32(LM_TYPE_F16) ? 1 : Float(bitPattern: 0x3C00_0000))
            }
        }
        let f16 = dequantize(Self.f16, all, n: 65536, ref: true)
        XCTAssertEqual(f16[0x0001], 0x1p-24)
        XCTAssertEqual(f16[0x7BFF], 65504)
        XCTAssertEqual(f16[0x7C00], .infinity)
        XCTAssertEqual(f16[0xFC00], -.infinity)
        XCTAssertEqual(f16[0x8000].bitPattern, 0x8000_0000)
        XCTAssertTrue(f16[0x7E00].isNaN)
    }

    func testFastDequantizeIsBitIdenticalToTheReference() {
        forEachISA { isa in
            for t in Self.all {
                for fill in [Fill.random, .zeroScales, .extremes] {
                    for blocks in [1, 3, 16, 17, 40] {
                        let n = blocks * t.elems
                        let b = Self.randomBlocks(t, blocks: blocks, seed: UInt64(blocks * 7 + t.bytes), fill: fill)
                        let ref = dequantize(t, b, n: n, ref: true), fast = dequantize(t, b, n: n, ref: false)
                        assertBitIdentical(fast, ref, "\(t.name) ISA \(isa) \(fill) \(blocks) blocks")
                        if fill == .zeroScales && t.elems > 1 {
                            XCTAssertTrue(ref.allSatisfy { $0 == 0 }, "\(t.name): zero scales give zeros")
                        }
                    }
                }
            }
        }
    }

    /// The extreme quant values decode to the format's range ends.
    func testExtremeValuesDecodeToTheRangeEnds() {
        let one = Self.f16Bits(1)
        // Q8_0: d = 1, q = −128, 127.
        var q8 = [UInt8](repeating: 0, count: 34)
        Self.put16(&q8, 0, one)
        q8[2] = 0x80
        q8[3] = 0x7F
        XCTAssertEqual(Array(dequantize(Self.q8_0, q8, n: 32, ref: true)[0..<3]), [-128, 127, 0])
        // Q5_0: all bits clear → −16; all set → 15.
        var q5 = [UInt8](repeating: 0, count: 44)
        Self.put16(&q5, 0, one)
        Self.put16(&q5, 22, one)
        for j in 24..<44 { q5[j] = 0xFF }
        let v5 = dequantize(Self.q5_0, q5, n: 64, ref: true)
        XCTAssertTrue(v5[0..<32].allSatisfy { $0 == -16 } && v5[32..<64].allSatisfy { $0 == 15 })
        // Q6_K: d = −1, scales 127 (even groups) and −128 (odd): q = −32 everywhere (all bits clear).
        var q6 = [UInt8](repeating: 0, count: 210)
        for j in 0..<16 { q6[192 + j] = j % 2 == 0 ? 0x7F : 0x80 }
        Self.put16(&q6, 208, Self.f16Bits(-1))
        let v6 = dequantize(Self.q6_K, q6, n: 256, ref: true)
        for e in 0..<256 { XCTAssertEqual(v6[e], (e / 16) % 2 == 0 ? 4064 : -4096, "Q6_K element \(e)") }
        // Q4_K: d = 1, dmin = 1, every 6-bit scale and min 63, nibbles 15 → 63·15 − 63.
        var q4 = [UInt8](repeating: 0xFF, count: 144)
        Self.put16(&q4, 0, one)
        Self.put16(&q4, 2, one)
        XCTAssertTrue(dequantize(Self.q4_K, q4, n: 256, ref: true).allSatisfy { $0 == 63 * 15 - 63 })
    }

    /// Row lengths per type: several block counts, the model's widths, and (where the block size
    /// allows) lengths that are not multiples of 64 or of the vector width.
    static func widths(_ t: QType) -> [Int] {
        switch t.elems {
        case 1: return [32, 256, 640, 1024, 2048, 7, 33, 100, 647]
        case 32: return [32, 96, 544, 640, 1024, 2048]
        default: return [256, 512, 768, 1024, 2048]
        }
    }

    func testGemvMatchesTheReferenceOnAnySplit() {
        forEachISA { isa in
            for t in Self.all {
                for n in Self.widths(t) {
                    for fill in [Fill.random, .extremes] {
                        checkGemv(t, n: n, rows: 37, fill: fill, seed: UInt64(n * 31 + Int(t.id)), isa: isa)
                    }
                }
            }
        }
    }

    func checkGemv(_ t: QType, n: Int, rows: Int, fill: Fill, seed: UInt64, isa: Int32) {
        let rowBytes = n / t.elems * t.bytes
        let w = Self.randomBlocks(t, blocks: rows * n / t.elems, seed: seed, fill: fill)
        let x = randomFloats(n, seed: seed + 1, scale: 3)
        let bias = randomFloats(rows, seed: seed + 2)
        let y0 = randomFloats(rows, seed: seed + 3, scale: 2)
        let what = "\(t.name) n=\(n) ISA \(isa) \(fill)"
        let deq = dequantize(t, w, n: rows * n, ref: true)

        func gemv(_ y: inout [Float], _ r0: Int, _ r1: Int, bias b: [Float]?, accumulate: Bool) {
            w.withUnsafeBytes { wp in
                if let b = b {
                    lm_quant_gemv(t.id, &y, wp.baseAddress, rowBytes, n, r0, r1, x, b, accumulate ? 1 : 0)
                } else {
                    lm_quant_gemv(t.id, &y, wp.baseAddress, rowBytes, n, r0, r1, x, nil, accumulate ? 1 : 0)
                }
            }
        }

        // Plain product, bias, accumulate + bias: each against the reference.
        var plain = [Float](repeating: .nan, count: rows)
        gemv(&plain, 0, rows, bias: nil, accumulate: false)
        var full = y0
        gemv(&full, 0, rows, bias: bias, accumulate: true)
        var biased = y0
        gemv(&biased, 0, rows, bias: bias, accumulate: false)
        for r in 0..<rows {
            let dot = w.withUnsafeBytes { lm_quant_dot_ref(t.id, $0.baseAddress! + r * rowBytes, x, n) }
            var mag = 0.0
            for k in 0..<n { mag += abs(Double(deq[r * n + k]) * Double(x[k])) }
            let tolPlain = 1e-5 * mag
            XCTAssertLessThanOrEqual(abs(Double(plain[r]) - dot), tolPlain, "\(what) row \(r): \(plain[r]) vs \(dot)")
            let ref = Double(y0[r]) + Double(bias[r]) + dot
            let tol = 1e-5 * (mag + abs(Double(y0[r])) + abs(Double(bias[r])))
            XCTAssertLessThanOrEqual(abs(Double(full[r]) - ref), tol, "\(what) row \(r) (bias, accumulate)")
            // The documented order: (accumulate ? y : 0) + (bias ? bias : 0) + Σ.
            XCTAssertEqual(full[r].bitPattern, ((y0[r] + bias[r]) + plain[r]).bitPattern, "\(what) row \(r) accumulate order")
            XCTAssertEqual(biased[r].bitPattern, (bias[r] + plain[r]).bitPattern, "\(what) row \(r) bias order")
        }

        // Any split of the rows gives the same bits, and rows outside [r0, r1) are left alone.
        var split = y0
        let cuts = [0, 1, 5, 6, 13, 22, 23, rows]
        for c in 0..<(cuts.count - 1) { gemv(&split, cuts[c], cuts[c + 1], bias: bias, accumulate: true) }
        XCTAssertEqual(split.map(\.bitPattern), full.map(\.bitPattern), "\(what): split rows")
        var one = y0
        for r in stride(from: rows - 1, through: 0, by: -1) { gemv(&one, r, r + 1, bias: bias, accumulate: true) }
        XCTAssertEqual(one.map(\.bitPattern), full.map(\.bitPattern), "\(what): one row at a time")
        var window = [Float](repeating: .nan, count: rows)
        gemv(&window, 5, 13, bias: bias, accumulate: false)
        for r in 0..<rows {
            if r >= 5 && r < 13 {
                XCTAssertEqual(window[r].bitPattern, biased[r].bitPattern, "\(what): window row \(r)")
            } else {
                XCTAssertTrue(window[r].isNaN, "\(what): row \(r) outside [5, 13) was written")
            }
        }
        var empty = y0
        gemv(&empty, 7, 7, bias: bias, accumulate: false)
        XCTAssertEqual(empty, y0, "\(what): empty range")
    }

    /// Rows longer than the 65536 the header allows take a slower path for the types that keep per-call
    /// tables of x sums; they must still compute the product (float sums of ~66k terms: 1e-4 relative).
    func testRowsLongerThanTheContractStillComputeTheProduct() {
        forEachISA { isa in
            for t in [Self.q5_0, Self.q4_K, Self.q6_K, Self.q8_0, Self.f16] {
                let n = 65536 + 256, rows = 2, rowBytes = n / t.elems * t.bytes
                let w = Self.randomBlocks(t, blocks: rows * n / t.elems, seed: 77, fill: .random)
                let x = randomFloats(n, seed: 78)
                var y = [Float](repeating: 0, count: rows)
                w.withUnsafeBytes { lm_quant_gemv(t.id, &y, $0.baseAddress, rowBytes, n, 0, rows, x, nil, 0) }
                let deq = dequantize(t, w, n: rows * n, ref: true)
                for r in 0..<rows {
                    let dot = w.withUnsafeBytes { lm_quant_dot_ref(t.id, $0.baseAddress! + r * rowBytes, x, n) }
                    var mag = 0.0
                    for k in 0..<n { mag += abs(Double(deq[r * n + k]) * Double(x[k])) }
                    XCTAssertLessThanOrEqual(abs(Double(y[r]) - dot), 1e-4 * mag, "\(t.name) n=\(n) ISA \(isa) row \(r)")
                }
            }
        }
    }

    // MARK: - gguf-py fixture

    /// Real blocks (gguf-py's numpy quantizers for F16/BF16/Q8_0/Q5_0; llama.cpp's quantizer through
    /// llama-cpp-python for Q4_K/Q6_K/Q8_0/Q5_0) and gguf-py's `dequantize` of them: the reference and
    /// the fast paths must give the same bits. Made by Fixtures/make_quant_fixture.py.
    func testDequantizationMatchesGGUFPy() throws {
        let index = try loadJSON(try TestPaths.checkedIn("LMCoreTests", "quant_fixture.json"))
        let blocks = try Data(contentsOf: URL(fileURLWithPath: try TestPaths.checkedIn("LMCoreTests", "quant_blocks.bin")))
        let values = try Data(contentsOf: URL(fileURLWithPath: try TestPaths.checkedIn("LMCoreTests", "quant_values.bin")))
        let entries = try XCTUnwrap(index["entries"] as? [[String: Any]])
        var seen = Set<String>()
        for e in entries {
            let name = try XCTUnwrap(e["name"] as? String), source = (e["source"] as? String) ?? ""
            let type = Int32(try XCTUnwrap((e["type"] as? NSNumber)?.intValue))
            let rows = try XCTUnwrap((e["rows"] as? NSNumber)?.intValue), n = try XCTUnwrap((e["n"] as? NSNumber)?.intValue)
            let bo = try XCTUnwrap((e["blocks_offset"] as? NSNumber)?.intValue)
            let bn = try XCTUnwrap((e["blocks_bytes"] as? NSNumber)?.intValue)
            let vo = try XCTUnwrap((e["values_offset"] as? NSNumber)?.intValue)
            let t = try XCTUnwrap(Self.all.first(where: { $0.id == type }), "type \(type)")
            XCTAssertEqual(bn, rows * n / t.elems * t.bytes, name)
            let raw = [UInt8](blocks[bo..<(bo + bn)])
            let expected: [Float] = values[vo..<(vo + rows * n * 4)].withUnsafeBytes { p in
                (0..<(rows * n)).map { Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
            let what = "\(name) from \(source)"
            assertBitIdentical(dequantize(t, raw, n: rows * n, ref: true), expected, "\(what): reference vs gguf-py")
            forEachISA { isa in
                assertBitIdentical(dequantize(t, raw, n: rows * n, ref: false), expected, "\(what): ISA \(isa) vs gguf-py")
                // And the product on real blocks (a row-relative check, as above).
                let x = randomFloats(n, seed: 90, scale: 2)
                var y = [Float](repeating: 0, count: rows)
                raw.withUnsafeBytes { lm_quant_gemv(type, &y, $0.baseAddress, bn / rows, n, 0, rows, x, nil, 0) }
                for r in 0..<rows {
                    var dot = 0.0, mag = 0.0
                    for k in 0..<n {
                        dot += Double(expected[r * n + k]) * Double(x[k])
                        mag += abs(Double(expected[r * n + k]) * Double(x[k]))
                    }
                    XCTAssertLessThanOrEqual(abs(Double(y[r]) - dot), 1e-5 * mag, "\(what): gemv row \(r), ISA \(isa)")
                }
            }
            seen.insert(name)
        }
        XCTAssertEqual(seen, Set(Self.all.map(\.name)), "the fixture covers every type")
    }
}
