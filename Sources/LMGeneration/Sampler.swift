import LMCore

/// Picks the next token from a row of logits with the chain `SamplerSettings` describes.
///
/// Every buffer is allocated once, at init, for the vocabulary size: sampling a token
/// allocates nothing. The draw uses a `SeededRNG`, so a seed fixes the sequence.
///
/// ```swift
/// let sampler = try Sampler(settings: settings, vocabularySize: model.vocabularySize)
/// let next = sampler.sample(logits: logits)
/// sampler.accept(next)
/// ```
public final class Sampler {
    public private(set) var settings: SamplerSettings
    public let vocabularySize: Int
    private var rng: SeededRNG

    // Candidate set: ids and logits; `count` valid, the first `sorted` in descending order.
    private let ids: UnsafeMutablePointer<Int32>
    private let vals: UnsafeMutablePointer<Float>
    private let probs: UnsafeMutablePointer<Float>
    private var count = 0
    // Repetition window (ring buffer) and a stamp per id to penalise each token once.
    private let recent: UnsafeMutablePointer<Int32>
    private var recentCount = 0, recentHead = 0
    private let stamps: UnsafeMutablePointer<UInt32>
    private var stamp: UInt32 = 0

    public init(settings: SamplerSettings, vocabularySize: Int) throws {
        try settings.validate()
        guard vocabularySize > 0 else { throw LMError(.invalidArgument, "vocabulary size must be positive") }
        self.settings = settings
        self.vocabularySize = vocabularySize
        rng = SeededRNG(seed: settings.seed)
        ids = .allocate(capacity: vocabularySize)
        vals = .allocate(capacity: vocabularySize)
        probs = .allocate(capacity: vocabularySize)
        recent = .allocate(capacity: max(1, settings.repeatLastN))
        stamps = .allocate(capacity: vocabularySize)
        stamps.initialize(repeating: 0, count: vocabularySize)
    }

    deinit {
        ids.deallocate(); vals.deallocate(); probs.deallocate(); recent.deallocate(); stamps.deallocate()
    }

    /// Changes the settings; a new seed restarts the random stream. The window is kept.
    public func update(_ newSettings: SamplerSettings) throws {
        try newSettings.validate()
        let reseed = newSettings.seed != settings.seed
        if newSettings.repeatLastN != settings.repeatLastN {
            throw LMError(.invalidArgument, "repeat_last_n cannot change on a live sampler; make a new one")
        }
        settings = newSettings
        if reseed { rng = SeededRNG(seed: newSettings.seed) }
    }

    /// The random stream's state (saved with a session to resume it exactly).
    public var rngState: [UInt64] {
        get { rng.stateWords }
    }

    public func restoreRNG(_ words: [UInt64]) throws { rng = try SeededRNG(stateWords: words) }

    /// Records a token for the repetition window (prompt tokens and generated ones).
    public func accept(_ token: Int) {
        let n = settings.repeatLastN
        guard n > 0 else { return }
        recent[recentHead] = Int32(clamping: token)
        recentHead = (recentHead + 1) % n
        recentCount = min(recentCount + 1, n)
    }

    /// Forgets the repetition window.
    public func resetHistory() { recentCount = 0; recentHead = 0 }

    /// Chooses the next token from `logits` (V values; not modified).
    public func sample(logits: UnsafeBufferPointer<Float>) -> Int {
        precondition(logits.count == vocabularySize, "logits must have vocabularySize entries")
        let s = settings
        let V = vocabularySize
        for i in 0..<V { vals[i] = logits[i]; ids[i] = Int32(i) }
        count = V
        applyRepetitionPenalty(s.repeatPenalty)
        // Temperature 0, or too small to divide by: argmax (1/T = inf would make the max's
        // scaled logit 0 · inf = NaN).
        if s.isGreedy { return argmax() }

        // top-k: keep the k largest, sorted descending.
        if s.topK > 0 && s.topK < count { selectTopK(s.topK) }
        // Probabilities of the current candidates (before temperature, as llama.cpp).
        var maxLogit = -Float.infinity
        for i in 0..<count where vals[i] > maxLogit { maxLogit = vals[i] }
        if s.topP < 1 { applyTopP(s.topP, maxLogit: maxLogit, sorted: s.topK > 0 && s.topK < V) }
        // min-p: drop candidates below min_p × the most likely one's probability.
        if s.minP > 0 {
            let threshold = maxLogit + logf(s.minP)
            var w = 0
            for i in 0..<count where vals[i] >= threshold {
                vals[w] = vals[i]; ids[w] = ids[i]; w += 1
            }
            count = max(w, 1)
        }
        // Temperature, softmax and a seeded draw in candidate order.
        let invT = 1 / s.temperature
        var z: Float = 0
        for i in 0..<count {
            let e = VectorMath.exp((vals[i] - maxLogit) * invT)
            probs[i] = e
            z += e
        }
        let r = rng.nextFloat() * z
        var acc: Float = 0
        for i in 0..<count {
            acc += probs[i]
            if r < acc { return Int(ids[i]) }
        }
        return Int(ids[count - 1])
    }

