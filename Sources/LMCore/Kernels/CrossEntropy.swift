#if canImport(Glibc)
import Glibc
#endif

/// Softmax + cross-entropy over rows of logits (N, V): probs (N, V) = softmax (may alias
/// logits), losses (N) = −log probs[target]. A target < 0 is ignored (loss 0).
public func crossEntropyForward(losses: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                                logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>,
                                N: Int, V: Int, pool: ThreadPool) {
    pool.parallelFor(N, minimumPerThread: 4) { rows in
        for n in rows {
            let p = probs + n * V
            if p != UnsafeMutablePointer(mutating: logits + n * V) { p.update(from: logits + n * V, count: V) }
            softmaxRow(p, valid: V, count: V)
            let t = Int(targets[n])
            losses[n] = t >= 0 ? -Float(log(Double(max(p[t], Float.leastNormalMagnitude)))) : 0
        }
    }
}

/// Backward of softmax + cross-entropy: dlogits (N, V) += (probs − onehot(target)) · dloss,
/// for rows whose target is ≥ 0. `dloss` is the gradient of the mean loss per row (1 / count).
public func crossEntropyBackward(dlogits: UnsafeMutablePointer<Float>, probs: UnsafePointer<Float>,
                                 targets: UnsafePointer<Int32>, dloss: Float, N: Int, V: Int, pool: ThreadPool) {
    pool.parallelFor(N, minimumPerThread: 4) { rows in
        for n in rows {
            let t = Int(targets[n])
            guard t >= 0 else { continue }
            let p = probs + n * V, d = dlogits + n * V
            for v in 0..<V { d[v] += p[v] * dloss }
            d[t] -= dloss
        }
    }
}
