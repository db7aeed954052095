import LMCore
import LMTestSupport
import XCTest

/// Every backward kernel against central differences of its forward kernel (GradCheck.swift),
/// plus accumulation (+=) and independence from the thread count.
///
/// Each kernel is a `KernelCase`: a backward run with dout = r into zeroed buffers, and the
/// numeric gradient of L = Σ r ⊙ forward(...) with respect to the same inputs.
final class GradientCheckTests: XCTestCase {
    let pools = [ThreadPool(threads: 1), ThreadPool(threads: 2), ThreadPool(threads: 3)]

    struct KernelCase {
        let name: String
        /// Runs the backward `calls` times into the same zeroed buffers on `pool`; returns
        /// (gradient name, values) for every input and parameter gradient.
        let backward: (_ pool: ThreadPool, _ calls: Int) -> [(String, [Float])]
        /// The numeric gradient for each name `backward` returns.
        let numeric: (_ pool: ThreadPool) -> [String: [Double]]
    }

    static func zeros(_ n: Int) -> [Float] { [Float](repeating: 0, count: n) }

    // MARK: - Cases

    // (N, C) · (C, OC) or (OC, C) + (OC) → (N, OC)
    static func matmul(N: Int, C: Int, OC: Int, layout: WeightLayout) -> KernelCase {
        let inp = randomFloats(N * C, seed: 1)            // (N, C)
        let weight = randomFloats(C * OC, seed: 2)        // (C, OC) or (OC, C)
        let bias = randomFloats(OC, seed: 3)              // (OC)
        let r = randomFloats(N * OC, seed: 4)             // (N, OC)
        func loss(_ x: [Float], _ w: [Float], _ b: [Float], _ pool: ThreadPool) -> Double {
            var y = zeros(N * OC)
            matmulForward(out: &y, inp: x, weight: w, bias: b, N: N, C: C, OC: OC, layout: layout, pool: pool)
            return GradCheck.dot(r, y)
        }
        return KernelCase(name: "matmul N=\(N) C=\(C) OC=\(OC) \(layout)", backward: { pool, calls in
            var dinp = zeros(N * C), dweight = zeros(C * OC), dbias = zeros(OC)
            for _ in 0..<calls {
                matmulBackward(dinp: &dinp, dweight: &dweight, dbias: &dbias, dout: r, inp: inp, weight: weight,
                               N: N, C: C, OC: OC, layout: layout, pool: pool)
            }
            return [("dinp", dinp), ("dweight", dweight), ("dbias", dbias)]
        }, numeric: { pool in
            ["dinp": GradCheck.numericGradient(at: inp) { loss($0, weight, bias, pool) },
             "dweight": GradCheck.numericGradient(at: weight) { loss(inp, $0, bias, pool) },
             "dbias": GradCheck.numericGradient(at: bias) { loss(inp, weight, $0, pool) }]
        })
    }

    // (N, C) → (N, C), weight and bias (C)
    static func layerNorm(N: Int, C: Int) -> KernelCase {
        let inp = randomFloats(N * C, seed: 11, scale: 2)
        let weight = randomFloats(C, seed: 12).map { $0 + 1 }
        let bias = randomFloats(C, seed: 13)
        let r = randomFloats(N * C, seed: 14)
        let eps: Float = 1e-5
        func loss(_ x: [Float], _ w: [Float], _ b: [Float], _ pool: ThreadPool) -> Double {
            var y = zeros(N * C)
            layerNormForward(out: &y, mean: nil, rstd: nil, inp: x, weight: w, bias: b, N: N, C: C, eps: eps, pool: pool)
            return GradCheck.dot(r, y)
        }
        return KernelCase(name: "layernorm N=\(N) C=\(C)", backward: { pool, calls in
            var y = zeros(N * C), mean = zeros(N), rstd = zeros(N)
            layerNormForward(out: &y, mean: &mean, rstd: &rstd, inp: inp, weight: weight, bias: bias, N: N, C: C, eps: eps, pool: pool)
            var dinp = zeros(N * C), dweight = zeros(C), dbias = zeros(C)
            for _ in 0..<calls {
                layerNormBackward(dinp: &dinp, dweight: &dweight, dbias: &dbias, dout: r, inp: inp, weight: weight,
                                  mean: mean, rstd: rstd, N: N, C: C, pool: pool)
            }
            return [("dinp", dinp), ("dweight", dweight), ("dbias", dbias)]
        }, numeric: { pool in
            ["dinp": GradCheck.numericGradient(at: inp) { loss($0, weight, bias, pool) },
             "dweight": GradCheck.numericGradient(at: weight) { loss(inp, $0, bias, pool) },
             "dbias": GradCheck.numericGradient(at: bias) { loss(inp, weight, $0, pool) }]
        })
    }

