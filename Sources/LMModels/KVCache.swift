import LMCore

/// Keys and values of the positions seen so far, per layer, preallocated so decoding never
/// allocates.
///
/// Layout per layer: keys (slots, KVH·HS) and values (slots, KVH·HS), one row per position, head
/// g at columns g·HS. Positions `0..<length` have been run. A layer with an attention window W
/// (Gemma's sliding-window layers) keeps only W − 1 + `maxBatch` slots: its queries never look
/// further back than W − 1 positions, so once the slots fill, the positions no query can see any
/// more are dropped and the rest move to the front (`prepare(toAppend:)`). Slot s of layer l
/// holds position `base(l) + s`; layers without a window always have base 0.
///
/// Models with rotary position embeddings can move cached positions (`removePositions`: the
/// keys are rotated again by the model), which is how a full context shifts without re-encoding.
/// Mutated in place by the model.
public final class KVCache: @unchecked Sendable {
    public let layers: Int
    /// Positions the context holds at most.
    public let capacity: Int
    /// Floats per position per layer for keys (and for values): KVH · HS.
    public let width: Int
    /// Per layer: the attention window (nil: every earlier position is visible).
    public let windows: [Int?]
    /// Per layer: the positions it has room for.
    public let slots: [Int]
    public private(set) var length: Int = 0
    private var bases: [Int]
    private let offsets: [Int]
    private let storage: TensorStorage

    /// A cache whose layers all keep every position (GPT-2, BERT).
    public convenience init(layers: Int, capacity: Int, width: Int) {
        self.init(capacity: capacity, width: width, windows: Array(repeating: nil, count: layers), maxBatch: capacity)
    }

    /// A cache for `capacity` positions; layers with a window keep window − 1 + `maxBatch`
    /// slots (at most `capacity`), where `maxBatch` is the most positions a model appends at once.
    public init(capacity: Int, width: Int, windows: [Int?], maxBatch: Int) {
        self.layers = windows.count
        self.capacity = capacity
        self.width = width
        self.windows = windows
        slots = windows.map { w in w.map { min(capacity, max(1, $0 - 1 + max(1, maxBatch))) } ?? capacity }
        bases = Array(repeating: 0, count: windows.count)
        var o: [Int] = [], total = 0
        for s in slots {
            o.append(total)
            total += 2 * s * width
        }
        offsets = o
        storage = TensorStorage(count: total)
    }

    /// Bytes held by the cache.
    public var bytes: Int { storage.count * 4 }

    /// Keys of `layer`: (slots, width); slot s holds position base(layer) + s.
    @inline(__always)
    public func keys(_ layer: Int) -> UnsafeMutablePointer<Float> {
        storage.base + offsets[layer]
    }

    /// Values of `layer`: (slots, width).
    @inline(__always)
    public func values(_ layer: Int) -> UnsafeMutablePointer<Float> {
        storage.base + offsets[layer] + slots[layer] * width
    }

    /// The position held in slot 0 of `layer`.
    @inline(__always)
    public func base(_ layer: Int) -> Int { bases[layer] }

    /// The positions `layer` holds: base ..< length.
    public func held(_ layer: Int) -> Range<Int> { bases[layer]..<length }

    /// Free positions.
    public var remaining: Int { capacity - length }

    /// Makes room in every windowed layer for `count` new positions at `length…`: when they would
    /// not fit, the positions that no later query can see (older than window − 1 before `length`)
    /// are dropped and the rest move to slot 0.
    public func prepare(toAppend count: Int) {
        precondition(length + count <= capacity, "KV cache overflow")
        for l in 0..<layers {
            guard let w = windows[l], length + count - bases[l] > slots[l] else { continue }
            let from = max(bases[l], length - (w - 1))
            precondition(length - from + count <= slots[l], "more new positions than a windowed layer has room for")
            move(layer: l, from: from, count: length - from, toSlot: 0)
            bases[l] = from
        }
    }

    /// Marks `count` more positions as valid (the model has written them at slots
    /// `length − base … ` after `prepare(toAppend:)`).
    public func advance(by count: Int) {
        precondition(length + count <= capacity, "KV cache overflow")
        length += count
    }

