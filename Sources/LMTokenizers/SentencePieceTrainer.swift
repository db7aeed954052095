import Foundation
import LMCore

/// Options for training a SentencePiece model (libsentencepiece's trainer flags, Llama-style
/// defaults where they differ: unk 0, bos 1, eos 2, no pad).
public struct SentencePieceTrainingOptions: Codable, Equatable, Sendable {
    public enum ModelType: String, Codable, CaseIterable, Sendable {
        case bpe, unigram, char, word
    }

    /// The corpus: a UTF-8 text file, one sentence per line.
    public var input: String
    public var vocabSize: Int
    public var modelType: ModelType
    /// Add the 256 byte pieces `<0x00>`…`<0xFF>` so that any text can be encoded.
    public var byteFallback: Bool
    /// The share of the corpus's characters the alphabet must cover (0.98 ... 1).
    public var characterCoverage: Double
    /// `nmt_nfkc` (the default), `nfkc`, `nmt_nfkc_cf`, `nfkc_cf` or `identity`.
    public var normalization: String
    public var addDummyPrefix: Bool
    public var removeExtraWhitespaces: Bool
    public var splitDigits: Bool
    /// Longest piece in characters (1 ... 512).
    public var maxSentencePieceLength: Int
    /// Lines longer than this many bytes are skipped (≥ 10).
    public var maxSentenceLength: Int
    /// Train on a random sample of this many lines (0: all; otherwise more than 100).
    public var inputSentenceSize: Int
    public var numThreads: Int
    public var userDefinedSymbols: [String]
    public var unkId: Int
    public var bosId: Int
    public var eosId: Int
    public var padId: Int
    /// How the caller's command spells a vocabulary size in its errors, with N for the number:
    /// `lm tokenizer train` says "--vocab-size N", `lm train` "--tokenizer spm:N".
    public var vocabSizeFlag = "--vocab-size N"
    /// Whether the caller offers --character-coverage (errors suggest it only then).
    public var offersCoverageFlag = true

    public init(input: String, vocabSize: Int, modelType: ModelType = .unigram, byteFallback: Bool = false,
                characterCoverage: Double = 0.9995, normalization: String = "nmt_nfkc", addDummyPrefix: Bool = true,
                removeExtraWhitespaces: Bool = true, splitDigits: Bool = false, maxSentencePieceLength: Int = 16,
                maxSentenceLength: Int = 4192, inputSentenceSize: Int = 0,
                numThreads: Int = min(16, max(1, ProcessInfo.processInfo.activeProcessorCount)),
                userDefinedSymbols: [String] = [], unkId: Int = 0, bosId: Int = 1, eosId: Int = 2, padId: Int = -1) {
        self.input = input
        self.vocabSize = vocabSize
        self.modelType = modelType
        self.byteFallback = byteFallback
        self.characterCoverage = characterCoverage
        self.normalization = normalization
        self.addDummyPrefix = addDummyPrefix
        self.removeExtraWhitespaces = removeExtraWhitespaces
        self.splitDigits = splitDigits
        self.maxSentencePieceLength = maxSentencePieceLength
        self.maxSentenceLength = maxSentenceLength
        self.inputSentenceSize = inputSentenceSize
        self.numThreads = numThreads
        self.userDefinedSymbols = userDefinedSymbols
        self.unkId = unkId
        self.bosId = bosId
        self.eosId = eosId
        self.padId = padId
    }

    public static let normalizations = ["nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf", "identity"]

    /// Pieces the trainer adds besides characters and merges: unk/bos/eos/pad, user-defined
    /// symbols and the byte pieces.
    public var metaPieceCount: Int {
        [unkId, bosId, eosId, padId].filter { $0 >= 0 }.count + userDefinedSymbols.count + (byteFallback ? 256 : 0)
    }

    /// The options in libsentencepiece's flag spelling.
    var flags: [(String, String)] {
        var f: [(String, String)] = [
            ("input", input), ("vocab_size", "\(vocabSize)"), ("model_type", modelType.rawValue),
            ("byte_fallback", "\(byteFallback)"), ("character_coverage", "\(characterCoverage)"),
            ("normalization_rule_name", normalization), ("add_dummy_prefix", "\(addDummyPrefix)"),
            ("remove_extra_whitespaces", "\(removeExtraWhitespaces)"), ("split_digits", "\(splitDigits)"),
            ("max_sentencepiece_length", "\(maxSentencePieceLength)"), ("max_sentence_length", "\(maxSentenceLength)"),
            ("input_sentence_size", "\(inputSentenceSize)"), ("num_threads", "\(numThreads)"),
            ("unk_id", "\(unkId)"), ("bos_id", "\(bosId)"), ("eos_id", "\(eosId)"), ("pad_id", "\(padId)"),
        ]
        if !userDefinedSymbols.isEmpty { f.append(("user_defined_symbols", userDefinedSymbols.joined(separator: ","))) }
        return f
    }
}

