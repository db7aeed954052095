import Foundation
import LMCore
import LMTestSupport
import LMTraining
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Optimizers against PyTorch's numbers and against an independent Double implementation of
/// each update rule; frozen groups, weight-decay groups, state round trips, thread counts.
final class OptimizerTests: XCTestCase {
    let pools = [ThreadPool(threads: 1), ThreadPool(threads: 2), ThreadPool(threads: 3)]

    // MARK: - PyTorch reference numbers

    // Generated with torch 2.13.0+cpu, float32, by this script (kept here so it can be rerun):
    //   P0, G, LR as below; a = p[0:5] (weight_decay 0.1), b = p[5:7] (weight_decay 0.0),
    //   p[7] not given to the optimizer (frozen);
    //   opt = cls([{'params': [a]}, {'params': [b], 'weight_decay': 0.0}], lr=LR[0], **kw)
    //   for s in range(3): set every group's lr = LR[s]; a.grad, b.grad = G[s] slices; opt.step()
    //   kw: AdamW/Adam betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1; SGD momentum=0.9 (and 0.0),
    //   weight_decay=0.1; Adagrad eps=1e-10, weight_decay=0.1; RMSprop alpha=0.99, eps=1e-8,
    //   weight_decay=0.1. Rows: the 8 parameters after steps 1, 2, 3.
    static let p0: [Float] = [0.5, -1.25, 2.0, 0.125, -0.75, 0.3, -0.2, 1.0]
    static let g: [[Float]] = [[0.1, -0.2, 0.3, -0.4, 0.05, 0.6, -0.7, 0.8],
                               [-0.3, 0.25, 0.5, -0.1, 0.0, -0.6, 0.2, -0.8],
                               [0.2, 0.2, -0.4, 0.3, -0.05, 0.1, 0.9, 0.4]]
    static let lr: [Float] = [0.01, 0.02, 0.005]
    static let torchGroups = [ParameterGroup(range: 0..<5, decay: true),
                              ParameterGroup(range: 5..<7, decay: false),
                              ParameterGroup(range: 7..<8, decay: true, trainable: false)]

    static let torchAdamW: [[Double]] = [
        [0.4895000159740448, -1.2387499809265137, 1.9880000352859497, 0.13487499952316284, -0.7592499852180481, 0.2900000214576721, -0.1899999976158142, 1.0],
        [0.4984048306941986, -1.2395271062850952, 1.964368224143982, 0.15121720731258392, -0.7711326479911804, 0.2910526394844055, -0.18120543658733368, 1.0],
        [0.4980616867542267, -1.2411338090896606, 1.962061882019043, 0.15185615420341492, -0.7703177332878113, 0.29088056087493896, -0.18262147903442383, 1.0]]
    static let torchAdam: [[Double]] = [
        [0.49000000953674316, -1.2400000095367432, 1.9900000095367432, 0.13500000536441803, -0.7400000095367432, 0.2900000214576721, -0.1899999976158142, 1.0],
        [0.4959048926830292, -1.2328879833221436, 1.9700992107391357, 0.15132291615009308, -0.7216120958328247, 0.2910526394844055, -0.18120543658733368, 1.0],
        [0.494698166847229, -1.2322328090667725, 1.9670912027359009, 0.1518058329820633, -0.7170071601867676, 0.29088056087493896, -0.18262147903442383, 1.0]]
    static let torchSGD: [[Double]] = [
        [0.4984999895095825, -1.246749997138977, 1.9950000047683716, 0.1288750022649765, -0.749750018119812, 0.2939999997615814, -0.19300000369548798, 1.0],
        [0.5008029937744141, -1.2434065341949463, 1.9720100164413452, 0.13759225606918335, -0.7478005290031433, 0.295199990272522, -0.18440000712871552, 1.0],
        [0.5000707507133484, -1.2430325746536255, 1.9678512811660767, 0.13798484206199646, -0.7467380166053772, 0.29496997594833374, -0.1869650036096573, 1.0]]
    static let torchSGDNoMomentum: [[Double]] = [
        [0.4984999895095825, -1.246749997138977, 1.9950000047683716, 0.1288750022649765, -0.749750018119812, 0.2939999997615814, -0.19300000369548798, 1.0],
        [0.5035029649734497, -1.2492564916610718, 1.9810099601745605, 0.13061724603176117, -0.7482505440711975, 0.3059999942779541, -0.19699999690055847, 1.0],
        [0.5022512078285217, -1.2496318817138672, 1.9820194244384766, 0.12905193865299225, -0.7476264238357544, 0.30550000071525574, -0.20149999856948853, 1.0]]
    static let torchAdagrad: [[Double]] = [
        [0.49000000953674316, -1.2400000095367432, 1.9900000095367432, 0.13500000536441803, -0.7400000095367432, 0.2900000214576721, -0.1899999976158142, 1.0],
        [0.5071679353713989, -1.2472295761108398, 1.9737331867218018, 0.1393572837114334, -0.7210521101951599, 0.30414214730262756, -0.1954944133758545, 1.0],
        [0.5039133429527283, -1.2482850551605225, 1.974880576133728, 0.1362561136484146, -0.7168401479721069, 0.3035569489002228, -0.19938182830810547, 1.0]]
    static let torchRMSprop: [[Double]] = [
        [0.40000006556510925, -1.1500000953674316, 1.899999976158142, 0.22499996423721313, -0.6500003933906555, 0.20000003278255463, -0.10000000894069672, 1.0],
        [0.5734538435935974, -1.227050542831421, 1.7377705574035645, 0.26441311836242676, -0.4632111191749573, 0.3417762517929077, -0.15520000457763672, 1.0],
        [0.5407923460006714, -1.2378722429275513, 1.7506814002990723, 0.2323831021785736, -0.42261385917663574, 0.3358805775642395, -0.19422216713428497, 1.0]]

