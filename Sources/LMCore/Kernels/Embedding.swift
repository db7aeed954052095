// Legend: B batch, T time, C channels, V vocabulary, NH heads, HS head size.

/// out (T, C) = tokenTable[tokens[t]] + positionTable[start + t] (positions optional).
/// Token ids must already be validated against V (the models do so before calling).
public func embeddingForward(out: UnsafeMutablePointer<Float>,
                             tokens: UnsafePointer<Int32>,
                             tokenTable: UnsafePointer<Float>,      // (V, C)
                             positionTable: UnsafePointer<Float>?,  // (maxT, C)
                             startPosition: Int, T: Int, C: Int) {
    for t in 0..<T {
        let o = out + t * C
        let e = tokenTable + Int(tokens[t]) * C
        if let positionTable {
            let p = positionTable + (startPosition + t) * C
            for c in 0..<C { o[c] = e[c] + p[c] }
        } else {
            o.update(from: e, count: C)
        }
    }
}

/// Backward of `embeddingForward` (accumulates): dtokenTable[tokens[t]] += dout[t] and
/// dpositionTable[start + t] += dout[t]. Split by channel, so repeated tokens never race.
public func embeddingBackward(dtokenTable: UnsafeMutablePointer<Float>?, dpositionTable: UnsafeMutablePointer<Float>?,
                              dout: UnsafePointer<Float>, tokens: UnsafePointer<Int32>,
                              startPosition: Int, B: Int, T: Int, C: Int, pool: ThreadPool) {
    pool.parallelFor(C, grain: 16, minimumPerThread: 32) { cols in
        for b in 0..<B {
            for t in 0..<T {
                let d = dout + (b * T + t) * C
                if let dte = dtokenTable {
                    let row = dte + Int(tokens[b * T + t]) * C
                    for c in cols { row[c] += d[c] }
                }
                if let dpe = dpositionTable {
                    let row = dpe + (startPosition + t) * C
                    for c in cols { row[c] += d[c] }
                }
            }
        }
    }
}