/// What a scan of the corpus found, and the vocabulary sizes it allows.
public struct CorpusSummary: Codable, Equatable, Sendable {
    public var bytes: Int
    public var lines: Int
    /// Lines that are not empty after normalization (what the trainer learns from).
    public var sentences: Int
    /// Lines longer than `maxSentenceLength` bytes, which the trainer skips.
    public var skippedLongLines: Int
    /// Distinct characters after normalization (including `▁` for spaces).
    public var characters: Int
    /// Characters needed to reach the character coverage.
    public var requiredCharacters: Int
    /// Distinct whitespace-separated words.
    public var words: Int
    /// The smallest vocabulary the trainer accepts for this corpus and these options.
    public var minimumVocabSize: Int
    /// An upper bound of the pieces the trainer can produce (nil when not estimated: unigram
    /// and char models, or a sampled corpus).
    public var maximumVocabSize: Int?
}

/// Trains SentencePiece models with libsentencepiece, after validating everything.
///
/// libsentencepiece aborts the whole process on some inputs instead of returning an error — for
/// example a unigram model on a corpus with no usable characters (whitespace or control
/// characters only) hits `CHECK(!required_chars_.empty())` — and it reports a too-large
/// vocabulary only after the whole training. So `validate` checks every option and scans the
/// corpus first (valid UTF-8, characters per the coverage, words), computing the minimum
/// vocabulary size and, for BPE and word models, an upper bound; any remaining failure the
/// library returns becomes an `LMError` that suggests a working value.
///
/// ```swift
/// var options = SentencePieceTrainingOptions(input: "corpus.txt", vocabSize: 8000, modelType: .bpe)
/// options.byteFallback = true
/// let report = try SentencePieceTrainer.train(options, outputDirectory: "out/tok")
/// // out/tok/tokenizer.model and out/tok/tokenizer_training.json
/// ```
public enum SentencePieceTrainer {
    /// Checks the options and scans the corpus; throws a one-line error with a working value.
    @discardableResult
    public static func validate(_ options: SentencePieceTrainingOptions) throws -> CorpusSummary {
        try validateOptions(options)
        let summary = try scanCorpus(options)
        if summary.sentences == 0 && summary.skippedLongLines > 0 {
            throw LMError(.invalidInput, "corpus '\(options.input)' has no line SentencePiece can learn from: \(summary.skippedLongLines == summary.lines ? "every" : "each non-empty") line is longer than its \(options.maxSentenceLength)-byte limit — break the text into lines (for example: fold -s -w 1000 FILE)")
        }
        if summary.sentences == 0 || summary.characters == 0 {
            throw LMError(.invalidInput, "corpus '\(options.input)' has no text to learn from (\(summary.lines) lines, all empty, whitespace or control characters after normalization); pass a text file with sentences")
        }
        if options.modelType == .unigram && summary.bytes > Int(Int32.max) / 2 && options.inputSentenceSize == 0 {
            throw LMError(.invalidArgument, "corpus '\(options.input)' is too large for unigram training in one piece (\(summary.bytes) bytes); sample it with --input-sentence-size 5000000")
        }
        let sampled = options.inputSentenceSize > 0 && options.inputSentenceSize < summary.sentences
        if options.vocabSize < summary.minimumVocabSize && !sampled {
            throw tooSmall(options, needed: summary.minimumVocabSize, summary: summary)
        }
        if let maximum = summary.maximumVocabSize, options.vocabSize > maximum {
            throw tooLarge(options, maximum: maximum)
        }
        return summary
    }

    /// Validates, trains, and returns the serialized model (the bytes of a `.model` file).
    public static func train(_ options: SentencePieceTrainingOptions, verbose: Bool = false) throws -> [UInt8] {
        try validate(options)
        return try trainValidated(options, verbose: verbose)
    }