    static func config(_ kind: OptimizerKind, momentum: Float = 0.9, eps: Float = 1e-8) -> OptimizerConfig {
        var c = OptimizerConfig()
        c.kind = kind
        c.weightDecay = 0.1
        c.momentum = momentum
        c.eps = eps
        return c
    }

    func checkAgainstTorch(_ config: OptimizerConfig, _ expected: [[Double]], _ what: String) throws {
        let opt = try Optimizer(config: config, parameterCount: 8, groups: Self.torchGroups)
        var p = Self.p0
        for s in 0..<3 {
            let grads = Self.g[s]
            opt.step(params: &p, grads: grads, lr: Self.lr[s], pool: pools[1])
            for i in 0..<8 {
                let err = abs(Double(p[i]) - expected[s][i])
                XCTAssertLessThanOrEqual(err, Double(Tolerance.optimizerVsPyTorch) * max(1, abs(expected[s][i])),
                                         "\(what) step \(s + 1) param \(i): \(p[i]) vs torch \(expected[s][i])")
            }
        }
        XCTAssertEqual(opt.stepCount, 3)
    }

    func testAdamWMatchesPyTorch() throws { try checkAgainstTorch(Self.config(.adamw), Self.torchAdamW, "adamw") }
    func testAdamMatchesPyTorch() throws { try checkAgainstTorch(Self.config(.adam), Self.torchAdam, "adam") }
    func testSGDMatchesPyTorch() throws {
        try checkAgainstTorch(Self.config(.sgd), Self.torchSGD, "sgd")
        try checkAgainstTorch(Self.config(.sgd, momentum: 0), Self.torchSGDNoMomentum, "sgd momentum 0")
    }
    func testAdagradMatchesPyTorch() throws { try checkAgainstTorch(Self.config(.adagrad, eps: 1e-10), Self.torchAdagrad, "adagrad") }
    func testRMSpropMatchesPyTorch() throws { try checkAgainstTorch(Self.config(.rmsprop), Self.torchRMSprop, "rmsprop") }

    // MARK: - Independent Double reference

    /// The update rules as the PyTorch documentation states them, in Double.
    struct ReferenceOptimizer {
        let c: OptimizerConfig
        var s0: [Double], s1: [Double]
        var t = 0

        init(_ c: OptimizerConfig, n: Int) {
            self.c = c
            s0 = [Double](repeating: 0, count: n)
            s1 = s0
        }

