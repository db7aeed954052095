import Foundation
import LMCore
import LMModels
import LMTokenizers

/// Texts through a BERT model: tokenize (with `[CLS]`/`[SEP]`, truncated to `maxLength`), pack,
/// and classify or embed. Used by `lm classify`, `lm embed` and the fine-tuning evaluation.
///
/// ```swift
/// let p = try BertTextPipeline(folder: "models/sentiment")
/// let probs = try p.probabilities(["what a wonderful film"])   // [[0.002, 0.998]]
/// ```
public final class BertTextPipeline {
    public let model: BertModel
    public let tokenizer: any Tokenizer
    /// Longest input in tokens, special tokens included; longer texts are cut.
    public let maxLength: Int

    public init(model: BertModel, tokenizer: any Tokenizer, maxLength: Int? = nil) throws {
        self.model = model
        self.tokenizer = tokenizer
        let limit = model.config.maxPositionEmbeddings
        if let maxLength, maxLength < 3 || maxLength > limit {
            throw LMError(.invalidArgument, "--max-length \(maxLength) must be in 3...\(limit) (the model's positions)")
        }
        self.maxLength = maxLength ?? limit
        guard tokenizer.vocabularySize <= model.config.vocabSize else {
            throw LMError(.invalidConfig, "the tokenizer has \(tokenizer.vocabularySize) ids but the model only \(model.config.vocabSize)")
        }
    }

    /// Loads a BERT folder and its tokenizer; with `classifier`, a folder without a
    /// classification head is an error.
    public convenience init(folder: String, maxLength: Int? = nil, classifier: Bool = false, pool: ThreadPool = Threads.shared) throws {
        let model = try ModelRegistry.loadBert(folder: folder, pool: pool)
        if classifier && model.labels == nil {
            throw LMError(.invalidConfig, "'\(folder)' has no classification head (classifier.weight) — fine-tune one with lm finetune --task classify")
        }
        guard let tok = try TokenizerLoader.find(inModelFolder: folder) else {
            throw LMError(.fileNotFound, "'\(folder)' has no tokenizer (vocab.txt or tokenizer.json) — copy the tokenizer files of the model it came from")
        }
        try self.init(model: model, tokenizer: tok, maxLength: maxLength)
    }

    /// One text as model input; `fullLength` is its token count before truncation.
    public func encode(_ text: String) throws -> (ids: [Int], fullLength: Int) {
        let full = try tokenizer.encodePair(text)
        if full.ids.count <= maxLength { return (full.ids, full.ids.count) }
        return (try tokenizer.encodePair(text, truncation: Truncation(maxLength: maxLength)).ids, full.ids.count)
    }

    /// Classification logits, one row of K per sequence of token ids.
    public func logits(ids: [[Int]]) throws -> [[Float]] {
        let K = model.labels?.count ?? 0
        let logits = try model.classificationLogits(BertBatch(sequences: ids))
        return (0..<ids.count).map { Array(logits[$0 * K..<($0 + 1) * K]) }
    }

    /// Class probabilities (softmax of the logits), one row per sequence of token ids.
    public func probabilities(ids: [[Int]]) throws -> [[Float]] {
        try logits(ids: ids).map { row in
            var p = row
            p.withUnsafeMutableBufferPointer { softmaxForward(out: $0.baseAddress!, inp: $0.baseAddress!, N: 1, C: row.count) }
            return p
        }
    }

    public func probabilities(_ texts: [String]) throws -> [[Float]] {
        try probabilities(ids: texts.map { try encode($0).ids })
    }

    /// L2-normalised mean-pooled sentence embeddings, one row per sequence of token ids.
    public func embeddings(ids: [[Int]]) throws -> [[Float]] {
        let C = model.config.hiddenSize
        let e = try model.sentenceEmbeddings(BertBatch(sequences: ids))
        return (0..<ids.count).map { Array(e[$0 * C..<($0 + 1) * C]) }
    }

    /// The class names of the model (its `id2label`).
    public var labels: [String] { model.labels ?? [] }
}

/// Labelled sentences from a GLUE-style TSV: a header naming a `sentence` and a `label` column,
/// then one example per line. Labels are class indices (`0`, `1`) or class names.
public struct LabelledExamples: Sendable {
    public var sentences: [String]
    public var labels: [Int]
    /// Line numbers (1-based, the header is line 1) of the examples.
    public var lines: [Int]

    public var count: Int { sentences.count }