    private static func trainValidated(_ options: SentencePieceTrainingOptions, verbose: Bool) throws -> [UInt8] {
        var flags = options.flags
        flags.append(("minloglevel", verbose ? "0" : "2"))
        do {
            return try SentencePieceLibrary.train(flags)
        } catch let e as LMError {
            throw translate(e.message, options)
        }
    }

    /// What `train(_:outputDirectory:)` writes beside the model (`tokenizer_training.json`).
    public struct Report: Codable, Sendable {
        public var model: String
        public var vocabSize: Int
        public var modelType: String
        public var corpus: String
        public var corpusSummary: CorpusSummary
        public var options: SentencePieceTrainingOptions
        public var seconds: Double
        public var modelBytes: Int
        public var library: String
        public var created: String
    }

    /// Validates (unless `validated` is the summary `validate` returned), trains, and writes
    /// `tokenizer.model` and `tokenizer_training.json` into `outputDirectory` (created if
    /// needed). Returns the report it wrote.
    @discardableResult
    public static func train(_ options: SentencePieceTrainingOptions, outputDirectory: String,
                             verbose: Bool = false, validated: CorpusSummary? = nil) throws -> Report {
        let summary = try validated ?? validate(options)
        if FileIO.exists(outputDirectory) && !FileIO.isDirectory(outputDirectory) {
            throw LMError(.invalidArgument, "output '\(outputDirectory)' is a file; pass a folder for tokenizer.model")
        }
        try FileIO.makeDirectory(outputDirectory)
        let start = Date()
        let model = try trainValidated(options, verbose: verbose)
        let seconds = Date().timeIntervalSince(start)
        let tokenizer = try SentencePieceTokenizer(modelBytes: model)
        let modelPath = (outputDirectory as NSString).appendingPathComponent("tokenizer.model")
        try FileIO.writeAtomically(modelPath) { fd in
            try model.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: modelPath) }
        }
        let report = Report(model: "tokenizer.model", vocabSize: tokenizer.vocabularySize,
                            modelType: options.modelType.rawValue, corpus: options.input, corpusSummary: summary,
                            options: options, seconds: (seconds * 1000).rounded() / 1000, modelBytes: model.count,
                            library: "libsentencepiece (system, via CSentencePiece)",
                            created: ISO8601DateFormatter().string(from: Date()))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let json = String(decoding: try encoder.encode(report), as: UTF8.self) + "\n"
        try FileIO.writeString(json, to: (outputDirectory as NSString).appendingPathComponent("tokenizer_training.json"))
        return report
    }

    // MARK: Validation

    static func validateOptions(_ o: SentencePieceTrainingOptions) throws {
        func bad(_ message: String) -> LMError { LMError(.invalidArgument, message) }
        guard o.vocabSize > 0 else { throw bad("vocabulary size \(o.vocabSize) must be positive; try 8000") }
        guard o.vocabSize <= 1 << 21 else { throw bad("vocabulary size \(o.vocabSize) is too large; use at most \(1 << 21)") }
        guard o.characterCoverage >= 0.98 && o.characterCoverage <= 1.0 else {
            throw bad("character coverage \(o.characterCoverage) must be between 0.98 and 1.0; use 0.9995 (or 1.0 for small alphabets)")
        }
        guard (1...512).contains(o.maxSentencePieceLength) else {
            throw bad("max piece length \(o.maxSentencePieceLength) must be between 1 and 512; use 16")
        }
        guard o.maxSentenceLength >= 10 && o.maxSentenceLength <= 1 << 30 else {
            throw bad("max sentence length \(o.maxSentenceLength) must be between 10 and \(1 << 30) bytes; use 4192")
        }
        guard (1...128).contains(o.numThreads) else { throw bad("thread count \(o.numThreads) must be between 1 and 128") }
        guard o.inputSentenceSize == 0 || o.inputSentenceSize > 100 else {
            throw bad("input sentence size \(o.inputSentenceSize) must be 0 (all lines) or more than 100")
        }
        guard SentencePieceTrainingOptions.normalizations.contains(o.normalization) else {
            throw bad("normalization '\(o.normalization)' is unknown; use one of \(SentencePieceTrainingOptions.normalizations.joined(separator: ", "))")
        }
        guard o.unkId >= 0 else { throw bad("the unknown piece needs an id (unk id \(o.unkId)); use 0") }
        let ids = [o.unkId, o.bosId, o.eosId, o.padId].filter { $0 >= 0 }
        guard Set(ids).count == ids.count else {
            throw bad("unk/bos/eos/pad ids \(o.unkId)/\(o.bosId)/\(o.eosId)/\(o.padId) must be distinct (-1 disables one); use 0/1/2/-1")
        }
        if let big = ids.first(where: { $0 >= o.vocabSize }) {
            throw bad("special-token id \(big) does not fit a vocabulary of \(o.vocabSize); use a larger --vocab-size")
        }
        for s in o.userDefinedSymbols where s.isEmpty || s.contains(",") || s.contains(" ") {
            throw bad("user-defined symbol '\(s)' must be non-empty, without commas or spaces")
        }
        if o.vocabSize <= o.metaPieceCount && (o.modelType == .word || o.modelType == .char) {
            throw bad("vocabulary size \(o.vocabSize) leaves no room beside the \(o.metaPieceCount) special\(o.byteFallback ? " and byte" : "") pieces; use --vocab-size \(o.metaPieceCount + 100) or more")
        }
        if !FileIO.exists(o.input) {
            throw LMError(.fileNotFound, "corpus '\(o.input)' does not exist; pass a UTF-8 text file with --input")
        }
        if FileIO.isDirectory(o.input) {
            throw LMError(.invalidInput, "corpus '\(o.input)' is a folder; pass a UTF-8 text file with --input")
        }
    }

    /// Scans the corpus the way the trainer will see it: lines, normalization, spaces as `▁`.
    static func scanCorpus(_ o: SentencePieceTrainingOptions) throws -> CorpusSummary {
        let file = try MappedFile(path: o.input)
        if file.size == 0 {
            throw LMError(.invalidInput, "corpus '\(o.input)' is empty; pass a text file with sentences, one per line")
        }
        let bytes = file.bytes
        if let bad = UTF8Text.firstInvalidOffset(bytes) {
            var line = 1
            for k in 0..<bad where bytes[k] == 0x0A { line += 1 }
            throw LMError(.invalidInput, "corpus '\(o.input)' is not valid UTF-8: byte 0x\(String(bytes[bad], radix: 16, uppercase: true)) at offset \(bad) (line \(line)); convert it first (for example: iconv -f latin1 -t utf-8)")
        }
        let nmt = o.normalization.hasPrefix("nmt")
        let nfkc = o.normalization != "identity"
        let caseFold = o.normalization.hasSuffix("_cf")
        var counts: [UInt32: Int] = [:]
        var total = 0
        var lines = 0, sentences = 0, skipped = 0
        var words = ByteSliceMap(capacity: 1 << 14)
        var wordLengths: [Int] = []
        var scalars: [UInt32] = []
        var word: [UInt8] = []
        var wordChars = 0
        let space: UInt32 = 0x2581

        func endWord() {
            if wordChars > 0 && words.value(for: word) == nil {
                words.insert(word, Int32(wordLengths.count))
                wordLengths.append(wordChars)
            }
            word.removeAll(keepingCapacity: true)
            wordChars = 0
        }

        var start = 0
        let n = bytes.count
        while start < n {
            var end = start
            while end < n && bytes[end] != 0x0A { end += 1 }
            lines += 1
            defer { start = end + 1 }
            if end - start > o.maxSentenceLength {
                skipped += 1
                continue
            }
            // Normalize the line into scalars, spaces as U+0020.
            scalars.removeAll(keepingCapacity: true)
            let line = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            var ascii = true
            for b in line where b >= 0x80 { ascii = false; break }
            var source: [UInt32]
            if ascii || !nfkc {
                source = []
                source.reserveCapacity(line.count)
                line.withMemoryRebound(to: UInt8.self) { p in
                    var i = 0
                    while i < p.count {
                        let (c, len) = UnicodeText.decode(p, i)
                        source.append(c)
                        i += len
                    }
                }
            } else {
                let s = String(decoding: line, as: UTF8.self)
                source = s.precomposedStringWithCompatibilityMapping.unicodeScalars.map(\.value)
            }
            for var c in source {
                if nmt {
                    switch c {
                    case 0x09, 0x0A, 0x0C, 0x0D, 0x1680, 0x200B, 0x200C, 0x200E, 0x200F, 0x2028, 0x2029, 0x2581, 0xFEFF, 0xFFFD:
                        c = 0x20
                    case 0x01...0x08, 0x0B, 0x0E...0x1F, 0x7F, 0x8F, 0x9F:
                        continue
                    default: break
                    }
                }
                if c == 0 { continue }
                if caseFold, let s = Unicode.Scalar(c) {
                    scalars.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars.map(\.value))
                } else {
                    scalars.append(c)
                }
            }
            if o.removeExtraWhitespaces {
                var collapsed: [UInt32] = []
                collapsed.reserveCapacity(scalars.count)
                for c in scalars {
                    if c == 0x20 && (collapsed.isEmpty || collapsed.last == 0x20) { continue }
                    collapsed.append(c)
                }
                if collapsed.last == 0x20 { collapsed.removeLast() }
                scalars = collapsed
            }
            if scalars.isEmpty { continue }
            sentences += 1
            if o.addDummyPrefix {
                counts[space, default: 0] += 1
                total += 1
                UnicodeText.append(space, to: &word)
                wordChars += 1
            }
            for c in scalars {
                if c == 0x20 {
                    endWord()
                    counts[space, default: 0] += 1
                    total += 1
                    UnicodeText.append(space, to: &word)
                    wordChars += 1
                } else {
                    counts[c, default: 0] += 1
                    total += 1
                    UnicodeText.append(c, to: &word)
                    wordChars += 1
                }
            }
            endWord()
        }

        // The trainer's rule: most frequent characters first until the coverage is reached;
        // a tab is never part of the alphabet.
        var required = 0
        var covered = 0
        for (c, count) in counts.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
            if total > 0 && Double(covered) / Double(total) >= o.characterCoverage { break }
            covered += count
            if c != 0x09 { required += 1 }
        }
        let meta = o.metaPieceCount
        var minimum: Int
        var maximum: Int?
        let sampled = o.inputSentenceSize > 0 && o.inputSentenceSize < sentences
        switch o.modelType {
        case .bpe:
            minimum = meta + required
            // Every merge joins two symbols of some distinct word: at most (length - 1) per word.
            maximum = sampled ? nil : meta + required + wordLengths.reduce(0) { $0 + $1 - 1 }
        case .unigram:
            minimum = meta + required
            maximum = nil
        case .char:
            minimum = meta + 1
            maximum = nil
        case .word:
            minimum = meta + 1
            maximum = sampled ? nil : meta + wordLengths.count
        }
        if minimum < 1 { minimum = 1 }
        return CorpusSummary(bytes: n, lines: lines, sentences: sentences, skippedLongLines: skipped,
                             characters: counts.count, requiredCharacters: required, words: wordLengths.count,
                             minimumVocabSize: minimum, maximumVocabSize: maximum)
    }

    // MARK: Errors

    static func tooSmall(_ o: SentencePieceTrainingOptions, needed: Int, summary: CorpusSummary?) -> LMError {
        var why = ""
        if let summary {
            why = " (\(summary.requiredCharacters) characters to cover \(o.characterCoverage * 100)% of the corpus + \(o.metaPieceCount) special\(o.byteFallback ? "/byte" : "") pieces)"
        }
        let coverage = o.characterCoverage > 0.98 && o.offersCoverageFlag ? ", or lower --character-coverage (down to 0.98)" : ""
        return LMError(.invalidArgument, "vocabulary size \(o.vocabSize) is too small for this corpus: it needs at least \(needed) pieces\(why); use \(flag(o, needed)) or more\(coverage)")
    }

    static func tooLarge(_ o: SentencePieceTrainingOptions, maximum: Int) -> LMError {
        LMError(.invalidArgument, "vocabulary size \(o.vocabSize) is too large for this corpus: a \(o.modelType.rawValue) model can have at most \(maximum) pieces here; use \(flag(o, maximum)) or less, or train on more text")
    }

    static func flag(_ o: SentencePieceTrainingOptions, _ n: Int) -> String {
        o.vocabSizeFlag.replacingOccurrences(of: "N", with: String(n))
    }

    /// Turns a libsentencepiece status message into an error with a working value.
    static func translate(_ message: String, _ o: SentencePieceTrainingOptions) -> LMError {
        if let r = message.range(of: "Vocabulary size is smaller than required_chars. ") {
            let numbers = message[r.upperBound...].split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
            if numbers.count >= 2 { return tooSmall(o, needed: numbers[1], summary: nil) }
        }
        if let r = message.range(of: "Please set it to a value <= ") {
            if let maximum = Int(message[r.upperBound...].prefix(while: { $0.isNumber })) {
                return tooLarge(o, maximum: maximum)
            }
        }
        let oneLine = message.replacingOccurrences(of: "\n", with: " ")
        return LMError(.library, "SentencePiece training failed: \(oneLine)")
    }
}