        mutating func step(_ p: inout [Double], _ g: [Double], lr: Double, groups: [ParameterGroup]) {
            t += 1
            let b1 = Double(c.beta1), b2 = Double(c.beta2), eps = Double(c.eps)
            for group in groups where group.trainable {
                let wd = group.decay ? Double(c.weightDecay) : 0
                for i in group.range {
                    var gi = g[i]
                    switch c.kind {
                    case .adamw:
                        p[i] -= lr * wd * p[i]
                        s0[i] = b1 * s0[i] + (1 - b1) * gi
                        s1[i] = b2 * s1[i] + (1 - b2) * gi * gi
                        let mHat = s0[i] / (1 - Foundation.pow(b1, Double(t)))
                        let vHat = s1[i] / (1 - Foundation.pow(b2, Double(t)))
                        p[i] -= lr * mHat / (vHat.squareRoot() + eps)
                    case .adam:
                        gi += wd * p[i]
                        s0[i] = b1 * s0[i] + (1 - b1) * gi
                        s1[i] = b2 * s1[i] + (1 - b2) * gi * gi
                        let mHat = s0[i] / (1 - Foundation.pow(b1, Double(t)))
                        let vHat = s1[i] / (1 - Foundation.pow(b2, Double(t)))
                        p[i] -= lr * mHat / (vHat.squareRoot() + eps)
                    case .sgd:
                        gi += wd * p[i]
                        s0[i] = t == 1 ? gi : Double(c.momentum) * s0[i] + gi
                        p[i] -= lr * s0[i]
                    case .adagrad:
                        gi += wd * p[i]
                        s0[i] += gi * gi
                        p[i] -= lr * gi / (s0[i].squareRoot() + eps)
                    case .rmsprop:
                        gi += wd * p[i]
                        s0[i] = Double(c.alpha) * s0[i] + (1 - Double(c.alpha)) * gi * gi
                        p[i] -= lr * gi / (s0[i].squareRoot() + eps)
                    }
                }
            }
        }
    }

    /// 40 parameters: decayed, not decayed, frozen, decayed again.
    static let mixedGroups = [ParameterGroup(range: 0..<15, decay: true),
                              ParameterGroup(range: 15..<22, decay: false),
                              ParameterGroup(range: 22..<30, decay: true, trainable: false),
                              ParameterGroup(range: 30..<40, decay: true)]

    func testEveryOptimizerMatchesDoubleReferenceForThreeSteps() throws {
        let n = 40
        for kind in OptimizerKind.allCases {
            var config = Self.config(kind)
            config.beta1 = 0.8
            config.beta2 = 0.95
            let opt = try Optimizer(config: config, parameterCount: n, groups: Self.mixedGroups)
            var reference = ReferenceOptimizer(config, n: n)
            var p = randomFloats(n, seed: 11, scale: 2)
            let frozen = Array(p[22..<30])
            var pRef = p.map(Double.init)
            for s in 0..<3 {
                let grads = randomFloats(n, seed: 100 + UInt64(s))
                let lr: Float = [0.03, 0.01, 0.02][s]
                opt.step(params: &p, grads: grads, lr: lr, pool: pools[0])
                reference.step(&pRef, grads.map(Double.init), lr: Double(lr), groups: Self.mixedGroups)
                for i in 0..<n {
                    XCTAssertLessThanOrEqual(abs(Double(p[i]) - pRef[i]), Double(Tolerance.optimizerVsDouble) * max(1, abs(pRef[i])),
                                             "\(kind) step \(s + 1) param \(i): \(p[i]) vs Double reference \(pRef[i])")
                }
            }
            XCTAssertEqual(Array(p[22..<30]), frozen, "\(kind): frozen parameters changed")
            for (name, t) in opt.stateTensors() {
                XCTAssertEqual(t.shape, [n])
                XCTAssertTrue(t.scalars[22..<30].allSatisfy { $0 == 0 }, "\(kind): state '\(name)' of a frozen group changed")
                XCTAssertTrue(t.scalars[0..<22].contains { $0 != 0 }, "\(kind): state '\(name)' never written")
            }
        }
    }

    func testStateNamesFollowPyTorch() throws {
        let expected: [OptimizerKind: [String]] = [.adamw: ["exp_avg", "exp_avg_sq"], .adam: ["exp_avg", "exp_avg_sq"],
                                                   .sgd: ["momentum_buffer"], .adagrad: ["sum"], .rmsprop: ["square_avg"]]
        for kind in OptimizerKind.allCases {
            let opt = try Optimizer(config: Self.config(kind), parameterCount: 8, groups: Self.torchGroups)
            XCTAssertEqual(opt.stateTensors().map(\.0), expected[kind], "\(kind)")
            XCTAssertTrue(opt.stateTensors().allSatisfy { $0.1.shape == [8] })
        }
        let plain = try Optimizer(config: Self.config(.sgd, momentum: 0), parameterCount: 8, groups: Self.torchGroups)
        XCTAssertTrue(plain.stateTensors().isEmpty, "plain SGD keeps no momentum buffer (as PyTorch)")
    }

