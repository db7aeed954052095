import LMCore

/// Where a model's weights come from, by Hugging Face name and shape.
///
/// A model asks for each tensor once. When it keeps its own (for example transposed) copy,
/// it calls `done(with:)` so a memory-mapped source can drop those pages: peak memory stays
/// near one copy of the weights.
public protocol WeightSource {
    func tensor(_ name: String, shape: [Int]) throws -> Tensor
    func done(with name: String)
    /// The Q8 form of `name` ((out, in) = rows × cols), if the source holds one.
    func q8(_ name: String, rows: Int, cols: Int) throws -> Q8Matrix?
}

extension WeightSource {
    public func q8(_ name: String, rows: Int, cols: Int) throws -> Q8Matrix? { nil }
}

/// Tensors from a safetensors file, trying each name prefix in turn
/// (checkpoints are saved with and without `transformer.` / `bert.`).
public struct SafeTensorsWeightSource: WeightSource {
    public let file: SafeTensorsFile
    /// Prefixes that may be stripped from a requested name.
    public let optionalPrefixes: [String]

    public init(file: SafeTensorsFile, optionalPrefixes: [String] = []) {
        self.file = file
        self.optionalPrefixes = optionalPrefixes
    }

    /// The name `name` is stored under (with or without an optional prefix), or nil.
    public func resolve(_ name: String) -> String? {
        if file.contains(name) { return name }
        for p in optionalPrefixes where name.hasPrefix(p) {
            let short = String(name.dropFirst(p.count))
            if file.contains(short) { return short }
        }
        return nil
    }

    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        guard let found = resolve(name) else {
            throw LMError(.missingTensor, "'\(file.path)' has no tensor '\(name)' — does the checkpoint match its config.json?")
        }
        return try file.tensor(found, shape: shape)
    }

    public func done(with name: String) {
        if let found = resolve(name) { file.release(found) }
    }

    public func q8(_ name: String, rows: Int, cols: Int) throws -> Q8Matrix? {
        var candidates = [name]
        for p in optionalPrefixes where name.hasPrefix(p) { candidates.append(String(name.dropFirst(p.count))) }
        for candidate in candidates {
            if let m = try Q8Storage.load(file, name: candidate, rows: rows, cols: cols) { return m }
        }
        return nil
    }
}

/// Named views into a parameter slab (training, tests).
public struct SlabWeightSource: WeightSource {
    public let slab: ParameterSlab
    public init(slab: ParameterSlab) { self.slab = slab }
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        let t = try slab.tensor(name)
        try t.expectShape(shape, name: name)
        return t
    }
    public func done(with name: String) {}
}

/// Fresh random tensors for benchmarks: matrices N(0, std²), 1-D `.weight` ones, biases zero.
public final class RandomWeightSource: WeightSource {
    private var rng: SeededRNG
    private let std: Float
    public init(seed: UInt64, std: Float = 0.02) {
        rng = SeededRNG(seed: seed)
        self.std = std
    }
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        let t = Tensor(zeros: shape)
        if shape.count >= 2 {
            rng.fillNormal(t.buffer, std: std)
        } else if name.hasSuffix(".weight") {
            t.buffer.initialize(repeating: 1)
        }
        return t
    }
    public func done(with name: String) {}
}
