import CKernels

/// How a weight matrix is stored, one row after another: the table every matrix product looks
/// its type up in (as ggml's `type_traits`). Adding a type: its kernels (`Sources/CKernels/quant_*.c`),
/// one case here, one line in `traits`.
///
/// | type | weights per block | bytes per block | what |
/// | --- | ---: | ---: | --- |
/// | `f32` | 1 | 4 | float32 |
/// | `f16`, `bf16` | 1 | 2 | half floats (GGUF, safetensors) |
/// | `q8_0` | 32 | 34 | a float16 scale and 32 int8 (llama.cpp) |
/// | `q5_0` | 32 | 22 | a float16 scale and 32 five-bit values (llama.cpp) |
/// | `q4_K` | 256 | 144 | 8 × 32 four-bit values with 6-bit scales and minimums (llama.cpp) |
/// | `q6_K` | 256 | 210 | 16 × 16 six-bit values with 8-bit scales (llama.cpp) |
/// | `q8` | 32 | 34 | swift-lm's int8 safetensors layout: the same block as Q8_0, with the int8 values and the scales in two tensors (`Q8Matrix`) |
///
/// Products with every type take float activations (the weights are dequantized as they are
/// used), except `q8`'s single-row product, which rounds the activations to int8 blocks as
/// swift-lm's int8 models always have.
public enum WeightType: String, CaseIterable, Sendable, CustomStringConvertible {
    case f32 = "F32", f16 = "F16", bf16 = "BF16"
    case q8_0 = "Q8_0", q5_0 = "Q5_0", q4_K = "Q4_K", q6_K = "Q6_K"
    case q8 = "int8"

    public struct Traits: Sendable {
        public let blockElements: Int
        public let blockBytes: Int
        /// The ggml type of the same block layout, for types GGUF files hold.
        public let ggml: GGMLType?
    }

    public static let traits: [WeightType: Traits] = [
        .f32: Traits(blockElements: 1, blockBytes: 4, ggml: .f32),
        .f16: Traits(blockElements: 1, blockBytes: 2, ggml: .f16),
        .bf16: Traits(blockElements: 1, blockBytes: 2, ggml: .bf16),
        .q8_0: Traits(blockElements: 32, blockBytes: 34, ggml: .q8_0),
        .q5_0: Traits(blockElements: 32, blockBytes: 22, ggml: .q5_0),
        .q4_K: Traits(blockElements: 256, blockBytes: 144, ggml: .q4_K),
        .q6_K: Traits(blockElements: 256, blockBytes: 210, ggml: .q6_K),
        .q8: Traits(blockElements: 32, blockBytes: 34, ggml: nil),
    ]

    public var traits: Traits { WeightType.traits[self]! }
    public var description: String { rawValue }

    /// The type of a GGUF tensor, or nil when swift-lm cannot compute with it.
    public init?(ggml: GGMLType) {
        guard let t = WeightType.allCases.first(where: { $0.traits.ggml == ggml }) else { return nil }
        self = t
    }

    /// The GGUF tensor types swift-lm computes with, for error messages.
    public static var supportedGGMLNames: String {
        allCases.compactMap { $0.traits.ggml?.name }.joined(separator: ", ")
    }

    /// Bytes of a (rows, cols) matrix of this type (cols a multiple of the block size).
    public func bytes(rows: Int, cols: Int) -> Int { rows * (cols / traits.blockElements) * traits.blockBytes }
}

/// A (rows, cols) weight matrix in one of the block types of llama.cpp (F16, BF16, Q8_0, Q5_0,
/// Q4_K, Q6_K), in the (out, in) layout: row r holds the weights of output r as consecutive
/// blocks, `rowBytes` apart — the bytes of a GGUF tensor, viewed without copying.
///
/// ```swift
/// let w = try BlockMatrix(type: .q4_K, rows: 640, cols: 1024, bytes: file.data(of: t), owner: file)
/// w.forward(out: y, inp: x, bias: nil, N: 1, pool: pool)     // y (1, 640) = x (1, 1024) · Wᵀ
/// ```
public struct BlockMatrix: @unchecked Sendable {
    public let type: WeightType
    public let rows: Int
    public let cols: Int
    public let rowBytes: Int
    public let base: UnsafeRawPointer
    /// Keeps the memory alive (a memory-mapped file).
    public let owner: AnyObject?