    // (n) → (n); inputs spread over [-5, 5] plus random ones
    static func gelu(n: Int, kind: GELUKind) -> KernelCase {
        let inp = n <= 64 ? (0..<n).map { -5 + 10 * Float($0) / Float(n - 1) + 0.013 } : randomFloats(n, seed: 21, scale: 5)
        let r = randomFloats(n, seed: 22)
        func loss(_ x: [Float], _ pool: ThreadPool) -> Double {
            var y = zeros(n)
            geluForward(out: &y, inp: x, n: n, kind: kind, pool: pool)
            return GradCheck.dot(r, y)
        }
        return KernelCase(name: "gelu \(kind) n=\(n)", backward: { pool, calls in
            var dinp = zeros(n)
            for _ in 0..<calls { geluBackward(dinp: &dinp, inp: inp, dout: r, n: n, kind: kind, pool: pool) }
            return [("dinp", dinp)]
        }, numeric: { pool in
            ["dinp": GradCheck.numericGradient(at: inp) { loss($0, pool) }]
        })
    }

    // tokens (B, T) → (B, T, C) from token table (V, C) and position table (maxT, C)
    static func embedding(B: Int, T: Int, C: Int, V: Int, tokens: [Int32], start: Int) -> KernelCase {
        precondition(tokens.count == B * T)
        let maxT = start + T + 1
        let tokenTable = randomFloats(V * C, seed: 31)
        let positionTable = randomFloats(maxT * C, seed: 32)
        let r = randomFloats(B * T * C, seed: 33)
        func loss(_ te: [Float], _ pe: [Float]) -> Double {
            var y = zeros(B * T * C)
            y.withUnsafeMutableBufferPointer { out in
                tokens.withUnsafeBufferPointer { tok in
                    for b in 0..<B {
                        embeddingForward(out: out.baseAddress! + b * T * C, tokens: tok.baseAddress! + b * T,
                                         tokenTable: te, positionTable: pe, startPosition: start, T: T, C: C)
                    }
                }
            }
            return GradCheck.dot(r, y)
        }
        return KernelCase(name: "embedding B=\(B) T=\(T) C=\(C) V=\(V)", backward: { pool, calls in
            var dte = zeros(V * C), dpe = zeros(maxT * C)
            for _ in 0..<calls {
                embeddingBackward(dtokenTable: &dte, dpositionTable: &dpe, dout: r, tokens: tokens,
                                  startPosition: start, B: B, T: T, C: C, pool: pool)
            }
            return [("dtokenTable", dte), ("dpositionTable", dpe)]
        }, numeric: { _ in
            ["dtokenTable": GradCheck.numericGradient(at: tokenTable) { loss($0, positionTable) },
             "dpositionTable": GradCheck.numericGradient(at: positionTable) { loss(tokenTable, $0) }]
        })
    }

    // (n) + (n) → (n); no pool: single-threaded by construction
    static func residual(n: Int) -> KernelCase {
        let a = randomFloats(n, seed: 41), b = randomFloats(n, seed: 42), r = randomFloats(n, seed: 43)
        func loss(_ x: [Float], _ y: [Float]) -> Double {
            var out = zeros(n)
            residualForward(out: &out, a: x, b: y, n: n)
            return GradCheck.dot(r, out)
        }
        return KernelCase(name: "residual n=\(n)", backward: { _, calls in
            var da = zeros(n), db = zeros(n)
            for _ in 0..<calls { residualBackward(da: &da, db: &db, dout: r, n: n) }
            return [("da", da), ("db", db)]
        }, numeric: { _ in
            ["da": GradCheck.numericGradient(at: a) { loss($0, b) },
             "db": GradCheck.numericGradient(at: b) { loss(a, $0) }]
        })
    }

