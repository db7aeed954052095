import LMCore

/// Keys and values of every position seen so far, per layer, preallocated for the whole
/// context so decoding never allocates.
///
/// Layout per layer: keys (capacity, KVH·HS) and values (capacity, KVH·HS), row = position,
/// head g at columns g·HS. `length` positions are valid. Mutated in place by the model.
public final class KVCache: @unchecked Sendable {
    public let layers: Int
    public let capacity: Int
    /// Floats per position per layer for keys (and for values): KVH · HS.
    public let width: Int
    public private(set) var length: Int = 0
    private let storage: TensorStorage

    public init(layers: Int, capacity: Int, width: Int) {
        self.layers = layers
        self.capacity = capacity
        self.width = width
        storage = TensorStorage(count: layers * 2 * capacity * width)
    }

    /// Bytes held by the cache.
    public var bytes: Int { storage.count * 4 }

    /// Keys of `layer`: (capacity, width).
    @inline(__always)
    public func keys(_ layer: Int) -> UnsafeMutablePointer<Float> {
        storage.base + (layer * 2) * capacity * width
    }

    /// Values of `layer`: (capacity, width).
    @inline(__always)
    public func values(_ layer: Int) -> UnsafeMutablePointer<Float> {
        storage.base + (layer * 2 + 1) * capacity * width
    }

    /// Free positions.
    public var remaining: Int { capacity - length }

    /// Marks `count` more positions as valid (the model has written them).
    public func advance(by count: Int) {
        precondition(length + count <= capacity, "KV cache overflow")
        length += count
    }

    /// Drops every position at and after `newLength` (undo a turn, regenerate).
    public func truncate(to newLength: Int) {
        length = max(0, min(length, newLength))
    }

    /// Empties the cache.
    public func reset() { length = 0 }

    /// Moves positions `from..<length` down to start at `to` in every layer (context shift).
    public func shift(from: Int, to: Int) {
        precondition(to <= from && from <= length)
        let n = length - from
        for l in 0..<layers {
            (keys(l) + to * width).update(from: keys(l) + from * width, count: n * width)
            (values(l) + to * width).update(from: values(l) + from * width, count: n * width)
        }
        length = to + n
    }
}
