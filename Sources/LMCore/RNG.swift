#if canImport(Glibc)
import Glibc
#endif

/// A seeded random number generator (xoshiro256**, seeded through SplitMix64).
///
/// Same seed, same stream, on every machine and thread count. The state is four words that
/// can be saved and restored (training checkpoints resume the exact stream).
public struct SeededRNG: RandomNumberGenerator, Sendable, Equatable {
    public private(set) var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var sm = seed
        func splitmix(_ x: inout UInt64) -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitmix(&sm), splitmix(&sm), splitmix(&sm), splitmix(&sm))
    }

    /// Restores a generator from a saved `stateWords`.
    public init(stateWords w: [UInt64]) throws {
        guard w.count == 4, w.contains(where: { $0 != 0 }) else {
            throw LMError(.corruptFile, "RNG state must be 4 words, not all zero")
        }
        state = (w[0], w[1], w[2], w[3])
    }

    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    public static func == (a: SeededRNG, b: SeededRNG) -> Bool { a.stateWords == b.stateWords }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
        return result
    }

    @inline(__always)
    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 24 bits of precision.
    @inline(__always)
    public mutating func nextFloat() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    @inline(__always)
    public mutating func nextDouble() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform integer in 0..<n (n > 0), without modulo bias.
    public mutating func nextInt(below n: Int) -> Int {
        precondition(n > 0)
        return Int(next(upperBound: UInt64(n)))
    }

    /// A standard normal sample (Box–Muller; one sample per call, no cached state).
    public mutating func nextNormal() -> Float {
        let u1 = max(nextDouble(), 1e-300)
        let u2 = nextDouble()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// Fills `buffer` with N(0, std²) samples.
    public mutating func fillNormal(_ buffer: UnsafeMutableBufferPointer<Float>, std: Float) {
        var i = 0
        let n = buffer.count
        while i + 1 < n {
            let u1 = max(nextDouble(), 1e-300)
            let u2 = nextDouble()
            let r = (-2 * log(u1)).squareRoot()
            let a = 2 * Double.pi * u2
            buffer[i] = Float(r * cos(a)) * std
            buffer[i + 1] = Float(r * sin(a)) * std
            i += 2
        }
        if i < n { buffer[i] = nextNormal() * std }
    }
}