    // logits (N, V), targets (N) → mean loss over targets ≥ 0
    static func crossEntropy(N: Int, V: Int, targets: [Int32]) -> KernelCase {
        precondition(targets.count == N)
        let logits = randomFloats(N * V, seed: 51, scale: 3)
        let count = targets.filter { $0 >= 0 }.count
        func loss(_ l: [Float], _ pool: ThreadPool) -> Double {
            var losses = zeros(N), probs = zeros(N * V)
            crossEntropyForward(losses: &losses, probs: &probs, logits: l, targets: targets, N: N, V: V, pool: pool)
            return losses.reduce(0.0) { $0 + Double($1) } / Double(count)
        }
        return KernelCase(name: "cross-entropy N=\(N) V=\(V)", backward: { pool, calls in
            var losses = zeros(N), probs = zeros(N * V)
            crossEntropyForward(losses: &losses, probs: &probs, logits: logits, targets: targets, N: N, V: V, pool: pool)
            var dlogits = zeros(N * V)
            for _ in 0..<calls {
                crossEntropyBackward(dlogits: &dlogits, probs: probs, targets: targets, dloss: 1 / Float(count),
                                     N: N, V: V, pool: pool)
            }
            return [("dlogits", dlogits)]
        }, numeric: { pool in
            ["dlogits": GradCheck.numericGradient(at: logits) { loss($0, pool) }]
        })
    }

    // (n) → (n) with a mask drawn from a fixed seed; no pool: single-threaded by construction
    static func dropout(n: Int, p: Float) -> KernelCase {
        let inp = randomFloats(n, seed: 61), r = randomFloats(n, seed: 62)
        func forward(_ x: [Float]) -> (out: [Float], mask: [UInt8]) {
            var rng = SeededRNG(seed: 63)
            var out = zeros(n), mask = [UInt8](repeating: 0, count: n)
            dropoutForward(out: &out, mask: &mask, inp: x, n: n, p: p, rng: &rng)
            return (out, mask)
        }
        return KernelCase(name: "dropout n=\(n) p=\(p)", backward: { _, calls in
            let mask = forward(inp).mask
            var dinp = zeros(n)
            for _ in 0..<calls { dropoutBackward(dinp: &dinp, dout: r, mask: mask, n: n, p: p) }
            return [("dinp", dinp)]
        }, numeric: { _ in
            ["dinp": GradCheck.numericGradient(at: inp) { GradCheck.dot(r, forward($0).out) }]
        })
    }

    // qkv (B, T, 3C) → (B, T, C), probabilities (B, NH, T, T) saved
    static func attention(B: Int, T: Int, C: Int, NH: Int) -> KernelCase {
        let qkv = randomFloats(B * T * 3 * C, seed: 71)
        let r = randomFloats(B * T * C, seed: 72)
        func forward(_ x: [Float], _ pool: ThreadPool) -> (out: [Float], att: [Float]) {
            var out = zeros(B * T * C), att = zeros(B * NH * T * T)
            causalAttentionForward(out: &out, att: &att, qkv: x, B: B, T: T, C: C, NH: NH, pool: pool)
            return (out, att)
        }
        return KernelCase(name: "attention B=\(B) T=\(T) C=\(C) NH=\(NH)", backward: { pool, calls in
            let att = forward(qkv, pool).att
            var dqkv = zeros(B * T * 3 * C), scratch = zeros(pool.threadCount * T * T)
            for _ in 0..<calls {
                causalAttentionBackward(dqkv: &dqkv, dout: r, qkv: qkv, att: att, scratch: &scratch,
                                        B: B, T: T, C: C, NH: NH, pool: pool)
            }
            return [("dqkv", dqkv)]
        }, numeric: { pool in
            ["dqkv": GradCheck.numericGradient(at: qkv) { GradCheck.dot(r, forward($0, pool).out) }]
        })
    }

