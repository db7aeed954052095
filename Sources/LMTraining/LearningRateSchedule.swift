import LMCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The learning rate at each optimizer step (0-based).
///
/// ```swift
/// // shakespeare-cpu: 100 warm-up steps to 1e-3, cosine down to 1e-4 at step 2000.
/// let schedule = LearningRateSchedule(maxLR: 1e-3, minLR: 1e-4, warmupSteps: 100, decaySteps: 2000)
/// try schedule.validate()
/// let lr = schedule.learningRate(at: step)
/// ```
///
/// - `cosine`: nanoGPT's `get_lr`, exactly: `maxLR·(it+1)/(warmup+1)` while `it < warmup`,
///   `minLR` once `it > decaySteps`, else `minLR + ½·(1 + cos(π·(it − warmup)/(decaySteps − warmup)))·(maxLR − minLR)`.
/// - `linear`: Hugging Face's `get_linear_schedule_with_warmup` (exactly, when `minLR = 0`):
///   `maxLR·it/warmup` while `it < warmup`, then a straight line from `maxLR` at `warmup` to
///   `minLR` at `decaySteps`, and `minLR` after. Note the warm-up starts at 0, as in HF.
/// - `constant`: `maxLR` at every step, after the cosine kind's warm-up when `warmupSteps > 0`
///   (HF's `get_constant_schedule_with_warmup` uses `it/warmup`; nanoGPT with `decay_lr = False`
///   is `warmupSteps = 0`). `minLR` and `decaySteps` are ignored.
///
/// When `decaySteps == warmupSteps`, decaying kinds return `minLR` from step `warmupSteps` on.
/// Rates are computed in Double and rounded to Float once.
public struct LearningRateSchedule: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case cosine, constant, linear
    }

    public var kind: Kind
    /// Peak rate, reached at the end of warm-up. > 0.
    public var maxLR: Float
    /// Floor the decaying kinds end at. In [0, maxLR].
    public var minLR: Float
    /// Steps of linear warm-up. ≥ 0.
    public var warmupSteps: Int
    /// Step at which decay reaches `minLR` (nanoGPT's `lr_decay_iters`). ≥ `warmupSteps`.
    public var decaySteps: Int

    public init(kind: Kind = .cosine, maxLR: Float, minLR: Float, warmupSteps: Int, decaySteps: Int) {
        self.kind = kind
        self.maxLR = maxLR
        self.minLR = minLR
        self.warmupSteps = warmupSteps
        self.decaySteps = decaySteps
    }

    enum CodingKeys: String, CodingKey {
        case kind
        case maxLR = "max_lr"
        case minLR = "min_lr"
        case warmupSteps = "warmup_steps"
        case decaySteps = "decay_steps"
    }

    /// The rate for 0-based optimizer step `step` (negative steps count as 0).
    public func learningRate(at step: Int) -> Float {
        let it = Double(max(0, step))
        let lr = Double(maxLR), lo = Double(minLR)
        let warmup = max(0, warmupSteps), decay = decaySteps
        switch kind {
        case .constant:
            return step < warmup ? Float(lr * (it + 1) / Double(warmup + 1)) : maxLR
        case .cosine:
            if step < warmup { return Float(lr * (it + 1) / Double(warmup + 1)) }
            if step > decay || decay <= warmup { return minLR }
            let ratio = (it - Double(warmup)) / Double(decay - warmup)
            let coeff = 0.5 * (1 + cos(Double.pi * ratio))
            return Float(lo + coeff * (lr - lo))
        case .linear:
            if step < warmup { return Float(lr * it / Double(warmup)) }
            if step >= decay || decay <= warmup { return minLR }
            let remaining = Double(decay - step) / Double(decay - warmup)
            return Float(lo + (lr - lo) * remaining)
        }
    }

    /// Throws `LMError(.invalidArgument)` naming the first value out of range.
    public func validate() throws {
        guard maxLR > 0 && maxLR.isFinite else {
            throw LMError(.invalidArgument, "learning rate \(maxLR) must be a finite number > 0")
        }
        guard minLR >= 0 && minLR <= maxLR else {
            throw LMError(.invalidArgument, "minimum learning rate \(minLR) must be in [0, \(maxLR)] (the maximum rate)")
        }
        guard warmupSteps >= 0 else {
            throw LMError(.invalidArgument, "warm-up steps \(warmupSteps) must be ≥ 0")
        }
        guard kind == .constant || decaySteps >= warmupSteps else {
            throw LMError(.invalidArgument,
                          "decay steps \(decaySteps) must be ≥ warm-up steps \(warmupSteps); lower the warm-up or raise the decay steps (usually the total steps)")
        }
    }
}
