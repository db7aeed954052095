import LMCore

/// A decoder-only model that maps token ids to next-token logits, with a KV cache: what generic
/// code (generation, chat, evaluation, benchmarks) needs to know about any architecture.
///
/// ```swift
/// let model = try ModelRegistry.loadCausalLM(path: "models/shakespeare")
/// let cache = model.makeCache()
/// let logits = try model.forward(tokens: [50256], cache: cache)   // (V)
/// ```
public protocol CausalLanguageModel: AnyObject {
    /// The architecture (`gpt2`, `gemma3`).
    var modelType: String { get }
    var vocabularySize: Int { get }
    /// Longest sequence the model can attend over (positions).
    var contextLength: Int { get }
    var bosTokenID: Int? { get }
    var eosTokenID: Int? { get }
    /// Parameter count (excluding tied duplicates).
    var parameterCount: Int { get }
    /// Bytes of all weights as held in memory (memory-mapped ones included).
    var weightBytes: Int { get }
    var layerCount: Int { get }
    /// Weight types and how many matrices use each (`["Q4_K": 27, …]`), for `/model` and `lm bench`.
    var weightTypes: [String: Int] { get }

    /// A cache for `capacity` positions (default: the context length). Its layout (windowed
    /// layers, key width) is the model's.
    func makeCache(capacity: Int?) -> KVCache

    /// Whether cached keys can move to other positions (rotary position embeddings: the keys are
    /// rotated again), so a full context shifts without encoding text again. False for learned
    /// absolute positions (GPT-2).
    var canShiftCache: Bool { get }

    /// Removes the cached positions in `range` and moves the later ones down by its length,
    /// rotating their keys (llama.cpp's context shift). Returns false, changing nothing, when the
    /// model or the cache cannot (the caller then encodes the text again).
    func shiftCache(_ cache: KVCache, removing range: Range<Int>) -> Bool

    /// Runs `tokens` at positions `cache.length…`, appends their keys and values to `cache` and
    /// returns the logits of the tokens from index `logitsFrom` on ((T − logitsFrom, V); at least
    /// the last token's). The buffer belongs to the model and is overwritten by the calling thread's next call (models may be called from several threads, each with its own cache).
    func forward(tokens: UnsafeBufferPointer<Int32>, cache: KVCache, logitsFrom: Int) throws
        -> UnsafeMutableBufferPointer<Float>
}

extension CausalLanguageModel {
    public func makeCache() -> KVCache { makeCache(capacity: nil) }

    public var canShiftCache: Bool { false }
    public func shiftCache(_ cache: KVCache, removing range: Range<Int>) -> Bool { false }

    /// The logits of the last token (V), or of every token (T, V) when `allLogits`.
    public func forward(tokens: UnsafeBufferPointer<Int32>, cache: KVCache, allLogits: Bool) throws
        -> UnsafeMutableBufferPointer<Float> {
        try forward(tokens: tokens, cache: cache, logitsFrom: allLogits ? 0 : max(0, tokens.count - 1))
    }

    /// Convenience over `forward(tokens:cache:allLogits:)` for arrays (allocates; not for the decode loop).
    public func forward(tokens: [Int], cache: KVCache, allLogits: Bool = false) throws -> [Float] {
        try forward(tokens: tokens, cache: cache, logitsFrom: allLogits ? 0 : max(0, tokens.count - 1))
    }

    /// Convenience over `forward(tokens:cache:logitsFrom:)` for arrays.
    public func forward(tokens: [Int], cache: KVCache, logitsFrom: Int) throws -> [Float] {
        if let bad = tokens.first(where: { $0 < 0 || $0 >= vocabularySize }) {
            throw LMError(.invalidInput, "token id \(bad) is outside the vocabulary (0..<\(vocabularySize))")
        }
        let ids = tokens.map { Int32($0) }
        return try ids.withUnsafeBufferPointer {
            Array(try forward(tokens: $0, cache: cache, logitsFrom: logitsFrom))
        }
    }

    /// Checks ids and room in the cache; shared by every architecture.
    public func validate(tokens: UnsafeBufferPointer<Int32>, cache: KVCache, logitsFrom: Int = 0) throws {
        guard !tokens.isEmpty else {
            throw LMError(.invalidInput, "no tokens to run — give a non-empty prompt")
        }
        for t in tokens where t < 0 || Int(t) >= vocabularySize {
            throw LMError(.invalidInput, "token id \(t) is outside the vocabulary (0..<\(vocabularySize))")
        }
        if cache.length + tokens.count > cache.capacity {
            throw LMError(.invalidInput, "\(cache.length + tokens.count) tokens exceed the context of \(cache.capacity) positions — shorten the prompt or lower --max-tokens")
        }
        guard logitsFrom >= 0, logitsFrom < tokens.count else {
            throw LMError(.invalidArgument, "logits from token \(logitsFrom) of \(tokens.count) — ask for at least the last one")
        }
    }
}

/// The loop every architecture's `forward` shares: the tokens in chunks of at most `maxBatch`
/// (llama.cpp's n_batch), each run by `chunk(offset, count)`; then, for the rows of that chunk
/// whose logits are wanted (from token `logitsFrom` on), `head(first, count, dest)`: the chunk's
/// rows `first…` into the logits buffer at `dest` (V floats per row).
func runInChunks(count T: Int, maxBatch: Int, logitsFrom: Int, logits: UnsafeMutablePointer<Float>, V: Int,
                 chunk: (_ offset: Int, _ count: Int) -> Void,
                 head: (_ first: Int, _ count: Int, _ dest: UnsafeMutablePointer<Float>) -> Void) {
    var done = 0
    while done < T {
        let B = min(maxBatch, T - done)
        chunk(done, B)
        let first = max(0, logitsFrom - done)
        if first < B { head(first, B - first, logits + (done + first - logitsFrom) * V) }
        done += B
    }
}