    /// Small cases for the finite-difference checks.
    static var smallCases: [KernelCase] {
        var cases: [KernelCase] = []
        for layout in [WeightLayout.inOut, .outIn] {
            for N in [1, 4] { cases.append(matmul(N: N, C: 6, OC: 5, layout: layout)) }
        }
        cases.append(layerNorm(N: 3, C: 11))
        cases.append(gelu(n: 25, kind: .tanh))
        cases.append(gelu(n: 25, kind: .erf))
        // Token 1 three times and 3 three times across both rows; token 2 never.
        cases.append(embedding(B: 2, T: 4, C: 3, V: 5, tokens: [1, 3, 1, 1, 4, 0, 3, 3], start: 2))
        cases.append(residual(n: 7))
        cases.append(crossEntropy(N: 6, V: 7, targets: [2, -1, 0, 6, -1, 3]))
        cases.append(dropout(n: 24, p: 0.25))
        cases.append(attention(B: 2, T: 5, C: 8, NH: 2))
        cases.append(attention(B: 1, T: 3, C: 6, NH: 3))
        cases.append(attention(B: 1, T: 70, C: 4, NH: 2))  // more than one block of query rows
        cases.append(attention(B: 1, T: 32, C: 32, NH: 2))  // T, HS multiples of 16: attention.h kernels
        cases.append(matmul(N: 13, C: 7, OC: 21, layout: .inOut))  // the short-K GEMM, edge tiles
        return cases
    }

    /// Cases large enough that every pooled loop splits (see each kernel's `minimumPerThread`).
    static var splitCases: [KernelCase] {
        var cases: [KernelCase] = []
        for layout in [WeightLayout.inOut, .outIn] {
            cases.append(matmul(N: 16, C: 128, OC: 512, layout: layout))  // 1 M multiply-adds: gemm splits
            cases.append(matmul(N: 1, C: 128, OC: 512, layout: layout))   // dbias splits
        }
        cases.append(layerNorm(N: 40, C: 96))
        cases.append(gelu(n: 20_000, kind: .tanh))
        cases.append(gelu(n: 20_000, kind: .erf))
        cases.append(embedding(B: 2, T: 8, C: 96, V: 11, tokens: (0..<16).map { Int32($0 * 7 % 11) }, start: 0))
        cases.append(crossEntropy(N: 16, V: 50, targets: (0..<16).map { $0 % 5 == 2 ? -1 : Int32($0 * 3 % 50) }))
        cases.append(attention(B: 2, T: 9, C: 16, NH: 4))
        cases.append(attention(B: 3, T: 48, C: 64, NH: 2))
        return cases
    }

    // MARK: - Tests

    func testBackwardMatchesFiniteDifferences() {
        for c in Self.smallCases {
            let numeric = c.numeric(pools[0])
            for (name, analytic) in c.backward(pools[1], 1) {
                guard let n = numeric[name] else {
                    XCTFail("\(c.name): no numeric gradient for \(name)")
                    continue
                }
                GradCheck.assertMatches(analytic: analytic, numeric: n, "\(c.name) \(name)")
            }
        }
    }

    func testBackwardAccumulates() {
        for c in Self.smallCases + Self.splitCases.prefix(1) {
            let once = c.backward(pools[1], 1), twice = c.backward(pools[1], 2)
            for ((name, g1), (_, g2)) in zip(once, twice) {
                let doubled = g1.map { 2 * $0 }
                XCTAssertGreaterThan(maxAbs(g1), 0, "\(c.name) \(name): zero gradient")
                assertClose(g2, doubled, tol: Tolerance.kernel * maxAbs(doubled), "\(c.name) \(name): two calls should double")
            }
        }
    }

    func testBackwardDoesNotDependOnThreadCount() {
        for c in Self.splitCases + Self.smallCases {
            let results = pools.map { c.backward($0, 1) }
            for k in 1..<pools.count {
                for ((name, a), (_, b)) in zip(results[0], results[k]) {
                    GradCheck.assertBitIdentical(a, b, "\(c.name) \(name): 1 vs \(pools[k].threadCount) threads")
                }
            }
        }
    }

