#if canImport(Glibc)
import Glibc
#endif

// Legend: N rows, H heads per row, HS head size (even), P positions.

/// Rotary position embeddings (RoPE), NeoX layout: in each head, the pairs (i, i + HS/2) for
/// i < HS/2 are rotated by the angle p · θ_i, θ_i = base^(−2i/HS) / scale (`scale`: linear
/// position interpolation; 1 for none). Gemma, Llama in Hugging Face's `rotate_half` form.
///
/// ```swift
/// let rope = RotaryEmbedding(headSize: 256, base: 10_000)
/// rope.fillTable(positions: 7..<19, into: table)      // (12, HS) floats: cos then sin
/// rope.apply(x, rows: 12, heads: 4, stride: 1024, table: table)
/// ```
public struct RotaryEmbedding: Sendable, Equatable {
    public let headSize: Int
    public let base: Double
    public let scale: Double
    /// θ_i, in Double.
    public let frequencies: [Double]

    public init(headSize: Int, base: Double, scale: Double = 1) {
        precondition(headSize % 2 == 0, "RoPE needs an even head size")
        self.headSize = headSize
        self.base = base
        self.scale = scale
        let half = headSize / 2
        frequencies = (0..<half).map { i in Glibc.pow(base, -2 * Double(i) / Double(headSize)) / scale }
    }

    /// Floats of table per position: HS/2 cosines, then HS/2 sines.
    public var tableWidth: Int { headSize }

    /// Writes cos and sin of p · θ_i (computed in Double) for each position p (offset by
    /// `delta`: the rotation of a move by delta positions when `positions` is 0..<1).
    public func fillTable(positions: Range<Int>, into table: UnsafeMutablePointer<Float>) {
        let half = headSize / 2
        for (row, p) in positions.enumerated() {
            let t = table + row * headSize
            for i in 0..<half {
                let a = Double(p) * frequencies[i]
                t[i] = Float(Glibc.cos(a))
                t[half + i] = Float(Glibc.sin(a))
            }
        }
    }

    /// Rotates x in place: row r (H heads of HS, row stride `stride`) by the angles of table row
    /// r (or table row 0 for every row, with `sameForAllRows`: a context shift).
    public func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, stride: Int,
                      table: UnsafePointer<Float>, sameForAllRows: Bool = false) {
        let half = headSize / 2
        for r in 0..<rows {
            let t = table + (sameForAllRows ? 0 : r * headSize)
            let c = t, s = t + half
            for h in 0..<heads {
                let v = x + r * stride + h * headSize
                for i in 0..<half {
                    let x0 = v[i], x1 = v[half + i]
                    v[i] = x0 * c[i] - x1 * s[i]
                    v[half + i] = x0 * s[i] + x1 * c[i]
                }
            }
        }
    }

    /// Reference twin of `fillTable` + `apply`: every angle and product in Double.
    public func applyRef(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, stride: Int, positions: Range<Int>) {
        let half = headSize / 2
        for (r, p) in positions.enumerated() where r < rows {
            for h in 0..<heads {
                let v = x + r * stride + h * headSize
                for i in 0..<half {
                    let a = Double(p) * frequencies[i]
                    let x0 = Double(v[i]), x1 = Double(v[half + i])
                    v[i] = Float(x0 * Glibc.cos(a) - x1 * Glibc.sin(a))
                    v[half + i] = Float(x0 * Glibc.sin(a) + x1 * Glibc.cos(a))
                }
            }
        }
    }
}
