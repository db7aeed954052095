/// How special tokens are placed around one sequence or a pair, with token type ids: the
/// `TemplateProcessing` of Hugging Face's tokenizer.json.
///
/// ```swift
/// let bert = PostProcessor.bert(cls: 101, sep: 102)
/// bert.apply([7592], [2088])   // ids [101, 7592, 102, 2088, 102], typeIds [0, 0, 0, 1, 1]
/// ```
public struct PostProcessor: Equatable, Sendable {
    /// One element of a template.
    public enum Item: Equatable, Sendable {
        /// A fixed token id with its token type id.
        case special(id: Int, typeId: Int)
        /// The first (`0`) or second (`1`) input sequence, all of it with `typeId`.
        case sequence(index: Int, typeId: Int)
    }

    public var single: [Item]
    public var pair: [Item]

    public init(single: [Item], pair: [Item]) {
        self.single = single
        self.pair = pair
    }

    /// No special tokens; a pair is the two sequences one after the other (GPT-2).
    public static let none = PostProcessor(
        single: [.sequence(index: 0, typeId: 0)],
        pair: [.sequence(index: 0, typeId: 0), .sequence(index: 1, typeId: 1)])

    /// `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]`, type ids 0 for A and 1 for B.
    public static func bert(cls: Int, sep: Int) -> PostProcessor {
        PostProcessor(
            single: [.special(id: cls, typeId: 0), .sequence(index: 0, typeId: 0), .special(id: sep, typeId: 0)],
            pair: [.special(id: cls, typeId: 0), .sequence(index: 0, typeId: 0), .special(id: sep, typeId: 0),
                   .sequence(index: 1, typeId: 1), .special(id: sep, typeId: 1)])
    }

    /// `<s> A` (and `<s> A </s>` with `eos`); a pair repeats the pattern for B (Llama's tokenizer).
    public static func bosEos(bos: Int?, eos: Int?) -> PostProcessor {
        var single: [Item] = []
        var pair: [Item] = []
        if let bos { single.append(.special(id: bos, typeId: 0)) }
        single.append(.sequence(index: 0, typeId: 0))
        if let eos { single.append(.special(id: eos, typeId: 0)) }
        pair = single
        if let bos { pair.append(.special(id: bos, typeId: 1)) }
        pair.append(.sequence(index: 1, typeId: 1))
        if let eos { pair.append(.special(id: eos, typeId: 1)) }
        return PostProcessor(single: single, pair: pair)
    }

    /// Number of special tokens added to a single sequence (`pair: false`) or a pair.
    public func addedTokenCount(pair isPair: Bool) -> Int {
        (isPair ? pair : single).reduce(0) { n, item in
            if case .special = item { return n + 1 }
            return n
        }
    }

    /// Places `first` (and `second`) into the template.
    public func apply(_ first: [Int], _ second: [Int]?) -> (ids: [Int], typeIds: [Int]) {
        var ids: [Int] = []
        var typeIds: [Int] = []
        ids.reserveCapacity(first.count + (second?.count ?? 0) + 4)
        for item in (second == nil ? single : pair) {
            switch item {
            case let .special(id, typeId):
                ids.append(id)
                typeIds.append(typeId)
            case let .sequence(index, typeId):
                let seq = index == 0 ? first : (second ?? [])
                ids.append(contentsOf: seq)
                typeIds.append(contentsOf: repeatElement(typeId, count: seq.count))
            }
        }
        return (ids, typeIds)
    }
}
