import CKernels
import Foundation
import LMCore

/// Tensors of a GGUF file by name, checked against the shapes a model expects: vectors as float
/// tensors, matrices as `LinearWeights` in the file's own type — zero-copy for every type
/// (F32 is viewed as floats, the block types as `BlockMatrix`).
public struct GGUFWeights {
    public let file: GGUFFile

    public init(file: GGUFFile) { self.file = file }

    private var fileName: String { (file.path as NSString).lastPathComponent }

    private func check(_ t: GGUFTensorInfo, dims: [Int]) throws {
        guard t.dims == dims else {
            throw LMError(.shapeMismatch, "'\(fileName)': tensor '\(t.name)' is \(t.dims) (GGUF order) but the file's metadata gives \(dims) — the metadata contradicts the tensor shapes; the file is corrupt")
        }
    }

    /// A 1-D float tensor of `count` values (norm weights): F32 in place; F16 and BF16 converted.
    public func vector(_ name: String, count: Int) throws -> Tensor {
        let t = try file.tensor(name)
        try check(t, dims: [count])
        let bytes = file.data(of: t)
        switch t.type {
        case .f32:
            let p = UnsafeMutableRawPointer(mutating: bytes.baseAddress!).assumingMemoryBound(to: Float.self)
            return Tensor(view: TensorStorage(borrowing: p, count: count, owner: file), shape: [count])
        case .f16, .bf16:
            let out = Tensor(zeros: [count])
            lm_dequantize(Int32(t.type.id), bytes.baseAddress!, out.data, count)
            return out
        default:
            throw LMError(.invalidConfig, "'\(fileName)': tensor '\(name)' is \(t.type.name); a norm or bias must be F32, F16 or BF16 — the file is corrupt")
        }
    }

    /// The (rows, cols) matrix `name` in the (out, in) layout (GGUF dims [cols, rows]).
    public func matrix(_ name: String, rows: Int, cols: Int, convertTo: WeightType? = nil) throws -> LinearWeights {
        let t = try file.tensor(name)
        try check(t, dims: [cols, rows])
        guard let type = WeightType(ggml: t.type) else {
            throw LMError(.invalidConfig, "'\(fileName)': tensor '\(name)' has type \(t.type.name), which swift-lm cannot compute yet (supported: \(WeightType.supportedGGMLNames))")
        }
        let bytes = file.data(of: t)
        if type == .f32 {
            let p = UnsafeMutableRawPointer(mutating: bytes.baseAddress!).assumingMemoryBound(to: Float.self)
            let w = Tensor(view: TensorStorage(borrowing: p, count: rows * cols, owner: file), shape: [rows, cols])
            return try LinearWeights.converting(w, to: convertTo)
        }
        return .blocks(try BlockMatrix(type: type, rows: rows, cols: cols, bytes: bytes, owner: file))
    }

    /// Whether the file holds `name`.
    public func contains(_ name: String) -> Bool { file.contains(name) }
}
