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

/// One embedding table and the ids that index it (BERT: words, positions, token types).
public struct EmbeddingLookup {
    public let table: UnsafePointer<Float>
    public let ids: UnsafePointer<Int32>
    public init(table: UnsafePointer<Float>, ids: UnsafePointer<Int32>) { self.table = table; self.ids = ids }
}

/// out (N, C) = Σ_k lookups[k].table[lookups[k].ids[n]]: BERT's word + position + token-type
/// embeddings. Ids must already be validated against each table.
public func embeddingSumForward(out: UnsafeMutablePointer<Float>, lookups: [EmbeddingLookup], N: Int, C: Int,
                                pool: ThreadPool? = nil) {
    let body = { (rows: Range<Int>) in
        for n in rows {
            let o = out + n * C
            o.update(from: lookups[0].table + Int(lookups[0].ids[n]) * C, count: C)
            for l in lookups.dropFirst() {
                let e = l.table + Int(l.ids[n]) * C
                for c in 0..<C { o[c] += e[c] }
            }
        }
    }
    if let pool, N >= 64 { pool.parallelFor(N, body) } else { body(0..<N) }
}

/// Backward of `embeddingSumForward` (accumulates): dtable_k[ids_k[n]] += dout[n] for every
/// table with a gradient. Split by channel, so repeated ids never race and the result does not
/// depend on the thread count.
public func embeddingSumBackward(dtables: [UnsafeMutablePointer<Float>?], lookups: [EmbeddingLookup],
                                 dout: UnsafePointer<Float>, N: Int, C: Int, pool: ThreadPool) {
    pool.parallelFor(C, grain: 16, minimumPerThread: 32) { cols in
        for (k, l) in lookups.enumerated() {
            guard let dt = dtables[k] else { continue }
            for n in 0..<N {
                let d = dout + n * C, row = dt + Int(l.ids[n]) * C
                for c in cols { row[c] += d[c] }
            }
        }
    }
}
