import XCTest
@testable import LMTokenizers

/// The Swift SentencePiece encoder (fast path) against libsentencepiece (reference): the same
/// ids for every line of several corpora, on models of every kind we support.
final class SentencePieceEngineTests: XCTestCase {
    private static var trained: [String: [UInt8]] = [:]

    /// A model trained here on botchan.txt (cached for the test run).
    private func trainedModel(_ name: String, _ configure: (inout SentencePieceTrainingOptions) -> Void) throws -> SentencePieceTokenizer {
        if let bytes = Self.trained[name] { return try SentencePieceTokenizer(modelBytes: bytes) }
        var o = SentencePieceTrainingOptions(input: try TestData.sharedFile("data/sentencepiece/botchan.txt"), vocabSize: 1000, modelType: .bpe)
        o.numThreads = 2
        configure(&o)
        let bytes = try SentencePieceTrainer.train(o)
        Self.trained[name] = bytes
        return try SentencePieceTokenizer(modelBytes: bytes)
    }

    private static let tricky = [
        "", " ", "  ", "a", " a ", "Hello  world", "\tTabs\tand\nnew\r\nlines ", "ﬁne ① ㍿ Ｆｕｌｌ－ｗｉｄｔｈ ～", "Ünïcödé ÀÉÎ ß",
        "日本語のテキスト", "emoji 🤗🍕 👍🏽 ❤️", "ℌ𝔢𝔩𝔩𝔬", "zero\u{200B}width no\u{A0}break", "\u{7}\u{1B}ctrl\u{7F}\u{85}",
        "<s> </s> <unk> <0x41>", "12345 3.14 2024", "‘quotes’ “double” — dash…", "ΑΒΓ αβγ русский עברית العربية", "▁already▁escaped",
        String(repeating: "x", count: 3000), String(repeating: "ab ", count: 500),
    ]

    private func corpusLines() throws -> [String] {
        var all: [String] = Self.tricky
        for corpus in ["data/wikitext-2/valid.txt", "data/tinyshakespeare/input.txt", "data/sentencepiece/wagahaiwa_nekodearu.txt"] {
            all += lines(of: try TestData.text(TestData.sharedFile(corpus))).prefix(corpus.contains("wagahai") ? 150 : 500)
        }
        return all
    }

    private func compare(_ sp: SentencePieceTokenizer, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(sp.engine, .automatic, "\(name): the Swift engine should support this model", file: file, line: line)
        var mismatches = 0
        let lines = try corpusLines()
        for text in lines {
            let fast = try sp.encode(text)
            let reference = try sp.encodeWithLibrary(text)
            if fast != reference {
                mismatches += 1
                if mismatches <= 3 {
                    XCTFail("\(name): \(text.prefix(80).debugDescription): swift \(fast.prefix(20)) vs library \(reference.prefix(20))", file: file, line: line)
                }
            }
        }
        XCTAssertEqual(mismatches, 0, "\(name): \(mismatches) of \(lines.count) lines differ", file: file, line: line)
    }

    func testLlamaTinyBPEIdentityByteFallback() throws {
        try compare(SentencePieceTokenizer(modelFile: TestData.fixture("llama-tiny-tokenizer.model")), "llama-tiny")
    }

    func testSentencePieceTestModels() throws {
        try compare(SentencePieceTokenizer(modelFile: TestData.sharedFile("data/sentencepiece/test_model.model")), "test_model")
        try compare(SentencePieceTokenizer(modelFile: TestData.sharedFile("data/sentencepiece/test_ja_model.model")), "test_ja_model")
    }

    func testTrainedBPEAndUnigramWithNFKC() throws {
        try compare(trainedModel("bpe") { _ in }, "bpe nmt_nfkc")
        try compare(trainedModel("unigram") { $0.modelType = .unigram }, "unigram nmt_nfkc")
    }

    func testTrainedVariants() throws {
        try compare(trainedModel("bpe-bytes-cf") { $0.byteFallback = true; $0.normalization = "nmt_nfkc_cf"; $0.vocabSize = 1500 },
                    "bpe byte fallback nmt_nfkc_cf")
        try compare(trainedModel("unigram-bytes") { $0.modelType = .unigram; $0.byteFallback = true; $0.vocabSize = 1500 },
                    "unigram byte fallback")
        try compare(trainedModel("bpe-user") { $0.userDefinedSymbols = ["<sep>", "Botchan", "!!"]; $0.removeExtraWhitespaces = false },
                    "bpe user-defined symbols, extra whitespace kept")
        try compare(trainedModel("unigram-user") { $0.modelType = .unigram; $0.userDefinedSymbols = ["<sep>", "Botchan"]; $0.addDummyPrefix = false },
                    "unigram user-defined symbols, no dummy prefix")
    }

    func testWordAndCharModelsUseTheLibrary() throws {
        let sp = try trainedModel("char") { $0.modelType = .char; $0.vocabSize = 100 }
        XCTAssertEqual(sp.engine, .library)
        XCTAssertEqual(try sp.encode("I was a boy"), try sp.encodeWithLibrary("I was a boy"))
    }
}
