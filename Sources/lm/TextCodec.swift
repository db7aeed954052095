import LMCore
import LMTokenizers

/// What `lm generate` needs from a tokenizer: encode a prompt, stream-decode new tokens.
struct TextCodec {
    let encode: (String) throws -> [Int]
    let decode: ([Int]) -> String
    /// A fresh streaming decoder: feed ids, get complete UTF-8 text.
    let makeStream: () -> TextStream

    /// The tokenizer inside a model folder, or nil when it has none.
    static func find(inModelFolder folder: String) throws -> TextCodec? {
        nil
    }
}

/// Streaming detokenization state for one generation.
final class TextStream {
    private let appendBody: (Int) -> String
    private let flushBody: () -> String
    init(append: @escaping (Int) -> String, flush: @escaping () -> String) {
        appendBody = append
        flushBody = flush
    }
    func append(_ token: Int) -> String { appendBody(token) }
    func flush() -> String { flushBody() }
}