    /// Whether `truncate(to:)` can keep exactly the positions before `newLength`: a windowed
    /// layer must still hold the window − 1 positions before it.
    public func canTruncate(to newLength: Int) -> Bool {
        let n = max(0, min(length, newLength))
        if n == 0 { return true }
        for l in 0..<layers {
            if let w = windows[l], bases[l] > max(0, n - (w - 1)) { return false }
        }
        return true
    }

    /// Drops every position at and after `newLength` (undo a turn, regenerate). Check
    /// `canTruncate(to:)` first when the cache has windowed layers.
    public func truncate(to newLength: Int) {
        precondition(canTruncate(to: newLength), "a windowed layer no longer holds the positions before \(newLength)")
        length = max(0, min(length, newLength))
        if length == 0 { bases = Array(repeating: 0, count: layers) }
    }

    /// Empties the cache.
    public func reset() {
        length = 0
        bases = Array(repeating: 0, count: layers)
    }

    /// Sets the cache to `length` positions of which layer l holds the last `held[l]` (written
    /// into slots 0… by the caller): restoring a saved session. Throws when a layer's count does
    /// not fit it.
    public func restore(length newLength: Int, held: [Int]) throws {
        try validateRestore(length: newLength, held: held)
        length = newLength
        bases = held.map { newLength - $0 }
    }

    /// Throws unless `restore(length:held:)` would accept these counts.
    public func validateRestore(length newLength: Int, held: [Int]) throws {
        guard newLength <= capacity, held.count == layers else {
            throw LMError(.invalidInput, "a saved cache of \(newLength) positions does not fit this one (\(capacity) positions, \(layers) layers)")
        }
        for l in 0..<layers {
            let need = windows[l].map { min(newLength, $0 - 1) } ?? newLength
            guard held[l] <= min(newLength, slots[l]), held[l] >= need else {
                throw LMError(.invalidInput, "layer \(l) of the saved cache holds \(held[l]) positions; this model needs \(need)...\(min(newLength, slots[l]))")
            }
        }
    }

    /// Removes the positions in `range` and moves the later ones down by its length (a context
    /// shift): `rotate(layer, keys, rows, delta)` must turn `rows` cached keys (starting at
    /// `keys`) into the keys of positions `delta` further (delta < 0) — the model's rotary
    /// embedding. Returns false, changing nothing, when a windowed layer would lose positions a
    /// later query needs (the caller then encodes the text again).
    public func removePositions(_ range: Range<Int>, rotate: (Int, UnsafeMutablePointer<Float>, Int, Int) -> Void) -> Bool {
        let a = max(0, range.lowerBound), b = min(length, range.upperBound)
        guard a < b else { return true }
        let d = b - a, newLength = length - d
        // New base of each layer, and whether it still holds what the next query needs.
        var newBases = bases
        for l in 0..<layers {
            let base = bases[l]
            if base < a {
                newBases[l] = base
            } else if base < b {
                newBases[l] = a
            } else {
                newBases[l] = base - d
            }
            if let w = windows[l], newLength > 0, newBases[l] > max(0, newLength - (w - 1)) { return false }
        }
        for l in 0..<layers {
            let base = bases[l]
            let from = max(base, b)               // the first moved position
            let count = length - from
            if count > 0 {
                let toSlot = from - d - newBases[l]
                move(layer: l, from: from, count: count, toSlot: toSlot)
                rotate(l, keys(l) + toSlot * width, count, -d)
            }
            newBases[l] = min(newBases[l], newLength)
        }
        bases = newBases
        length = newLength
        return true
    }

    /// Moves `count` positions starting at position `from` to start at slot `toSlot`.
    private func move(layer l: Int, from: Int, count: Int, toSlot: Int) {
        let fromSlot = from - bases[l]
        guard count > 0, fromSlot != toSlot else { return }
        (keys(l) + toSlot * width).update(from: keys(l) + fromSlot * width, count: count * width)
        (values(l) + toSlot * width).update(from: values(l) + fromSlot * width, count: count * width)
    }
}
