/// All of a model's parameters in one contiguous allocation, with a named view per tensor.
///
/// One slab makes zero-grad, optimizer steps and checkpoint IO a single loop each; the
/// gradient slab for training has the same layout.
public final class ParameterSlab: @unchecked Sendable {
    /// (name, shape) in slab order.
    public let layout: [(name: String, shape: [Int])]
    public let storage: TensorStorage
    private var index: [String: Tensor] = [:]

    public init(layout: [(name: String, shape: [Int])]) {
        self.layout = layout
        let total = layout.reduce(0) { $0 + $1.shape.reduce(1, *) }
        storage = TensorStorage(count: total)
        var offset = 0
        for (name, shape) in layout {
            index[name] = Tensor(view: storage, offset: offset, shape: shape)
            offset += shape.reduce(1, *)
        }
    }

    public var count: Int { storage.count }

    /// The view named `name`.
    public func tensor(_ name: String) throws -> Tensor {
        guard let t = index[name] else {
            throw LMError(.missingTensor, "no parameter named '\(name)'")
        }
        return t
    }

    /// The data of the view named `name`, for a name taken from this slab's own layout (a
    /// programming error otherwise, so it traps rather than throws).
    public func data(_ name: String) -> UnsafeMutablePointer<Float> {
        guard let t = index[name] else { preconditionFailure("no parameter named '\(name)' in this layout") }
        return t.data
    }

    /// The data of the view named `name`, or nil when the layout has none (optional heads).
    public func dataIfPresent(_ name: String) -> UnsafeMutablePointer<Float>? { index[name]?.data }

    /// Every view in slab order.
    public var tensors: [(String, Tensor)] { layout.map { ($0.name, index[$0.name]!) } }

    /// Sets every element to zero.
    public func zero() {
        storage.base.initialize(repeating: 0, count: storage.count)
    }
}