    /// Index of the largest logit, ties to the lowest id.
    private func argmax() -> Int {
        var best = 0
        var bestVal = vals[0]
        for i in 1..<count where vals[i] > bestVal { best = i; bestVal = vals[i] }
        return Int(ids[best])
    }

    private func applyRepetitionPenalty(_ penalty: Float) {
        guard penalty != 1, recentCount > 0 else { return }
        stamp &+= 1
        if stamp == 0 { stamps.initialize(repeating: 0, count: vocabularySize); stamp = 1 }
        for i in 0..<recentCount {
            let t = Int(recent[i])
            guard t >= 0, t < vocabularySize, stamps[t] != stamp else { continue }
            stamps[t] = stamp
            vals[t] = vals[t] > 0 ? vals[t] / penalty : vals[t] * penalty
        }
    }

    @inline(__always) private func swapAt(_ a: Int, _ b: Int) {
        let v = vals[a]; vals[a] = vals[b]; vals[b] = v
        let d = ids[a]; ids[a] = ids[b]; ids[b] = d
    }

    /// True when candidate a ranks above b: larger logit, then lower id.
    @inline(__always) private func above(_ a: Int, _ b: Int) -> Bool {
        vals[a] > vals[b] || (vals[a] == vals[b] && ids[a] < ids[b])
    }

    /// Keeps the k best candidates, sorted descending (a min-heap of size k over all of them).
    private func selectTopK(_ k: Int) {
        // Heap of the k best so far at [0, k): root = the worst of them.
        func siftDownMin(_ start: Int, _ n: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && above(m, l) { m = l }
                if r < n && above(m, r) { m = r }
                if m == i { return }
                swapAt(i, m); i = m
            }
        }
        for i in stride(from: k / 2 - 1, through: 0, by: -1) { siftDownMin(i, k) }
        for i in k..<count where above(i, 0) {
            swapAt(i, 0)
            siftDownMin(0, k)
        }
        // Heap-sort the k kept ones into descending order.
        var n = k
        while n > 1 {
            swapAt(0, n - 1)
            n -= 1
            siftDownMin(0, n)
        }
        count = k
    }

    /// Keeps the most likely candidates whose probability mass first reaches `p`, in
    /// descending order. Unsorted candidates are popped from a max-heap one at a time, so only
    /// the kept ones are ever sorted.
    private func applyTopP(_ p: Float, maxLogit: Float, sorted: Bool) {
        var z: Float = 0
        for i in 0..<count { z += VectorMath.exp(vals[i] - maxLogit) }
        var mass: Float = 0
        var kept = 0
        if sorted {
            while kept < count {
                mass += VectorMath.exp(vals[kept] - maxLogit) / z
                kept += 1
                if mass >= p { break }
            }
            count = kept
            return
        }
        // Max-heap over [0, n); each pop moves the best remaining candidate to slot n − 1.
        var n = count
        for i in stride(from: n / 2 - 1, through: 0, by: -1) { siftDownMax(i, n) }
        while n > 0 {
            swapAt(0, n - 1)
            n -= 1
            siftDownMax(0, n)
            mass += VectorMath.exp(vals[n] - maxLogit) / z
            kept += 1
            if mass >= p { break }
        }
        // The kept candidates sit at [count − kept, count), best last: move them to the front, best first.
        var lo = count - kept, hi = count - 1
        while lo < hi { swapAt(lo, hi); lo += 1; hi -= 1 }
        let from = count - kept
        if from > 0 {
            for i in 0..<kept { vals[i] = vals[from + i]; ids[i] = ids[from + i] }
        }
        count = kept
    }

    private func siftDownMax(_ start: Int, _ n: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n && above(l, m) { m = l }
            if r < n && above(r, m) { m = r }
            if m == i { return }
            swapAt(i, m); i = m
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
