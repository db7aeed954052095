import LMCore

/// A decoder-only model that maps token ids to next-token logits, with a KV cache.
///
/// ```swift
/// let model = try ModelRegistry.loadCausalLM(folder: "models/shakespeare")
/// let cache = model.makeCache()
/// let logits = try model.forward(tokens: [50256], cache: cache)   // (V)
/// ```
public protocol CausalLanguageModel: AnyObject {
    var modelType: String { get }
    var vocabularySize: Int { get }
    /// Longest sequence the model can attend over (positions).
    var contextLength: Int { get }
    var bosTokenID: Int? { get }
    var eosTokenID: Int? { get }
    /// Parameter count (excluding tied duplicates).
    var parameterCount: Int { get }

    /// A cache for `capacity` positions (default: the context length).
    func makeCache(capacity: Int?) -> KVCache

    /// Runs `tokens` at positions `cache.length…`, appends their keys and values to `cache`
    /// and returns the logits of the last token (V), or of every token (T, V) when
    /// `allLogits`. The buffer belongs to the model and is overwritten by the next call.
    func forward(tokens: UnsafeBufferPointer<Int32>, cache: KVCache, allLogits: Bool) throws
        -> UnsafeMutableBufferPointer<Float>
}

extension CausalLanguageModel {
    public func makeCache() -> KVCache { makeCache(capacity: nil) }

    /// Convenience over `forward(tokens:cache:allLogits:)` for arrays (allocates; not for the decode loop).
    public func forward(tokens: [Int], cache: KVCache, allLogits: Bool = false) throws -> [Float] {
        let ids = tokens.map { Int32(truncatingIfNeeded: $0) }
        return try ids.withUnsafeBufferPointer {
            Array(try forward(tokens: $0, cache: cache, allLogits: allLogits))
        }
    }

    /// Checks ids and room in the cache; shared by every architecture.
    public func validate(tokens: UnsafeBufferPointer<Int32>, cache: KVCache) throws {
        guard !tokens.isEmpty else {
            throw LMError(.invalidInput, "no tokens to run — give a non-empty prompt")
        }
        for t in tokens where t < 0 || Int(t) >= vocabularySize {
            throw LMError(.invalidInput, "token id \(t) is outside the vocabulary (0..<\(vocabularySize))")
        }
        if cache.length + tokens.count > cache.capacity {
            throw LMError(.invalidInput, "\(cache.length + tokens.count) tokens exceed the context of \(cache.capacity) positions — shorten the prompt or lower --max-tokens")
        }
    }
}
