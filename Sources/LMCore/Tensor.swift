#if canImport(Glibc)
import Glibc
#endif

/// Float32 memory that a `Tensor` views: either owned (64-byte aligned, freed on deinit)
/// or borrowed from an owner that keeps it alive (a memory-mapped file, a parameter slab).
public final class TensorStorage: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Float>
    public let count: Int
    private let allocation: Allocation
    private let owner: AnyObject?

    private enum Allocation { case heap, mapped(bytes: Int), borrowed }

    /// Buffers at least this large come straight from the kernel (anonymous mmap) and go back
    /// to it on release. glibc's malloc would raise its mmap threshold after the first large
    /// free and keep later temporaries in a heap that never shrinks.
    static let mmapThreshold = 256 * 1024

    /// Allocates `count` zeroed floats, aligned to 64 bytes.
    public init(count: Int) {
        precondition(count >= 0, "TensorStorage count must be non-negative")
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        self.count = count
        self.owner = nil
        if bytes >= TensorStorage.mmapThreshold {
            let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let p, p != MAP_FAILED else {
                preconditionFailure("out of memory allocating \(bytes) bytes")
            }
            self.base = p.bindMemory(to: Float.self, capacity: max(count, 1))
            self.allocation = .mapped(bytes: bytes)
            return
        }
        var raw: UnsafeMutableRawPointer?
        if posix_memalign(&raw, 64, bytes) != 0 || raw == nil {
            // Out of memory is not something a caller can recover from here.
            preconditionFailure("out of memory allocating \(bytes) bytes")
        }
        memset(raw!, 0, bytes)
        self.base = raw!.bindMemory(to: Float.self, capacity: max(count, 1))
        self.allocation = .heap
    }

    /// Borrows `count` floats at `base`, kept alive by `owner`.
    public init(borrowing base: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject?) {
        self.base = base
        self.count = count
        self.allocation = .borrowed
        self.owner = owner
    }

    deinit {
        switch allocation {
        case .heap: free(base)
        case .mapped(let bytes): munmap(base, bytes)
        case .borrowed: break
        }
    }
}

/// A float32 tensor over contiguous row-major storage (last index fastest).
///
/// A `Tensor` is a view: several tensors may share one `TensorStorage` (named views into a
/// parameter slab, zero-copy views into a memory-mapped safetensors file).
public struct Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let storage: TensorStorage
    /// Offset of element 0 in `storage`, in floats.
    public let offset: Int

    /// A new zero-filled tensor.
    public init(zeros shape: [Int]) {
        let n = shape.reduce(1, *)
        self.shape = shape
        self.storage = TensorStorage(count: n)
        self.offset = 0
    }

    /// A new tensor holding `values` (row-major), which must have `shape.product` elements.
    public init(shape: [Int], values: [Float]) throws {
        let n = shape.reduce(1, *)
        guard n == values.count else {
            throw LMError(.shapeMismatch, "tensor of shape \(shape) needs \(n) values, got \(values.count)")
        }
        self.init(zeros: shape)
        values.withUnsafeBufferPointer { src in
            if n > 0 { storage.base.update(from: src.baseAddress!, count: n) }
        }
    }

    /// A view of `shape` at `offset` floats into `storage`.
    public init(view storage: TensorStorage, offset: Int = 0, shape: [Int]) {
        precondition(offset + shape.reduce(1, *) <= storage.count, "view out of bounds")
        self.shape = shape
        self.storage = storage
        self.offset = offset
    }

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }

    /// Pointer to element 0. Valid while `storage` is alive.
    public var data: UnsafeMutablePointer<Float> { storage.base + offset }

    public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: data, count: count)
    }

    /// The elements as an array (a copy).
    public var scalars: [Float] { Array(buffer) }

    /// The same storage seen with another shape of the same element count.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard newShape.reduce(1, *) == count else {
            throw LMError(.shapeMismatch, "cannot reshape \(shape) to \(newShape)")
        }
        return Tensor(view: storage, offset: offset, shape: newShape)
    }

    /// Row `i` of a tensor seen as [shape[0], rest].
    public func row(_ i: Int) -> Tensor {
        let inner = Array(shape.dropFirst())
        let n = inner.reduce(1, *)
        return Tensor(view: storage, offset: offset + i * n, shape: inner)
    }

    /// Throws unless the shape equals `expected`; `name` goes into the message.
    public func expectShape(_ expected: [Int], name: String) throws {
        guard shape == expected else {
            throw LMError(.shapeMismatch, "tensor '\(name)' has shape \(shape), expected \(expected)")
        }
    }

    /// A deep copy with its own storage.
    public func copy() -> Tensor {
        let t = Tensor(zeros: shape)
        if count > 0 { t.data.update(from: data, count: count) }
        return t
    }
}
