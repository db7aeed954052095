import LMCore

/// Turns text into token ids and back. (Placeholder until the tokenizer layer lands.)
public protocol Tokenizer {
    func encode(_ text: String) throws -> [Int]
    func decode(_ ids: [Int]) -> String
    var vocabularySize: Int { get }
}
