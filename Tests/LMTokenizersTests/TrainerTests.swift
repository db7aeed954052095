import XCTest
import LMCore
@testable import LMTokenizers

/// SentencePiece training: a working run, and every bad input as a one-line error instead of
/// a crash.
final class TrainerTests: XCTestCase {
    private var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("lm-tok-train-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tmp)
    }

    private func corpus(_ name: String, _ bytes: [UInt8]) throws -> String {
        let url = tmp.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    private func botchan() throws -> String { try TestData.sharedFile("data/sentencepiece/botchan.txt") }

    private func assertError(_ options: SentencePieceTrainingOptions, contains fragments: [String],
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SentencePieceTrainer.train(options), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(error is LMError, "not an LMError: \(text)", file: file, line: line)
            XCTAssertFalse(text.contains("\n"), "error is not one line: \(text)", file: file, line: line)
            for f in fragments {
                XCTAssertTrue(text.contains(f), "'\(text)' does not mention '\(f)'", file: file, line: line)
            }
        }
    }

    /// The llama-tiny recipe on botchan.txt, written to a folder with its JSON description.
    func testTrainBPEWithByteFallbackWritesModelAndReport() throws {
        var o = SentencePieceTrainingOptions(input: try botchan(), vocabSize: 512, modelType: .bpe, byteFallback: true)
        o.normalization = "identity"
        o.removeExtraWhitespaces = false
        o.splitDigits = true
        o.numThreads = 1
        let out = tmp.appendingPathComponent("tok").path
        let report = try SentencePieceTrainer.train(o, outputDirectory: out)
        XCTAssertEqual(report.vocabSize, 512)
        let sp = try TokenizerLoader.load(path: out)
        XCTAssertTrue(sp is SentencePieceTokenizer)
        XCTAssertEqual(sp.vocabularySize, 512)
        let text = "Botchan was a hot-tempered boy, 日本 🤗"
        XCTAssertEqual(sp.decode(try sp.encode(text)), text)
        let json = try TestData.json(out + "/tokenizer_training.json")
        XCTAssertEqual(json["vocabSize"] as? Int, 512)
        XCTAssertEqual(json["modelType"] as? String, "bpe")
        // The same recipe as fixtures/llama-tiny: the same pieces as Python's sentencepiece made.
        let reference = try SentencePieceTokenizer(modelFile: TestData.fixture("llama-tiny-tokenizer.model"))
        let same = (0..<512).filter { sp.piece(for: $0) == reference.piece(for: $0) }.count
        print("trained llama-tiny recipe: \(same)/512 pieces equal to the fixture's tokenizer.model")
    }

    func testUnigramAndCharTrain() throws {
        for type in [SentencePieceTrainingOptions.ModelType.unigram, .char, .word] {
            let o = SentencePieceTrainingOptions(input: try botchan(), vocabSize: 300, modelType: type, numThreads: 2)
            let model = try SentencePieceTrainer.train(o)
            let sp = try SentencePieceTokenizer(modelBytes: model)
            XCTAssertLessThanOrEqual(sp.vocabularySize, 300, "\(type)")
            XCTAssertFalse(try sp.encode("I was a boy").isEmpty)
        }
    }

    /// Our corpus scan finds the same minimum the library computes (69 characters + 3 + 256).
    func testMinimumVocabularyMatchesLibrary() throws {
        let o = SentencePieceTrainingOptions(input: try botchan(), vocabSize: 100, modelType: .bpe, byteFallback: true)
        let summary = try SentencePieceTrainer.scanCorpus(o)
        XCTAssertEqual(summary.minimumVocabSize, 328)
        XCTAssertThrowsError(try SentencePieceLibrary.train(o.flags + [("minloglevel", "2")])) { error in
            XCTAssertEqual("\(SentencePieceTrainer.translate("\(error)", o))".contains("at least 328"), true, "\(error)")
        }
        let plain = SentencePieceTrainingOptions(input: try botchan(), vocabSize: 100, modelType: .unigram)
        XCTAssertEqual(try SentencePieceTrainer.scanCorpus(plain).minimumVocabSize, 72)
    }

