/// Tokens that are matched as whole strings in the raw text before the model's own algorithm
/// runs: Hugging Face's `added_tokens` (`<|endoftext|>`, `[MASK]`, `<s>`). Used only when the
/// caller asks to parse special tokens.
///
/// Matching is leftmost-longest on the exact bytes (no normalization), as Hugging Face does for
/// tokens with `normalized: false`.
struct AddedTokens: Sendable {
    struct Token: Sendable {
        var content: [UInt8]
        var id: Int
    }

    /// A piece of the input: ordinary text (a byte range) or the id of an added token.
    enum Segment: Equatable {
        case text(Range<Int>)
        case token(Int)
    }

    private(set) var tokens: [Token] = []
    /// For each first byte, the indices of tokens starting with it, longest first.
    private var byFirstByte: [[Int]] = Array(repeating: [], count: 256)

    var isEmpty: Bool { tokens.isEmpty }

    init(_ list: [(content: String, id: Int)] = []) {
        for (content, id) in list where !content.isEmpty {
            tokens.append(Token(content: Array(content.utf8), id: id))
        }
        for (i, t) in tokens.enumerated() { byFirstByte[Int(t.content[0])].append(i) }
        for b in 0..<256 {
            byFirstByte[b].sort { tokens[$0].content.count > tokens[$1].content.count }
        }
    }

    /// Splits `p` into ordinary text and added tokens.
    func split(_ p: UnsafeBufferPointer<UInt8>) -> [Segment] {
        var out: [Segment] = []
        var textStart = 0
        var i = 0
        let n = p.count
        outer: while i < n {
            for t in byFirstByte[Int(p[i])] {
                let c = tokens[t].content
                if i + c.count <= n, matches(p, i, c) {
                    if textStart < i { out.append(.text(textStart..<i)) }
                    out.append(.token(tokens[t].id))
                    i += c.count
                    textStart = i
                    continue outer
                }
            }
            i += 1
        }
        if textStart < n { out.append(.text(textStart..<n)) }
        return out
    }

    @inline(__always)
    private func matches(_ p: UnsafeBufferPointer<UInt8>, _ i: Int, _ c: [UInt8]) -> Bool {
        for k in 0..<c.count where p[i + k] != c[k] { return false }
        return true
    }
}

/// Runs `ordinary` over the text of `text`, or over its segments between added tokens when
/// `parse` is on: the shared first step of every tokenizer's `encode`.
func encodeSplittingAddedTokens(_ text: String, added: AddedTokens, parse: Bool,
                                _ ordinary: (UnsafeBufferPointer<UInt8>, inout [Int]) throws -> Void) rethrows -> [Int] {
    var copy = text
    return try copy.withUTF8 { p in
        var out: [Int] = []
        out.reserveCapacity(p.count / 3 + 4)
        if !parse || added.isEmpty {
            try ordinary(p, &out)
            return out
        }
        for segment in added.split(p) {
            switch segment {
            case .token(let id): out.append(id)
            case .text(let r): try ordinary(UnsafeBufferPointer(rebasing: p[r]), &out)
            }
        }
        return out
    }
}
