import LMCore
import LMModels

#if canImport(Glibc)
import Glibc
#endif

/// Timings of one generation, as `lm generate` and `lm bench` report them.
public struct GenerationStats: Sendable, Codable, Equatable {
    public var promptTokens = 0
    public var promptSeconds = 0.0
    public var generatedTokens = 0
    /// From the end of the prefill to the last token.
    public var generationSeconds = 0.0
    public var stoppedAtEOS = false
    /// Times the window slid because the context was full.
    public var contextShifts = 0
    /// Tokens encoded again by those slides.
    public var reencodedTokens = 0

    public init() {}

    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptTokens) / promptSeconds : 0 }
    public var tokensPerSecond: Double { generationSeconds > 0 ? Double(generatedTokens) / generationSeconds : 0 }
}

/// Monotonic seconds.
@inline(__always)
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Runs a prompt through a model and samples tokens one at a time, reusing one KV cache.
///
/// The prompt goes through the model in one batched prefill; each new token is then fed back
/// with a single-token forward. Nothing is allocated per token.
///
/// ```swift
/// let gen = try TokenGenerator(model: model, settings: .greedy)
/// let stats = try gen.generate(prompt: ids, maxTokens: 50) { token in print(token); return true }
/// ```
public final class TokenGenerator {
    public let model: any CausalLanguageModel
    public let cache: KVCache
    public let sampler: Sampler
    /// Tokens that end a generation (not passed to `onToken`). Defaults to the model's EOS.
    public var stopTokens: Set<Int>
    private let step: UnsafeMutablePointer<Int32>

    public init(model: any CausalLanguageModel, settings: SamplerSettings, cache: KVCache? = nil) throws {
        self.model = model
        self.cache = cache ?? model.makeCache()
        sampler = try Sampler(settings: settings, vocabularySize: model.vocabularySize)
        stopTokens = model.eosTokenID.map { [$0] } ?? []
        step = .allocate(capacity: 1)
        history.reserveCapacity(self.cache.capacity + 1)
    }

    deinit { step.deallocate() }

    /// Tokens whose keys and values are in the cache, in order (for re-encoding a window).
    public private(set) var history: [Int] = []

    /// What happens when the cache is full: drop the older half of the window and keep going
    /// (moving the cached keys when the model can, as llama.cpp's context shift; otherwise —
    /// learned absolute positions — encoding the newer half again), or stop.
    public var slideWhenFull = true

    /// Tokens at the start of the cache that a slide keeps in place (llama.cpp's `n_keep`: a
    /// system prompt). The slide then re-encodes the newest half of the rest after them. At most
    /// half the cache is kept; 0 (the default) keeps nothing.
    public var keepFirst = 0

    /// Drops every cached position at and after `length`, from the cache and from `history`
    /// (undo a turn, sample a reply again). The sampler is not touched. When a sliding-window
    /// layer no longer holds what the positions before `length` need, the kept tokens are encoded
    /// again (the cache then holds exactly them).
    public func truncate(to length: Int) throws {
        let n = max(0, min(length, history.count))
        if cache.canTruncate(to: n) {
            cache.truncate(to: n)
            history.removeSubrange(n...)
            return
        }
        let kept = Array(history[0..<n])
        cache.reset()
        history = []
        try append(kept)
    }

    /// Removes the cached positions in `range` (from the cache and `history`) and moves the later
    /// ones down without encoding anything again (llama.cpp's context shift), when the model's
    /// keys can move (rotary embeddings). Returns false, changing nothing, when they cannot.
    public func discard(_ range: Range<Int>) -> Bool {
        guard model.canShiftCache, history.count == cache.length,
              range.lowerBound >= 0, range.upperBound <= history.count else { return false }
        guard !range.isEmpty else { return true }
        guard model.shiftCache(cache, removing: range) else { return false }
        history.removeSubrange(range)
        return true
    }

    /// Runs `tokens` through the model into the cache after what it holds, without sampling
    /// and without touching the sampler's repetition window: re-encoding a window after a
    /// context shift, or rebuilding a restored session. Throws when they do not fit.
    public func append(_ tokens: [Int]) throws {
        guard !tokens.isEmpty else { return }
        if cache.length != history.count { history = [] }
        let ids = tokens.map { Int32(truncatingIfNeeded: $0) }
        _ = try ids.withUnsafeBufferPointer { try model.forward(tokens: $0, cache: cache, allLogits: false) }
        history += tokens
    }