    func testVocabularyTooSmall() throws {
        assertError(SentencePieceTrainingOptions(input: try botchan(), vocabSize: 300, modelType: .unigram, byteFallback: true),
                    contains: ["too small", "--vocab-size 328"])
        assertError(SentencePieceTrainingOptions(input: try botchan(), vocabSize: 50, modelType: .bpe),
                    contains: ["too small", "--vocab-size 72"])
        assertError(SentencePieceTrainingOptions(input: try botchan(), vocabSize: 200, modelType: .word, byteFallback: true),
                    contains: ["no room", "--vocab-size"])
    }

    func testVocabularyTooLarge() throws {
        // BPE and word: refused before training, from the corpus scan.
        let start = Date()
        assertError(SentencePieceTrainingOptions(input: try botchan(), vocabSize: 200_000, modelType: .bpe),
                    contains: ["too large", "--vocab-size"])
        assertError(SentencePieceTrainingOptions(input: try botchan(), vocabSize: 100_000, modelType: .word),
                    contains: ["too large", "--vocab-size 9"])
        XCTAssertLessThan(Date().timeIntervalSince(start), 10, "should be refused before training")
        // Unigram: the library's own status, translated.
        let small = try corpus("small.txt", Array("hello world\nfoo bar\n".utf8))
        assertError(SentencePieceTrainingOptions(input: small, vocabSize: 100, modelType: .unigram),
                    contains: ["too large", "--vocab-size 14"])
    }

    /// A unigram model on a corpus with no usable characters aborts libsentencepiece
    /// (`CHECK(!required_chars_.empty())` in unigram_model_trainer.cc); it must be an error.
    func testCorpusWithoutCharactersIsAnErrorNotACrash() throws {
        for (name, text) in [("spaces.txt", "   \n\t\n  \n"), ("controls.txt", "\u{1}\u{2}\n\u{3}\n"), ("tabs.txt", "\t\t\n\t\n")] {
            let path = try corpus(name, Array(text.utf8))
            for type in SentencePieceTrainingOptions.ModelType.allCases {
                assertError(SentencePieceTrainingOptions(input: path, vocabSize: 100, modelType: type), contains: ["no text"])
            }
        }
    }

    func testMissingEmptyAndInvalidCorpus() throws {
        assertError(SentencePieceTrainingOptions(input: tmp.appendingPathComponent("nope.txt").path, vocabSize: 100, modelType: .bpe),
                    contains: ["does not exist", "nope.txt"])
        assertError(SentencePieceTrainingOptions(input: try corpus("empty.txt", []), vocabSize: 100, modelType: .bpe),
                    contains: ["is empty"])
        assertError(SentencePieceTrainingOptions(input: tmp.path, vocabSize: 100, modelType: .bpe), contains: ["folder"])
        let latin1 = try corpus("latin1.txt", Array("caf".utf8) + [0xE9] + Array("\nok\n".utf8))
        assertError(SentencePieceTrainingOptions(input: latin1, vocabSize: 100, modelType: .bpe),
                    contains: ["not valid UTF-8", "0xE9", "offset 3", "line 1", "iconv"])
    }

    func testBadOptions() throws {
        let b = try botchan()
        var o = SentencePieceTrainingOptions(input: b, vocabSize: 1000, modelType: .bpe)
        o.characterCoverage = 0.5
        assertError(o, contains: ["character coverage", "0.98"])
        o = SentencePieceTrainingOptions(input: b, vocabSize: 0, modelType: .bpe)
        assertError(o, contains: ["must be positive"])
        o = SentencePieceTrainingOptions(input: b, vocabSize: 1000, modelType: .bpe, maxSentenceLength: 5)
        assertError(o, contains: ["max sentence length"])
        o = SentencePieceTrainingOptions(input: b, vocabSize: 1000, modelType: .bpe, inputSentenceSize: 50)
        assertError(o, contains: ["input sentence size"])
        o = SentencePieceTrainingOptions(input: b, vocabSize: 1000, modelType: .bpe, normalization: "nfd")
        assertError(o, contains: ["normalization 'nfd'"])
        o = SentencePieceTrainingOptions(input: b, vocabSize: 1000, modelType: .bpe, bosId: 0)
        assertError(o, contains: ["distinct"])
        o = SentencePieceTrainingOptions(input: b, vocabSize: 1000, modelType: .bpe, numThreads: 0)
        assertError(o, contains: ["thread count"])
    }
}