    // MARK: - Behaviour

    func testWeightDecayOnlyOnDecayGroups() throws {
        // Zero gradients: AdamW's moments stay 0, so only the decoupled decay moves parameters.
        var config = Self.config(.adamw)
        config.weightDecay = 0.5
        let opt = try Optimizer(config: config, parameterCount: 40, groups: Self.mixedGroups)
        let start = randomFloats(40, seed: 3, scale: 2)
        var p = start
        let zeros = [Float](repeating: 0, count: 40)
        opt.step(params: &p, grads: zeros, lr: 0.1, pool: pools[0])
        let factor = Float(1 - 0.1 * 0.5)
        for i in 0..<40 {
            let decays = (0..<15).contains(i) || (30..<40).contains(i)
            XCTAssertEqual(p[i], decays ? start[i] * factor : start[i], "param \(i)")
        }
        // Adam's L2 decay enters through the gradient, again only on decay groups.
        let adam = try Optimizer(config: Self.config(.adam), parameterCount: 40, groups: Self.mixedGroups)
        var q = start
        adam.step(params: &q, grads: zeros, lr: 0.1, pool: pools[0])
        for i in 15..<30 { XCTAssertEqual(q[i], start[i], "adam param \(i) without decay moved") }
        for i in [0, 14, 30, 39] { XCTAssertNotEqual(q[i], start[i], "adam param \(i) with decay did not move") }
    }

    func testAdamWFirstStepIsLearningRateTimesSign() throws {
        var config = OptimizerConfig()
        config.weightDecay = 0
        let n = 64
        let opt = try Optimizer(config: config, parameterCount: n, groups: [ParameterGroup(range: 0..<n, decay: true)])
        let start = randomFloats(n, seed: 5)
        var p = start
        let grads = randomFloats(n, seed: 6, scale: 3)
        let lr: Float = 1e-3
        opt.step(params: &p, grads: grads, lr: lr, pool: pools[0])
        for i in 0..<n where abs(grads[i]) > 1e-3 {
            let sign: Float = grads[i] > 0 ? 1 : -1
            XCTAssertEqual(p[i] - start[i], -lr * sign, accuracy: 1e-6, "param \(i), grad \(grads[i])")
        }
    }

    func testStateRoundTripContinuesBitIdentically() throws {
        let n = 40
        for kind in OptimizerKind.allCases {
            let config = Self.config(kind)
            let a = try Optimizer(config: config, parameterCount: n, groups: Self.mixedGroups)
            var pa = randomFloats(n, seed: 21)
            for s in 0..<2 {
                a.step(params: &pa, grads: randomFloats(n, seed: 200 + UInt64(s)), lr: 0.01, pool: pools[0])
            }
            // "Save": copies of the moments and the step, as a checkpoint would hold them.
            var saved: [String: Tensor] = [:]
            for (name, t) in a.stateTensors() { saved[name] = t.copy() }
            let b = try Optimizer(config: config, parameterCount: n, groups: Self.mixedGroups)
            try b.loadState(saved, stepCount: a.stepCount)
            XCTAssertEqual(b.stepCount, 2)
            var pb = pa
            for s in 2..<5 {
                let grads = randomFloats(n, seed: 200 + UInt64(s))
                a.step(params: &pa, grads: grads, lr: 0.01, pool: pools[0])
                b.step(params: &pb, grads: grads, lr: 0.01, pool: pools[2])
            }
            XCTAssertEqual(pa.map(\.bitPattern), pb.map(\.bitPattern), "\(kind): resumed run diverged")
            for ((na, ta), (nb, tb)) in zip(a.stateTensors(), b.stateTensors()) {
                XCTAssertEqual(na, nb)
                XCTAssertEqual(ta.scalars.map(\.bitPattern), tb.scalars.map(\.bitPattern), "\(kind): state '\(na)'")
            }
        }
    }

