import LMCore
import XCTest

/// Finite-difference gradient checks for backward kernels.
///
/// A kernel y = f(x) is checked through the scalar loss L(x) = Σ r ⊙ f(x) with a fixed random
/// r: its gradient is exactly what the backward kernel returns when given dout = r, and the
/// numeric gradient is the central difference (L(x + h·eᵢ) − L(x − h·eᵢ)) / (2h) of the
/// Float forward kernel, with L summed in Double.
///
/// ```swift
/// let r = randomFloats(N * OC, seed: 9)
/// let numeric = GradCheck.numericGradient(at: inp) { x in
///     var y = [Float](repeating: 0, count: N * OC)
///     matmulForward(out: &y, inp: x, weight: w, bias: nil, N: N, C: C, OC: OC, layout: .inOut, pool: pool)
///     return GradCheck.dot(r, y)
/// }
/// var dinp = [Float](repeating: 0, count: N * C)
/// matmulBackward(dinp: &dinp, dweight: nil, dbias: nil, dout: r, inp: inp, weight: w, ...)
/// GradCheck.assertMatches(analytic: dinp, numeric: numeric, "matmul dinp")
/// ```
public enum GradCheck {
    /// Default step: large enough that Float rounding of L stays far below the tolerance,
    /// small enough that the O(h²) truncation error does too (inputs of order 1).
    public static let step: Float = 1e-2

    /// Σ r[i]·y[i] in Double.
    public static func dot(_ r: [Float], _ y: [Float]) -> Double {
        precondition(r.count == y.count, "GradCheck.dot: \(r.count) weights for \(y.count) outputs")
        var s = 0.0
        for i in 0..<r.count { s += Double(r[i]) * Double(y[i]) }
        return s
    }

    /// ∂L/∂x by central differences, one element at a time. `loss` is called with a perturbed
    /// copy of `x`; the divisor is the perturbation actually representable in Float.
    public static func numericGradient(at x: [Float], h: Float = step, _ loss: ([Float]) -> Double) -> [Double] {
        var probe = x
        var grad = [Double](repeating: 0, count: x.count)
        for i in 0..<x.count {
            let plus = x[i] + h, minus = x[i] - h
            probe[i] = plus
            let lp = loss(probe)
            probe[i] = minus
            let lm = loss(probe)
            probe[i] = x[i]
            grad[i] = (lp - lm) / (Double(plus) - Double(minus))
        }
        return grad
    }

    /// The worst element of a comparison, for failure messages.
    public struct Report: CustomStringConvertible {
        public var index = -1
        public var analytic: Float = 0
        public var numeric: Double = 0
        /// Largest |analytic − numeric| / (absolute + relative·|numeric|); ≤ 1 passes.
        public var ratio: Double = 0
        /// Largest |numeric|: a check of an all-zero gradient proves little.
        public var scale: Double = 0

        public var description: String {
            "worst at [\(index)]: analytic \(analytic) vs numeric \(numeric) (|diff| \(abs(Double(analytic) - numeric)), \(ratio) of the tolerance)"
        }
    }

    /// Compares element by element: |analytic − numeric| ≤ absolute + relative·|numeric|.
    public static func compare(analytic: [Float], numeric: [Double],
                               relative: Float = Tolerance.gradCheckRelative,
                               absolute: Float = Tolerance.gradCheckAbsolute) -> Report {
        precondition(analytic.count == numeric.count, "GradCheck.compare: \(analytic.count) vs \(numeric.count) values")
        var report = Report()
        for i in 0..<analytic.count {
            let diff = abs(Double(analytic[i]) - numeric[i])
            let ratio = diff / (Double(absolute) + Double(relative) * abs(numeric[i]))
            report.scale = max(report.scale, abs(numeric[i]))
            if ratio > report.ratio || report.index < 0 {
                report.index = i
                report.analytic = analytic[i]
                report.numeric = numeric[i]
                report.ratio = ratio
            }
        }
        return report
    }

    /// Fails, with the worst element's numbers, unless every element is within tolerance,
    /// or if the numeric gradient is all zero where `expectNonZero` says it should not be.
    @discardableResult
    public static func assertMatches(analytic: [Float], numeric: [Double], _ what: String,
                                     expectNonZero: Bool = true,
                                     file: StaticString = #filePath, line: UInt = #line) -> Report {
        XCTAssertEqual(analytic.count, numeric.count, "\(what): gradient length", file: file, line: line)
        guard analytic.count == numeric.count else { return Report() }
        let report = compare(analytic: analytic, numeric: numeric)
        XCTAssertLessThanOrEqual(report.ratio, 1, "\(what): \(report)", file: file, line: line)
        if expectNonZero {
            XCTAssertGreaterThan(report.scale, 1e-3, "\(what): numeric gradient is all zero; the check proves nothing", file: file, line: line)
        }
        return report
    }

    /// Fails unless `a` and `b` are the same floats bit for bit.
    public static func assertBitIdentical(_ a: [Float], _ b: [Float], _ what: String,
                                          file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "\(what): length", file: file, line: line)
        guard a.count == b.count else { return }
        if let i = (0..<a.count).first(where: { a[$0].bitPattern != b[$0].bitPattern }) {
            XCTFail("\(what): first difference at [\(i)]: \(a[i]) vs \(b[i])", file: file, line: line)
        }
    }
}