    // MARK: - Details the generic checks do not cover

    func testMatmulOptionalGradients() {
        for layout in [WeightLayout.inOut, .outIn] {
            let (N, C, OC) = (3, 6, 5)
            let full = Dictionary(uniqueKeysWithValues: Self.matmul(N: N, C: C, OC: OC, layout: layout).backward(pools[0], 1))
            let inp = randomFloats(N * C, seed: 1), weight = randomFloats(C * OC, seed: 2), r = randomFloats(N * OC, seed: 4)
            var dinp = Self.zeros(N * C), dweight = Self.zeros(C * OC), dbias = Self.zeros(OC)
            matmulBackward(dinp: &dinp, dweight: nil, dbias: nil, dout: r, inp: inp, weight: weight, N: N, C: C, OC: OC, layout: layout, pool: pools[0])
            matmulBackward(dinp: nil, dweight: &dweight, dbias: nil, dout: r, inp: inp, weight: weight, N: N, C: C, OC: OC, layout: layout, pool: pools[0])
            matmulBackward(dinp: nil, dweight: nil, dbias: &dbias, dout: r, inp: inp, weight: weight, N: N, C: C, OC: OC, layout: layout, pool: pools[0])
            GradCheck.assertBitIdentical(dinp, full["dinp"] ?? [], "\(layout) dinp alone")
            GradCheck.assertBitIdentical(dweight, full["dweight"] ?? [], "\(layout) dweight alone")
            GradCheck.assertBitIdentical(dbias, full["dbias"] ?? [], "\(layout) dbias alone")
        }
    }

    /// `overwriteInput` (own short-K GEMM when it fits, OpenBLAS otherwise) sets dinp whatever it
    /// held, and `dinpScale` multiplies it element-wise; the same bits on any thread count.
    func testMatmulInputGradientOverwriteAndScale() {
        // (13, 7, 21): own GEMM with edge tiles; (13, 7, 300): K = 300 > 256, OpenBLAS; (4, 7, 21): too few rows.
        for (N, C, OC) in [(13, 7, 21), (13, 7, 300), (4, 7, 21)] {
            for layout in [WeightLayout.inOut, .outIn] {
                let inp = randomFloats(N * C, seed: 1), weight = randomFloats(C * OC, seed: 2), r = randomFloats(N * OC, seed: 4)
                let scale = randomFloats(N * C, seed: 5)
                var reference = Self.zeros(N * C)
                matmulBackward(dinp: &reference, dweight: nil, dbias: nil, dout: r, inp: inp, weight: weight,
                               N: N, C: C, OC: OC, layout: layout, pool: pools[0])
                var results: [[Float]] = []
                for pool in pools {
                    var set = randomFloats(N * C, seed: 9), scaled = randomFloats(N * C, seed: 10)
                    matmulBackward(dinp: &set, dweight: nil, dbias: nil, dout: r, inp: inp, weight: weight,
                                   N: N, C: C, OC: OC, layout: layout, overwriteInput: true, pool: pool)
                    matmulBackward(dinp: &scaled, dweight: nil, dbias: nil, dout: r, inp: inp, weight: weight,
                                   N: N, C: C, OC: OC, layout: layout, overwriteInput: true, dinpScale: scale, pool: pool)
                    let name = "N=\(N) C=\(C) OC=\(OC) \(layout) threads=\(pool.threadCount)"
                    assertClose(set, reference, tol: Tolerance.kernel * maxAbs(reference), "\(name): overwrite")
                    assertClose(scaled, zip(reference, scale).map { $0 * $1 }, tol: Tolerance.kernel * maxAbs(reference), "\(name): scaled")
                    results.append(set + scaled)
                }
                for k in 1..<results.count {
                    GradCheck.assertBitIdentical(results[0], results[k], "N=\(N) C=\(C) OC=\(OC) \(layout): 1 vs \(pools[k].threadCount) threads")
                }
            }
        }
    }

