import LMCore

/// How the next token is chosen. Defaults follow llama.cpp.
///
/// The chain, in order: repetition penalty over the last `repeatLastN` tokens → top-k →
/// top-p → min-p → temperature → a seeded draw. Temperature 0 means greedy (argmax, ties to
/// the lowest id), and so does any temperature too small to divide by (`isGreedy`: below about
/// 3e-39, where 1/T overflows Float). Top-k 0, top-p 1 and min-p 0 disable those stages.
public struct SamplerSettings: Codable, Sendable, Equatable {
    public var temperature: Float = 0.8
    public var topK: Int = 40
    public var topP: Float = 0.95
    public var minP: Float = 0.05
    public var repeatPenalty: Float = 1.0
    public var repeatLastN: Int = 64
    public var seed: UInt64 = 0

    public init() {}

    /// Longest repetition window (`--repeat-last-n`, `/set repeat_last_n`): the sampler keeps
    /// a buffer of this many tokens.
    public static let maxRepeatLastN = 1 << 20

    /// Whether sampling is argmax: temperature 0, or one so small that 1/T is not a finite Float
    /// (1e-45 and every T ≲ 2.9e-39) — dividing by it would turn the logits into inf and NaN,
    /// and the limit T → 0 of the draw is the argmax anyway.
    public var isGreedy: Bool { !(1 / temperature).isFinite }

    public static var greedy: SamplerSettings {
        var s = SamplerSettings()
        s.temperature = 0
        return s
    }

    enum CodingKeys: String, CodingKey {
        case temperature, topK = "top_k", topP = "top_p", minP = "min_p"
        case repeatPenalty = "repeat_penalty", repeatLastN = "repeat_last_n", seed
    }

    /// Throws a one-line error naming the bad value and its valid range.
    public func validate() throws {
        func bad(_ name: String, _ value: Any, _ range: String) -> LMError {
            LMError(.invalidArgument, "\(name) \(value) is out of range: use \(range)")
        }
        guard temperature.isFinite, temperature >= 0 else { throw bad("--temperature", temperature, "a value ≥ 0 (0 = greedy)") }
        guard topK >= 0 else { throw bad("--top-k", topK, "an integer ≥ 0 (0 = off)") }
        guard topP.isFinite, topP > 0, topP <= 1 else { throw bad("--top-p", topP, "a value in (0, 1] (1 = off)") }
        guard minP.isFinite, minP >= 0, minP <= 1 else { throw bad("--min-p", minP, "a value in [0, 1] (0 = off)") }
        guard repeatPenalty.isFinite, repeatPenalty > 0 else { throw bad("--repeat-penalty", repeatPenalty, "a value > 0 (1 = off)") }
        guard repeatLastN >= 0, repeatLastN <= Self.maxRepeatLastN else {
            throw bad("--repeat-last-n", repeatLastN, "an integer in 0...\(Self.maxRepeatLastN)")
        }
    }
}