    func testLoadStateRejectsMismatches() throws {
        let adam = try Optimizer(config: Self.config(.adamw), parameterCount: 8, groups: Self.torchGroups)
        let good = Tensor(zeros: [8]), short = Tensor(zeros: [7])
        XCTAssertThrowsError(try adam.loadState(["momentum_buffer": good], stepCount: 1)) { error in
            XCTAssertEqual((error as? LMError)?.kind, .corruptFile)
            XCTAssertTrue("\(error)".contains("exp_avg"), "\(error)")
        }
        XCTAssertThrowsError(try adam.loadState(["exp_avg": good], stepCount: 1)) { error in
            XCTAssertTrue("\(error)".contains("exp_avg_sq"), "\(error)")
        }
        XCTAssertThrowsError(try adam.loadState(["exp_avg": good, "exp_avg_sq": short], stepCount: 1)) { error in
            XCTAssertTrue("\(error)".contains("exp_avg_sq") && "\(error)".contains("7"), "\(error)")
        }
        XCTAssertThrowsError(try adam.loadState(["exp_avg": good, "exp_avg_sq": good], stepCount: -1))
        XCTAssertEqual(adam.stepCount, 0, "a failed load must leave the state alone")
    }

    func testResultsDoNotDependOnThreadCount() throws {
        // Large enough that `step` splits across threads (16 384 elements per thread at least).
        let n = 50_003
        let groups = [ParameterGroup(range: 0..<20_000, decay: true),
                      ParameterGroup(range: 20_000..<20_100, decay: false),
                      ParameterGroup(range: 20_100..<31_000, decay: true, trainable: false),
                      ParameterGroup(range: 31_000..<n, decay: true)]
        let start = randomFloats(n, seed: 31)
        for kind in OptimizerKind.allCases {
            var results: [[UInt32]] = []
            for pool in pools {
                let opt = try Optimizer(config: Self.config(kind), parameterCount: n, groups: groups)
                var p = start
                for s in 0..<3 {
                    opt.step(params: &p, grads: randomFloats(n, seed: 300 + UInt64(s)), lr: 0.01, pool: pool)
                }
                results.append(p.map(\.bitPattern))
            }
            XCTAssertEqual(results[0], results[1], "\(kind): 1 vs 2 threads")
            XCTAssertEqual(results[0], results[2], "\(kind): 1 vs 3 threads")
        }
    }

    func testGroupsMustCoverTheSlabOnce() {
        let config = OptimizerConfig()
        let cases: [([ParameterGroup], String)] = [
            ([ParameterGroup(range: 0..<5, decay: true), ParameterGroup(range: 4..<8, decay: false)], "overlaps"),
            ([ParameterGroup(range: 0..<5, decay: true), ParameterGroup(range: 6..<8, decay: false)], "5..<6"),
            ([ParameterGroup(range: 0..<5, decay: true)], "5..<8"),
            ([ParameterGroup(range: 0..<9, decay: true)], "outside"),
        ]
        for (groups, needle) in cases {
            XCTAssertThrowsError(try Optimizer(config: config, parameterCount: 8, groups: groups)) { error in
                XCTAssertEqual((error as? LMError)?.kind, .invalidArgument)
                XCTAssertTrue("\(error)".contains(needle), "'\(error)' should mention \(needle)")
            }
        }
        // Unordered groups are fine.
        XCTAssertNoThrow(try Optimizer(config: config, parameterCount: 8,
                                       groups: [ParameterGroup(range: 5..<8, decay: false), ParameterGroup(range: 0..<5, decay: true)]))
    }

    func testConfigValidation() throws {
        XCTAssertNoThrow(try OptimizerConfig().validate())
        let bad: [(WritableKeyPath<OptimizerConfig, Float>, Float, String)] = [
            (\.beta1, 1, "beta1"), (\.beta1, -0.1, "beta1"), (\.beta2, 1.5, "beta2"), (\.eps, -1e-8, "eps"),
            (\.weightDecay, -0.1, "weight decay"), (\.weightDecay, .nan, "weight decay"),
            (\.momentum, 1.5, "momentum"), (\.alpha, -0.5, "alpha"),
        ]
        for (key, value, name) in bad {
            var c = OptimizerConfig()
            c[keyPath: key] = value
            XCTAssertThrowsError(try c.validate()) { error in
                XCTAssertEqual((error as? LMError)?.kind, .invalidArgument)
                XCTAssertTrue("\(error)".contains(name) && "\(error)".contains("["), "\(error)")
            }
            XCTAssertThrowsError(try Optimizer(config: c, parameterCount: 1, groups: [ParameterGroup(range: 0..<1, decay: true)]))
        }
    }