    /// Reads `path`; `labelNames` maps names (and indices) to classes. Errors name the line.
    public init(tsv path: String, labelNames: [String]) throws {
        let rows = try TextFile.readLines(path, what: "TSV", expecting: "a TSV file with a sentence<TAB>label header")
        guard let header = rows.first else { throw LMError(.invalidInput, "'\(path)' is empty — it needs a sentence<TAB>label header and examples") }
        let columns = header.split(separator: "\t", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let si = columns.firstIndex(of: "sentence"), let li = columns.firstIndex(of: "label") else {
            throw LMError(.invalidInput, "\(path):1: the header must name a 'sentence' and a 'label' column separated by a TAB (found: \(columns.joined(separator: ", ")))")
        }
        var index: [String: Int] = [:]
        for (i, name) in labelNames.enumerated() { index[name] = i; index[String(i)] = i }
        sentences = []; labels = []; lines = []
        for (r, row) in rows.enumerated().dropFirst() {
            let line = r + 1
            if row.allSatisfy(\.isWhitespace) { continue }
            let parts = row.split(separator: "\t", omittingEmptySubsequences: false)
            guard parts.count > max(si, li) else {
                throw LMError(.invalidInput, "\(path):\(line): expected \(columns.count) TAB-separated columns (sentence and label), found \(parts.count)")
            }
            let label = parts[li].trimmingCharacters(in: .whitespaces)
            guard let k = index[label] else {
                throw LMError(.invalidInput, "\(path):\(line): label '\(label)' is not one of \(labelNames.enumerated().map { "\($0.offset)/\($0.element)" }.joined(separator: ", ")) — fix the line (labels are class names or indices)")
            }
            let sentence = parts[si].trimmingCharacters(in: .whitespaces)
            guard !sentence.isEmpty else { throw LMError(.invalidInput, "\(path):\(line): the sentence is empty") }
            sentences.append(sentence); labels.append(k); lines.append(line)
        }
        guard !sentences.isEmpty else { throw LMError(.invalidInput, "'\(path)' has a header but no examples") }
    }
}

/// Accuracy, per-class precision / recall / F1 and the confusion matrix of predictions.
public struct ClassificationMetrics: Codable, Sendable, Equatable {
    public let labels: [String]
    /// confusion[truth][predicted]
    public let confusion: [[Int]]

    public init(labels: [String], truth: [Int], predicted: [Int]) {
        self.labels = labels
        var m = Array(repeating: Array(repeating: 0, count: labels.count), count: labels.count)
        for (t, p) in zip(truth, predicted) { m[t][p] += 1 }
        confusion = m
    }

    public var total: Int { confusion.joined().reduce(0, +) }
    public var accuracy: Double { total == 0 ? 0 : Double((0..<labels.count).map { confusion[$0][$0] }.reduce(0, +)) / Double(total) }
    public func precision(_ k: Int) -> Double {
        let predicted = (0..<labels.count).map { confusion[$0][k] }.reduce(0, +)
        return predicted == 0 ? 0 : Double(confusion[k][k]) / Double(predicted)
    }
    public func recall(_ k: Int) -> Double {
        let actual = confusion[k].reduce(0, +)
        return actual == 0 ? 0 : Double(confusion[k][k]) / Double(actual)
    }
    public func f1(_ k: Int) -> Double {
        let p = precision(k), r = recall(k)
        return p + r == 0 ? 0 : 2 * p * r / (p + r)
    }
    /// The class whose precision, recall and F1 are reported for a binary task (the last one,
    /// "positive" / 1), as scikit-learn's default `pos_label=1`.
    public var positiveClass: Int { labels.count - 1 }
    public var macroF1: Double { (0..<labels.count).map(f1).reduce(0, +) / Double(max(1, labels.count)) }
    /// F1 of the positive class for two classes, macro F1 otherwise.
    public var f1: Double { labels.count == 2 ? f1(positiveClass) : macroF1 }
    public var precision: Double { labels.count == 2 ? precision(positiveClass) : (0..<labels.count).map(precision).reduce(0, +) / Double(labels.count) }
    public var recall: Double { labels.count == 2 ? recall(positiveClass) : (0..<labels.count).map(recall).reduce(0, +) / Double(labels.count) }

    /// A short report: accuracy, precision, recall, F1, then the confusion matrix as a table.
    public var report: String {
        let scope = labels.count == 2 ? " (\(labels[positiveClass]))" : " (macro)"
        var s = String(format: "accuracy %.2f %%  precision %.4f  recall %.4f  F1 %.4f%@  (%d examples)\n",
                       100 * accuracy, precision, recall, f1, scope, total)
        let width = max(9, (labels.map(\.count).max() ?? 0) + 2)
        func pad(_ t: String) -> String { String(repeating: " ", count: max(0, width - t.count)) + t }
        s += "confusion matrix (rows: true, columns: predicted)\n"
        s += pad("") + labels.map(pad).joined() + "\n"
        for (i, row) in confusion.enumerated() { s += pad(labels[i]) + row.map { pad(String($0)) }.joined() + "\n" }
        return s
    }

    public var json: [String: Any] {
        ["accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1, "macro_f1": macroF1,
         "confusion_matrix": confusion, "labels": labels, "examples": total]
    }
}
