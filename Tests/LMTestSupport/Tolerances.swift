import LMCore
import XCTest

/// Named tolerances, one place for all tests (see README "Numerics").
public enum Tolerance {
    /// Logits against PyTorch fixtures (max abs).
    public static let logits: Float = 1e-4
    /// Decoding with the KV cache against a full recompute (max abs).
    public static let cacheVsRecompute: Float = 1e-5
    /// A fast kernel against its reference twin, relative to the output's scale.
    public static let kernel: Float = 2e-6
    /// Vectorised transcendental functions (exp, tanh, erf) against libm, relative.
    public static let transcendental: Float = 5e-7
    /// An optimizer step against torch.optim's float32 numbers, relative to max(1, |param|):
    /// two float32 ulps (AdamW, SGD, Adagrad are bit-identical; Adam, RMSprop differ by 1 ulp).
    public static let optimizerVsPyTorch: Float = 2.5e-7
    /// An optimizer step in Float against the same rule in Double, relative to max(1, |param|).
    public static let optimizerVsDouble: Float = 1e-6
    /// A backward kernel against central differences of its Float forward (see GradCheck.swift):
    /// |analytic − numeric| ≤ gradCheckAbsolute + gradCheckRelative · |numeric|.
    public static let gradCheckRelative: Float = 1e-3
    public static let gradCheckAbsolute: Float = 1e-4
}

/// Largest |a − b|.
public func maxAbsDiff(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Float {
    precondition(a.count == b.count)
    var m: Float = 0
    for i in 0..<a.count { m = max(m, abs(a[i] - b[i])) }
    return m
}

public func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in maxAbsDiff(pa, pb) } }
}

/// Largest |x|.
public func maxAbs(_ a: [Float]) -> Float { a.reduce(0) { max($0, abs($1)) } }

/// Fails (loudly, with the numbers) unless every |a − b| ≤ tol.
public func assertClose(_ a: [Float], _ b: [Float], tol: Float, _ what: String,
                        file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "\(what): length", file: file, line: line)
    guard a.count == b.count else { return }
    let d = maxAbsDiff(a, b)
    XCTAssertLessThanOrEqual(d, tol, "\(what): max abs diff \(d) exceeds \(tol)", file: file, line: line)
}

/// Random values in [-scale, scale) from a seeded generator.
public func randomFloats(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var rng = SeededRNG(seed: seed)
    return (0..<n).map { _ in (rng.nextFloat() * 2 - 1) * scale }
}