    /// Declares that the cache's positions hold `tokens` (keys and values copied into it from a
    /// saved session), so the next `generate` continues after them.
    public func assumeCached(_ tokens: [Int]) throws {
        guard tokens.count == cache.length else {
            throw LMError(.invalidInput, "\(tokens.count) tokens given for a cache holding \(cache.length) positions — restore the keys and values of exactly these tokens")
        }
        history.removeAll(keepingCapacity: true)
        history += tokens
    }

    /// Throws when a row of logits about to be sampled holds NaN or ±inf: weights that are
    /// corrupt (or overflow float32) would otherwise be sampled into garbage without a word.
    /// One pass over the V logits (x − x is 0 for every finite x, NaN for NaN and ±inf).
    private func checkFinite(_ logits: UnsafeMutableBufferPointer<Float>, token: Int) throws {
        guard let p = logits.baseAddress else { return }
        let n = logits.count
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
            acc += v - v
            i += 8
        }
        var tail: Float = 0
        while i < n { tail += p[i] - p[i]; i += 1 }
        guard !(acc.sum() + tail).isFinite else { return }
        let bad = logits.first { !$0.isFinite } ?? .nan
        let what = bad.isNaN ? "NaN" : bad > 0 ? "+inf" : "-inf"
        throw LMError(.corruptFile, "the \(model.modelType) model produced non-finite logits (\(what)) at token \(token) — its weights are corrupt or overflow float32")
    }

    /// Feeds `prompt` (appending to whatever the cache holds), then samples up to `maxTokens`
    /// tokens, calling `onToken` for each; `onToken` returns false to stop early.
    /// Stops at a stop token; when the cache fills, slides the window (or stops if `slideWhenFull` is off).
    /// Throws when the model's logits are not finite (NaN or ±inf: corrupt weights). `maxTokens`
    /// may be any size (10^12: until a stop token or `onToken` ends it): nothing is sized by it.
    @discardableResult
    public func generate(prompt: [Int], maxTokens: Int, onToken: (Int) throws -> Bool) throws -> GenerationStats {
        var stats = GenerationStats()
        let ids = prompt.map { Int32(truncatingIfNeeded: $0) }
        let t0 = monotonicSeconds()
        if cache.length != history.count { history = [] }  // someone else used the cache
        var logits = try ids.withUnsafeBufferPointer { try model.forward(tokens: $0, cache: cache, allLogits: false) }
        history += prompt
        for t in prompt { sampler.accept(t) }
        let t1 = monotonicSeconds()
        stats.promptTokens = prompt.count
        stats.promptSeconds = t1 - t0
        var produced = 0
        while produced < maxTokens {
            try checkFinite(logits, token: produced + 1)
            let token = sampler.sample(logits: UnsafeBufferPointer(logits))
            sampler.accept(token)
            if stopTokens.contains(token) { stats.stoppedAtEOS = true; break }
            produced += 1
            if try !onToken(token) { break }
            if produced == maxTokens { break }
            if cache.remaining == 0 {
                guard slideWhenFull, history.count == cache.length else { break }
                // Keep the first `keepFirst` positions in place; encode the newest half of the
                // rest again right after them.
                let kept = min(keepFirst, cache.capacity / 2)
                let tailCount = (cache.capacity - kept) / 2
                if tailCount == 0 { break }
                stats.contextShifts += 1
                if !discard(kept..<(history.count - tailCount)) {
                    let tail = Array(history.suffix(tailCount))
                    try truncate(to: kept)
                    history += tail
                    _ = try tail.map { Int32($0) }.withUnsafeBufferPointer {
                        try model.forward(tokens: $0, cache: cache, allLogits: false)
                    }
                    stats.reencodedTokens += tail.count
                }
            }
            step[0] = Int32(token)
            logits = try model.forward(tokens: UnsafeBufferPointer(start: step, count: 1), cache: cache, allLogits: false)
            history.append(token)
        }
        stats.generatedTokens = produced
        stats.generationSeconds = monotonicSeconds() - t1
        return stats
    }
}