    public init(type: WeightType, rows: Int, cols: Int, bytes: UnsafeRawBufferPointer, owner: AnyObject?) throws {
        guard type != .f32, type != .q8, let ggml = type.traits.ggml else {
            throw LMError(.invalidArgument, "BlockMatrix holds GGUF block types, not \(type)")
        }
        guard cols % ggml.blockElements == 0 else {
            throw LMError(.shapeMismatch, "a \(type) matrix needs rows that are a multiple of \(ggml.blockElements) values, got \(cols)")
        }
        let rb = cols / ggml.blockElements * ggml.blockBytes
        guard bytes.count == rows * rb, let p = bytes.baseAddress else {
            throw LMError(.corruptFile, "a \(rows) × \(cols) \(type) matrix needs \(rows * rb) bytes, got \(bytes.count)")
        }
        self.type = type
        self.rows = rows
        self.cols = cols
        self.rowBytes = rb
        self.base = p
        self.owner = owner
    }

    public var ggmlID: Int32 { Int32(type.traits.ggml!.id) }
    public var bytes: Int { rows * rowBytes }

    /// Row `r` dequantized into `out` (cols floats).
    @inline(__always)
    public func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        lm_dequantize(ggmlID, base + r * rowBytes, out, cols)
    }

    /// The whole matrix as floats (rows, cols), with the reference dequantizer.
    public func dequantizedRef() -> Tensor {
        let t = Tensor(zeros: [rows, cols])
        for r in 0..<rows { lm_dequantize_ref(ggmlID, base + r * rowBytes, t.data + r * cols, cols) }
        return t
    }

    /// out (N, rows) = inp (N, cols) · Wᵀ + bias, or out += … with `accumulate`.
    ///
    /// One row (decoding): each thread takes a contiguous range of weight rows and runs the fused
    /// dequantize-and-dot kernel (`lm_quant_gemv`): the weights stream once, in their compact
    /// form. Several rows (prefill): swift-lm's GEMM dequantizes the weights while it packs its
    /// panels (`lm_sgemm_blocks`), each thread a range of output columns. Every output is
    /// computed the same way whichever thread computes it, so results never depend on the
    /// thread count.
    public func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                        N: Int, accumulate: Bool = false, pool: ThreadPool) {
        let type = ggmlID, base = base, rowBytes = rowBytes, cols = cols, rows = rows
        if N == 1 {
            pool.parallelFor(rows, grain: 16, minimumPerThread: 64) { r in
                lm_quant_gemv(type, out, base, rowBytes, cols, r.lowerBound, r.upperBound, inp, bias, accumulate ? 1 : 0)
            }
            return
        }
        let scratch = pool.scratch(bytes: lm_sgemm_scratch_floats() * MemoryLayout<Float>.size)
        let pieces = pool.pieceCount((rows + 15) / 16)
        pool.forEachPiece(pieces) { p, t in
            let c = ThreadPool.chunk(rows, parts: pieces, index: p, grain: 16)
            if c.isEmpty { return }
            lm_sgemm_blocks(inp, cols, type, base, rowBytes, cols, out, rows, N, c.lowerBound, c.upperBound, bias,
                            accumulate ? 1 : 0, scratch[t].assumingMemoryBound(to: Float.self))
        }
    }

    /// Reference twin of `forward`: every product from `lm_quant_dot_ref` (the reference
    /// dequantizer, sums in Double).
    public func forwardRef(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                           N: Int, accumulate: Bool = false) {
        for n in 0..<N {
            for r in 0..<rows {
                let s = lm_quant_dot_ref(ggmlID, base + r * rowBytes, inp + n * cols, cols) + Double(bias?[r] ?? 0)
                out[n * rows + r] = accumulate ? out[n * rows + r] + Float(s) : Float(s)
            }
        }
    }
}

/// The instruction set the block-type kernels use on this CPU (chosen at run time).
public var kernelISA: String { lm_quant_isa() >= 2 ? "AVX-512" : "AVX2" }

/// Forces the instruction set of the block-type and GEMM kernels: `avx2`, `avx512` (falls back to
/// AVX2 on a CPU without it) or `auto` — `$LM_KERNELS`, for benchmarks of the AVX2 path on an
/// AVX-512 machine. Results are the same bits either way for the GEMM, within float rounding
/// for the GEMVs.
public func setKernelISA(_ name: String) throws {
    switch name.lowercased() {
    case "auto", "": lm_quant_set_isa(0)
    case "avx2": lm_quant_set_isa(1)
    case "avx512", "avx-512": lm_quant_set_isa(2)
    default: throw LMError(.invalidArgument, "LM_KERNELS=\(name) is not one of auto, avx2, avx512")
    }
}
