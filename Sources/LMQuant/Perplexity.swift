import Foundation
import LMCore
import LMModels

/// Perplexity as llama.cpp's `perplexity` tool measures it: the tokens are cut into chunks of
/// `context` tokens, each chunk runs from an empty cache, and only the second half of each
/// chunk is scored (every scored token then has at least half a window of context).
///
/// ```swift
/// let r = try Perplexity.evaluate(model, tokens: ids, context: 64)
/// print(r.perplexity)
/// ```
public enum Perplexity {
    public struct Result: Sendable {
        public var perplexity: Double
        public var meanNLL: Double
        public var scoredTokens: Int
        public var chunks: Int
    }

    /// Comparison of a reference model and a candidate on the same scored positions.
    public struct Comparison: Sendable {
        public var reference: Result
        public var candidate: Result
        /// Mean KL(reference ‖ candidate) per scored token, in nats.
        public var meanKLD: Double
        /// Fraction of scored positions where both pick the same most likely token.
        public var top1Agreement: Double
        public var changePercent: Double { (candidate.perplexity / reference.perplexity - 1) * 100 }
    }

    static func chunks(_ n: Int, context: Int, maxChunks: Int?) throws -> Int {
        guard context >= 4 else { throw LMError(.invalidArgument, "--context \(context) is too small (at least 4)") }
        let c = n / context
        guard c >= 1 else {
            throw LMError(.invalidInput, "the text has \(n) tokens, fewer than one window of \(context) — give a longer --corpus or a smaller --context")
        }
        return min(c, maxChunks ?? c)
    }

    /// Window `c` of `tokens`, its first token replaced by `bos` when given (llama.cpp's
    /// perplexity puts the BOS token first in every window of a model that adds one).
    static func window(_ tokens: [Int], _ c: Int, context: Int, bos: Int?) -> [Int] {
        var chunk = Array(tokens[(c * context)..<((c + 1) * context)])
        if let bos { chunk[0] = bos }
        return chunk
    }

    /// Perplexity of `tokens` in windows of `context`; `bos`: the token each window starts with
    /// (for models that add a BOS token, as llama.cpp scores them), nil to keep the text's own.
    public static func evaluate(_ model: any CausalLanguageModel, tokens: [Int], context: Int, bos: Int? = nil,
                                maxChunks: Int? = nil, progress: (Int, Int) -> Void = { _, _ in }) throws -> Result {
        let n = try chunks(tokens.count, context: context, maxChunks: maxChunks)
        let V = model.vocabularySize
        var nll = 0.0, scored = 0
        let first = context / 2
        let cache = model.makeCache(capacity: context)
        for c in 0..<n {
            let chunk = window(tokens, c, context: context, bos: bos)
            cache.reset()
            // Logits of the scored half only (row j − first predicts token j + 1).
            let logits = try model.forward(tokens: chunk, cache: cache, logitsFrom: first)
            for j in first..<(context - 1) {
                nll += negativeLogLikelihood(logits, row: j - first, V: V, target: chunk[j + 1])
                scored += 1
            }
            progress(c + 1, n)
        }
        let mean = nll / Double(scored)
        return Result(perplexity: exp(mean), meanNLL: mean, scoredTokens: scored, chunks: n)
    }

    /// Both models over the same chunks in one pass.
    public static func compare(reference a: any CausalLanguageModel, candidate b: any CausalLanguageModel,
                               tokens: [Int], context: Int, bos: Int? = nil, maxChunks: Int? = nil,
                               progress: (Int, Int) -> Void = { _, _ in }) throws -> Comparison {
        guard a.vocabularySize == b.vocabularySize else {
            throw LMError(.invalidArgument, "the two models have different vocabularies (\(a.vocabularySize) and \(b.vocabularySize))")
        }
        let n = try chunks(tokens.count, context: context, maxChunks: maxChunks)
        let V = a.vocabularySize
        var nllA = 0.0, nllB = 0.0, kld = 0.0, agree = 0, scored = 0
        var pa = [Double](repeating: 0, count: V), pb = pa
        let first = context / 2
        for c in 0..<n {
            let chunk = window(tokens, c, context: context, bos: bos)
            let la = try a.forward(tokens: chunk, cache: a.makeCache(capacity: context), logitsFrom: first)
            let lb = try b.forward(tokens: chunk, cache: b.makeCache(capacity: context), logitsFrom: first)
            for j in first..<(context - 1) {
                let ma = la.withUnsafeBufferPointer { logSoftmaxDouble($0.baseAddress! + (j - first) * V, count: V, into: &pa) }
                let mb = lb.withUnsafeBufferPointer { logSoftmaxDouble($0.baseAddress! + (j - first) * V, count: V, into: &pb) }
                let t = chunk[j + 1]
                nllA -= pa[t]
                nllB -= pb[t]
                kld += klDivergence(logP: pa, logQ: pb, count: V)
                if ma == mb { agree += 1 }
                scored += 1
            }
            progress(c + 1, n)
        }
        func result(_ nll: Double) -> Result {
            Result(perplexity: exp(nll / Double(scored)), meanNLL: nll / Double(scored), scoredTokens: scored, chunks: n)
        }
        return Comparison(reference: result(nllA), candidate: result(nllB), meanKLD: kld / Double(scored),
                          top1Agreement: Double(agree) / Double(scored))
    }

    /// −log softmax(row)[target], in Double.
    static func negativeLogLikelihood(_ logits: [Float], row: Int, V: Int, target: Int) -> Double {
        var m = -Double.infinity
        for v in 0..<V { m = max(m, Double(logits[row * V + v])) }
        var z = 0.0
        for v in 0..<V { z += exp(Double(logits[row * V + v]) - m) }
        return -(Double(logits[row * V + target]) - m - log(z))
    }
}
