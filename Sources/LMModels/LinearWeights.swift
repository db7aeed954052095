import CKernels
import LMCore

/// The weight of a linear layer, held (out, in): float32, swift-lm's int8 blocks (Q8), or the
/// block types of GGUF files (`BlockMatrix`: F16, BF16, Q8_0, Q5_0, Q4_K, Q6_K). Models call
/// `forward` and `row` and never care which; `type` says which (see `WeightType`).
public enum LinearWeights: @unchecked Sendable {
    case float(Tensor)   // (out, in)
    case q8(Q8Matrix)
    case blocks(BlockMatrix)

    public var type: WeightType {
        switch self {
        case .float: return .f32
        case .q8: return .q8
        case .blocks(let b): return b.type
        }
    }

    public var rows: Int {
        switch self {
        case .float(let t): return t.shape[0]
        case .q8(let q): return q.rows
        case .blocks(let b): return b.rows
        }
    }

    public var cols: Int {
        switch self {
        case .float(let t): return t.shape[1]
        case .q8(let q): return q.logicalCols
        case .blocks(let b): return b.cols
        }
    }

    /// Whether the weights are held in fewer bits than float32.
    public var isQuantized: Bool { type != .f32 }

    /// Bytes the weights take in memory.
    public var bytes: Int {
        switch self {
        case .float(let t): return t.count * 4
        case .q8(let q): return q.bytes
        case .blocks(let b): return b.bytes
        }
    }

    /// Float weights converted to `type` (only `.q8` is a conversion swift-lm makes today;
    /// `nil` or the same type keeps them). Quantized weights are never converted again.
    public static func converting(_ w: Tensor, to type: WeightType?) throws -> LinearWeights {
        switch type {
        case nil, .f32?: return .float(w)
        case .q8?: return .q8(Q8Matrix.quantize(w.data, rows: w.shape[0], cols: w.shape[1]))
        case let t?:
            throw LMError(.invalidArgument, "converting weights to \(t) is not supported yet — swift-lm converts float weights to int8 (Q8) only")
        }
    }

    /// out (N, rows) = inp (N, cols) · Wᵀ + bias (or += with `accumulate`).
    @inline(__always)
    public func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                        N: Int, accumulate: Bool = false, workspace: Q8Workspace, pool: ThreadPool) {
        switch self {
        case .float(let w):
            matmulForward(out: out, inp: inp, weight: w.data, bias: bias, N: N, C: w.shape[1], OC: w.shape[0],
                          layout: .outIn, accumulate: accumulate, pool: pool)
        case .q8(let q):
            q8MatmulForward(out: out, inp: inp, weight: q, bias: bias, N: N, accumulate: accumulate,
                            workspace: workspace, pool: pool)
        case .blocks(let b):
            b.forward(out: out, inp: inp, bias: bias, N: N, accumulate: accumulate, pool: pool)
        }
    }

    /// Row `r` as floats into `out` (cols values): embedding lookups from a (V, C) table.
    @inline(__always)
    public func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        switch self {
        case .float(let t):
            out.update(from: t.data + r * t.shape[1], count: t.shape[1])
        case .q8(let q):
            if q.cols == q.logicalCols {
                lm_q8_dequantize_rows(out, q.cols, q.q, q.scales, q.cols, r, r + 1)
            } else {
                withUnsafeTemporaryAllocation(of: Float.self, capacity: q.cols) { buf in
                    lm_q8_dequantize_rows(buf.baseAddress!, q.cols, q.q, q.scales, q.cols, r, r + 1)
                    out.update(from: buf.baseAddress!, count: q.logicalCols)
                }
            }
        case .blocks(let b):
            b.row(r, into: out)
        }
    }
}

/// How the swift-lm Q8 tensors of a weight named `N` are stored in safetensors:
/// `N.q8` (I8, [rows, cols padded to 32], the (out, in) layout) and `N.q8_scale`
/// (F16, [rows, cols / 32]). Documented in models/README.md.
public enum Q8Storage {
    public static func quantizedName(_ name: String) -> String { name + ".q8" }
    public static func scaleName(_ name: String) -> String { name + ".q8_scale" }

    /// The Q8 matrix stored for `name` in `file`, or nil when it holds none; zero-copy.
    /// `rows` × `cols` is the logical (out, in) shape the model expects.
    public static func load(_ file: SafeTensorsFile, name: String, rows: Int, cols: Int) throws -> Q8Matrix? {
        let qn = quantizedName(name), sn = scaleName(name)
        guard file.contains(qn) else { return nil }
        let padded = Q8Matrix.padded(cols)
        let (qe, qb) = try file.rawBytes(qn)
        guard file.contains(sn) else {
            throw LMError(.corruptFile, "'\(file.path)' has '\(qn)' but no '\(sn)' — the quantized file is incomplete; re-run lm quantize")
        }
        let (se, sb) = try file.rawBytes(sn)
        guard qe.dtype == .i8, qe.shape == [rows, padded] else {
            throw LMError(.shapeMismatch, "tensor '\(qn)' is \(qe.dtype.rawValue) \(qe.shape), expected I8 [\(rows), \(padded)]")
        }
        guard se.dtype == .f16, se.shape == [rows, padded / Q8Matrix.blockSize] else {
            throw LMError(.corruptFile, "scale tensor '\(sn)' is \(se.dtype.rawValue) \(se.shape), expected F16 [\(rows), \(padded / Q8Matrix.blockSize)] — the quantized file is corrupt; re-run lm quantize")
        }
        guard let qp = qb.baseAddress, let sp = sb.baseAddress, Int(bitPattern: sp) % 2 == 0 else {
            throw LMError(.corruptFile, "tensor '\(qn)' is empty or misaligned")
        }
        let m = Q8Matrix(rows: rows, cols: padded, logicalCols: cols,
                         q: UnsafeMutablePointer(mutating: qp.assumingMemoryBound(to: Int8.self)),
                         scales: UnsafeMutablePointer(mutating: sp.assumingMemoryBound(to: UInt16.self)), owner: file)
        try m.validateScales(name: sn)
        return m
    }

    /// The two tensors to write for a quantized weight.
    public static func items(_ name: String, _ m: Q8Matrix) -> [(String, SafeTensorsWriter.Item)] {
        let qBytes = Array(UnsafeRawBufferPointer(start: m.q, count: m.rows * m.cols))
        let sBytes = Array(UnsafeRawBufferPointer(start: m.scales, count: m.rows * m.blocksPerRow * 2))
        return [(quantizedName(name), .raw(dtype: .i8, shape: [m.rows, m.cols], bytes: qBytes)),
                (scaleName(name), .raw(dtype: .f16, shape: [m.rows, m.blocksPerRow], bytes: sBytes))]
    }
}