    /// With `overwrite`, attention backward sets dqkv whatever it held (own kernels and BLAS blocks).
    func testAttentionBackwardOverwrite() {
        for (B, T, C, NH) in [(2, 32, 32, 2), (1, 9, 16, 4)] {
            let qkv = randomFloats(B * T * 3 * C, seed: 71), dout = randomFloats(B * T * C, seed: 72)
            var out = Self.zeros(B * T * C), att = Self.zeros(B * NH * T * T)
            causalAttentionForward(out: &out, att: &att, qkv: qkv, B: B, T: T, C: C, NH: NH, pool: pools[1])
            var scratch = Self.zeros(pools[1].threadCount * T * T)
            var accumulated = Self.zeros(B * T * 3 * C), overwritten = randomFloats(B * T * 3 * C, seed: 3)
            causalAttentionBackward(dqkv: &accumulated, dout: dout, qkv: qkv, att: att, scratch: &scratch,
                                    B: B, T: T, C: C, NH: NH, pool: pools[1])
            causalAttentionBackward(dqkv: &overwritten, dout: dout, qkv: qkv, att: att, scratch: &scratch,
                                    B: B, T: T, C: C, NH: NH, overwrite: true, pool: pools[1])
            GradCheck.assertBitIdentical(overwritten, accumulated, "attention B=\(B) T=\(T) C=\(C) NH=\(NH)")
        }
    }

    func testEmbeddingRepeatedAndUnusedTokens() {
        let c = Self.embedding(B: 2, T: 4, C: 3, V: 5, tokens: [1, 3, 1, 1, 4, 0, 3, 3], start: 2)
        let grads = Dictionary(uniqueKeysWithValues: c.backward(pools[2], 1))
        let dte = grads["dtokenTable"] ?? [], dpe = grads["dpositionTable"] ?? []
        XCTAssertEqual(Array(dte[6..<9]), [0, 0, 0], "token 2 never appears")
        XCTAssertEqual(Array(dpe[0..<6]), Self.zeros(6), "positions 0 and 1 precede startPosition 2")
        XCTAssertEqual(Array(dpe[18..<21]), [0, 0, 0], "position 6 is past the sequence")
        // Token 1 appears at (0,0), (0,2), (0,3): its row is the sum of those three dout rows.
        let r = randomFloats(2 * 4 * 3, seed: 33)
        for ch in 0..<3 {
            let expected = Double(r[0 * 3 + ch]) + Double(r[2 * 3 + ch]) + Double(r[3 * 3 + ch])
            XCTAssertEqual(Double(dte[1 * 3 + ch]), expected, accuracy: 1e-6)
        }
    }

    func testCrossEntropyIgnoredRowsGetNoGradient() {
        let c = Self.crossEntropy(N: 6, V: 7, targets: [2, -1, 0, 6, -1, 3])
        guard let d = c.backward(pools[1], 1).first?.1 else { return XCTFail("no gradient") }
        XCTAssertEqual(Array(d[7..<14]), Self.zeros(7), "row 1 has target -1")
        XCTAssertEqual(Array(d[28..<35]), Self.zeros(7), "row 4 has target -1")
        // Each counted row of dlogits sums to zero (softmax minus one-hot).
        for row in [0, 2, 3, 5] {
            XCTAssertEqual(d[row * 7..<(row + 1) * 7].reduce(0, +), 0, accuracy: 1e-6, "row \(row)")
        }
    }

    func testDropoutMaskAndScale() {
        let c = Self.dropout(n: 24, p: 0.25)
        guard let d = c.backward(pools[0], 1).first?.1 else { return XCTFail("no gradient") }
        let r = randomFloats(24, seed: 62)
        var dropped = 0
        for i in 0..<24 {
            if d[i] == 0 { dropped += 1 } else { XCTAssertEqual(d[i], r[i] / 0.75, accuracy: 1e-6) }
        }
        XCTAssertTrue(dropped > 0 && dropped < 24, "the mask should both keep and drop (dropped \(dropped) of 24)")
    }
}