    func testConfigCodableUsesSnakeCaseAndDefaults() throws {
        var c = OptimizerConfig()
        c.kind = .rmsprop
        c.weightDecay = 0.25
        let json = String(decoding: try JSONEncoder().encode(c), as: UTF8.self)
        XCTAssertTrue(json.contains("\"weight_decay\":0.25"), json)
        XCTAssertEqual(try JSONDecoder().decode(OptimizerConfig.self, from: Data(json.utf8)), c)
        let partial = try JSONDecoder().decode(OptimizerConfig.self, from: Data(#"{"kind":"sgd"}"#.utf8))
        XCTAssertEqual(partial.kind, .sgd)
        XCTAssertEqual(partial.momentum, 0.9)
        XCTAssertEqual(partial.beta2, 0.999)
    }

    // MARK: - Gradient clipping

    func testClipGradNormMatchesPyTorch() {
        // torch.nn.utils.clip_grad_norm_([x], 1.0) with x.grad = [3, -4, 12] (torch 2.13):
        // returns 13.0, grads [0.23076921701431274, -0.307692289352417, 0.923076868057251].
        var g: [Float] = [3, -4, 12]
        let norm = clipGradientNorm(&g, count: 3, maxNorm: 1, pool: pools[0])
        XCTAssertEqual(norm, 13)
        let torch: [Float] = [0.23076921701431274, -0.307692289352417, 0.923076868057251]
        assertClose(g, torch, tol: 1e-7, "clipped gradients")

        var small: [Float] = [0.3, -0.4]
        XCTAssertEqual(clipGradientNorm(&small, count: 2, maxNorm: 1, pool: pools[0]), 0.5, accuracy: 1e-7)
        XCTAssertEqual(small, [0.3, -0.4], "a norm below the limit leaves gradients alone")

        var bad: [Float] = [1, .nan, 2]
        XCTAssertTrue(clipGradientNorm(&bad, count: 3, maxNorm: 1, pool: pools[0]).isNaN)
        XCTAssertEqual(bad[0], 1)
        XCTAssertEqual(gradientNorm([], count: 0, pool: pools[0]), 0)
    }

    func testGradientNormIsDoubleAccurateAndThreadIndependent() {
        let n = 200_001
        let g = randomFloats(n, seed: 41)
        var exact = 0.0
        for x in g { exact += Double(x) * Double(x) }
        let norms = pools.map { gradientNorm(g, count: n, pool: $0) }
        XCTAssertEqual(norms[0].bitPattern, norms[1].bitPattern)
        XCTAssertEqual(norms[0].bitPattern, norms[2].bitPattern)
        XCTAssertEqual(Double(norms[0]), exact.squareRoot(), accuracy: exact.squareRoot() * 1e-7)
        var clipped = pools.map { _ in g }
        for i in 0..<3 { _ = clipGradientNorm(&clipped[i], count: n, maxNorm: 2, pool: pools[i]) }
        XCTAssertEqual(clipped[0].map(\.bitPattern), clipped[2].map(\.bitPattern))
        XCTAssertEqual(Double(gradientNorm(clipped[1], count: n, pool: pools[1])), 2, accuracy: 1e-5)
    }
}

/// Learning-rate schedules against nanoGPT's get_lr and HF's linear schedule.
final class ScheduleTests: XCTestCase {
    /// nanoGPT's get_lr, transcribed in Double.
    func nanoGPT(_ it: Int, lr: Double, minLR: Double, warmup: Int, decay: Int) -> Double {
        if it < warmup { return lr * Double(it + 1) / Double(warmup + 1) }
        if it > decay { return minLR }
        let ratio = Double(it - warmup) / Double(decay - warmup)
        return minLR + 0.5 * (1.0 + cos(Double.pi * ratio)) * (lr - minLR)
    }

    func testCosineMatchesNanoGPTAtKeySteps() throws {
        let s = LearningRateSchedule(maxLR: 1e-3, minLR: 1e-4, warmupSteps: 100, decaySteps: 2000)
        try s.validate()
        let expected: [Int: Double] = [0: 1e-3 / 101, 99: 1e-3 * 100 / 101, 100: 1e-3, 1050: 5.5e-4, 2000: 1e-4, 2500: 1e-4]
        for (step, value) in expected {
            XCTAssertEqual(Double(s.learningRate(at: step)), value, accuracy: value * 1e-6, "step \(step)")
        }
        for step in stride(from: 0, through: 2600, by: 37) {
            let ref = nanoGPT(step, lr: Double(Float(1e-3)), minLR: Double(Float(1e-4)), warmup: 100, decay: 2000)
            XCTAssertEqual(s.learningRate(at: step), Float(ref), "step \(step)")
        }
        XCTAssertEqual(s.learningRate(at: -5), s.learningRate(at: 0))
    }

    func testLinearMatchesHuggingFace() {
        // HF get_linear_schedule_with_warmup(num_warmup_steps=10, num_training_steps=110), lr 2e-5.
        let s = LearningRateSchedule(kind: .linear, maxLR: 2e-5, minLR: 0, warmupSteps: 10, decaySteps: 110)
        func hf(_ step: Int) -> Float {
            let factor = step < 10 ? Double(step) / 10 : max(0, Double(110 - step) / 100)
            return Float(Double(Float(2e-5)) * factor)
        }
        for step in [0, 1, 5, 9, 10, 11, 60, 109, 110, 200] {
            XCTAssertEqual(s.learningRate(at: step), hf(step), accuracy: 1e-12, "step \(step)")
        }
        let floor = LearningRateSchedule(kind: .linear, maxLR: 1e-3, minLR: 1e-4, warmupSteps: 0, decaySteps: 100)
        XCTAssertEqual(floor.learningRate(at: 0), 1e-3)
        XCTAssertEqual(floor.learningRate(at: 50), 5.5e-4, accuracy: 1e-9)
        XCTAssertEqual(floor.learningRate(at: 100), 1e-4)
    }

    func testConstantWithAndWithoutWarmup() {
        let plain = LearningRateSchedule(kind: .constant, maxLR: 3e-4, minLR: 0, warmupSteps: 0, decaySteps: 0)
        XCTAssertEqual([0, 1, 1000].map { plain.learningRate(at: $0) }, [3e-4, 3e-4, 3e-4])
        let warm = LearningRateSchedule(kind: .constant, maxLR: 3e-4, minLR: 0, warmupSteps: 2, decaySteps: 0)
        XCTAssertEqual(warm.learningRate(at: 0), 1e-4, accuracy: 1e-10)
        XCTAssertEqual(warm.learningRate(at: 2), 3e-4)
    }

    func testDecayEqualToWarmupEndsAtMinimum() {
        let s = LearningRateSchedule(maxLR: 1e-3, minLR: 1e-4, warmupSteps: 10, decaySteps: 10)
        XCTAssertEqual(s.learningRate(at: 10), 1e-4)
        XCTAssertTrue((0..<30).allSatisfy { s.learningRate(at: $0).isFinite })
    }

    func testValidation() throws {
        let bad: [(LearningRateSchedule, String)] = [
            (LearningRateSchedule(maxLR: 0, minLR: 0, warmupSteps: 0, decaySteps: 10), "learning rate 0"),
            (LearningRateSchedule(maxLR: .nan, minLR: 0, warmupSteps: 0, decaySteps: 10), "learning rate nan"),
            (LearningRateSchedule(maxLR: 1e-3, minLR: 1e-2, warmupSteps: 0, decaySteps: 10), "minimum"),
            (LearningRateSchedule(maxLR: 1e-3, minLR: -1, warmupSteps: 0, decaySteps: 10), "minimum"),
            (LearningRateSchedule(maxLR: 1e-3, minLR: 0, warmupSteps: -1, decaySteps: 10), "warm-up"),
            (LearningRateSchedule(maxLR: 1e-3, minLR: 0, warmupSteps: 100, decaySteps: 50), "decay steps 50"),
        ]
        for (schedule, needle) in bad {
            XCTAssertThrowsError(try schedule.validate()) { error in
                XCTAssertEqual((error as? LMError)?.kind, .invalidArgument)
                XCTAssertTrue("\(error)".contains(needle), "'\(error)' should mention '\(needle)'")
            }
        }
        XCTAssertNoThrow(try LearningRateSchedule(kind: .constant, maxLR: 1e-3, minLR: 0, warmupSteps: 100, decaySteps: 0).validate())
    }

    func testCodableRoundTrip() throws {
        let s = LearningRateSchedule(kind: .linear, maxLR: 1e-3, minLR: 1e-5, warmupSteps: 7, decaySteps: 70)
        let data = try JSONEncoder().encode(s)
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("\"warmup_steps\":7"))
        XCTAssertEqual(try JSONDecoder().decode(LearningRateSchedule.self, from: data), s)
    }
}
