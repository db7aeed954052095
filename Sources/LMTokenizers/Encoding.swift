import LMCore

/// Model inputs for one sequence (or pair): ids, token type ids and the attention mask, all of
/// one length. Padding positions have the pad id, type id 0 and mask 0.
public struct Encoding: Equatable, Sendable {
    public var ids: [Int]
    public var typeIds: [Int]
    public var attentionMask: [Int]

    public init(ids: [Int], typeIds: [Int], attentionMask: [Int]) {
        self.ids = ids
        self.typeIds = typeIds
        self.attentionMask = attentionMask
    }
}

/// How sequences longer than `maxLength` (special tokens included) are cut, as in Hugging Face:
/// tokens are removed from the end.
public struct Truncation: Equatable, Sendable {
    public enum Strategy: String, Sendable {
        /// For a pair, cut the longer sequence first (Hugging Face's default `longest_first`).
        case longestFirst
        case onlyFirst
        case onlySecond
    }

    public var maxLength: Int
    public var strategy: Strategy

    public init(maxLength: Int, strategy: Strategy = .longestFirst) {
        self.maxLength = maxLength
        self.strategy = strategy
    }
}

/// How a batch is padded (on the right, with the tokenizer's pad token).
public enum Padding: Equatable, Sendable {
    case none
    /// To the longest sequence of the batch.
    case longest
    /// To exactly this length (sequences must not be longer; truncate first).
    case fixed(Int)
}

extension Tokenizer {
    /// Encodes one text or a pair with special tokens (by default as the reference tokenizer
    /// does), truncated when asked: what a BERT-style model takes as input.
    ///
    /// ```swift
    /// let e = try bert.encodePair("How old are you?", "I am six.", truncation: Truncation(maxLength: 128))
    /// // e.ids = [CLS] how old ... [SEP] i am six . [SEP]; e.typeIds 0… then 1…; e.attentionMask all 1
    /// ```
    public func encodePair(_ first: String, _ second: String? = nil, addSpecialTokens: Bool? = nil,
                           truncation: Truncation? = nil, parseSpecialTokens: Bool = false) throws -> Encoding {
        let add = addSpecialTokens ?? addsSpecialTokensByDefault
        var a = try encode(first, parseSpecialTokens: parseSpecialTokens)
        var b = try second.map { try encode($0, parseSpecialTokens: parseSpecialTokens) }
        if let truncation {
            let special = add ? postProcessor.addedTokenCount(pair: b != nil) : 0
            try Self.truncate(&a, &b, to: truncation, specialTokens: special)
        }
        if add {
            let (ids, types) = postProcessor.apply(a, b)
            return Encoding(ids: ids, typeIds: types, attentionMask: Array(repeating: 1, count: ids.count))
        }
        let ids = a + (b ?? [])
        let types = Array(repeating: 0, count: a.count) + Array(repeating: 1, count: b?.count ?? 0)
        return Encoding(ids: ids, typeIds: types, attentionMask: Array(repeating: 1, count: ids.count))
    }

    /// Encodes a batch of texts (or pairs: `pairs` must have the same count), truncates and pads.
    /// Padding needs a pad token; a tokenizer without one throws unless `padding` is `.none`.
    public func encodeBatch(_ texts: [String], pairs: [String]? = nil, addSpecialTokens: Bool? = nil,
                            truncation: Truncation? = nil, padding: Padding = .longest,
                            parseSpecialTokens: Bool = false) throws -> [Encoding] {
        if let pairs, pairs.count != texts.count {
            throw LMError(.invalidArgument, "encodeBatch got \(texts.count) texts but \(pairs.count) pair texts; pass one pair text per text")
        }
        var out: [Encoding] = []
        out.reserveCapacity(texts.count)
        for (i, t) in texts.enumerated() {
            out.append(try encodePair(t, pairs?[i], addSpecialTokens: addSpecialTokens,
                                      truncation: truncation, parseSpecialTokens: parseSpecialTokens))
        }
        let target: Int
        switch padding {
        case .none: return out
        case .longest: target = out.map(\.ids.count).max() ?? 0
        case .fixed(let n):
            if let long = out.firstIndex(where: { $0.ids.count > n }) {
                throw LMError(.invalidArgument, "text \(long) of the batch has \(out[long].ids.count) tokens, more than the fixed padding length \(n); pass truncation: Truncation(maxLength: \(n))")
            }
            target = n
        }
        if out.allSatisfy({ $0.ids.count == target }) { return out }
        guard let pad = specialTokens.pad else {
            throw LMError(.invalidConfig, "this tokenizer has no pad token, so a batch of different lengths cannot be padded; use padding: .none")
        }
        for i in out.indices {
            let n = target - out[i].ids.count
            out[i].ids += repeatElement(pad, count: n)
            out[i].typeIds += repeatElement(0, count: n)
            out[i].attentionMask += repeatElement(0, count: n)
        }
        return out
    }

    /// Cuts `a` (and `b`) so that they and `specialTokens` fit `truncation.maxLength`.
    /// `longestFirst` on a pair matches Hugging Face: the shorter (or, on a tie, the first)
    /// sequence keeps at most half of the room, the other one the rest.
    static func truncate(_ a: inout [Int], _ b: inout [Int]?, to truncation: Truncation, specialTokens: Int) throws {
        let room = truncation.maxLength - specialTokens
        if room < 0 {
            throw LMError(.invalidArgument, "max length \(truncation.maxLength) is shorter than the \(specialTokens) special tokens; use a max length of at least \(specialTokens)")
        }
        guard var second = b else {
            if truncation.strategy == .onlySecond {
                throw LMError(.invalidArgument, "truncation strategy onlySecond needs a pair of texts; use longestFirst for a single text")
            }
            if a.count > room { a.removeLast(a.count - room) }
            return
        }
        if a.count + second.count <= room { return }
        switch truncation.strategy {
        case .longestFirst:
            if a.count > second.count {
                let keepSecond = min(second.count, room / 2)
                second.removeLast(second.count - keepSecond)
                a.removeLast(a.count - (room - keepSecond))
            } else {
                let keepFirst = min(a.count, room / 2)
                a.removeLast(a.count - keepFirst)
                second.removeLast(second.count - (room - keepFirst))
            }
        case .onlyFirst:
            let keep = room - second.count
            if keep < 0 {
                throw LMError(.invalidArgument, "the second text alone has \(second.count) tokens, more than max length \(truncation.maxLength) allows; use longestFirst")
            }
            a.removeLast(a.count - keep)
        case .onlySecond:
            let keep = room - a.count
            if keep < 0 {
                throw LMError(.invalidArgument, "the first text alone has \(a.count) tokens, more than max length \(truncation.maxLength) allows; use longestFirst")
            }
            second.removeLast(second.count - keep)
        }
        b = second
    }
}
