import XCTest
import LMCore
@testable import LMTokenizers

/// TokenizerLoader: picking the implementation from a path, and clear errors otherwise.
final class LoaderTests: XCTestCase {
    private func tempDir() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lm-tok-loader-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func testPicksImplementationFromPath() throws {
        XCTAssertTrue(try TokenizerLoader.load(path: TestData.sharedFile("models/minilm-l6-v2")) is WordPieceTokenizer)
        XCTAssertTrue(try TokenizerLoader.load(path: TestData.sharedFile("models/minilm-l6-v2/vocab.txt")) is WordPieceTokenizer)
        XCTAssertTrue(try TokenizerLoader.load(path: TestData.sharedFile("models/minilm-l6-v2/tokenizer.json")) is WordPieceTokenizer)
        XCTAssertTrue(try TokenizerLoader.load(path: TestData.sharedFile("data/gpt2-tokenizer")) is ByteLevelBPETokenizer)
        XCTAssertTrue(try TokenizerLoader.load(path: TestData.sharedFile("fixtures/llama-tiny/model")) is SentencePieceTokenizer)
        XCTAssertTrue(try TokenizerLoader.load(path: TestData.fixture("llama-tiny-tokenizer.model")) is SentencePieceTokenizer)
        XCTAssertTrue(try TokenizerLoader.load(path: TestData.sharedFile("data/llama-cpp-vocab/ggml-vocab-llama-spm.gguf")) is SentencePieceBPETokenizer)
        XCTAssertTrue(try TokenizerLoader.load(path: TestData.sharedFile("data/llama-cpp-vocab/ggml-vocab-gpt-2.gguf")) is ByteLevelBPETokenizer)
    }

    func testModelFolderWithoutTokenizer() throws {
        XCTAssertNil(try TokenizerLoader.find(inModelFolder: TestData.sharedFile("fixtures/gpt2-tiny/model")))
        let empty = try tempDir()
        XCTAssertNil(try TokenizerLoader.find(inModelFolder: empty))
        XCTAssertThrowsError(try TokenizerLoader.load(path: empty)) { error in
            XCTAssertTrue("\(error)".contains("no tokenizer in folder"), "\(error)")
        }
    }

    func testUnknownMissingAndBrokenFiles() throws {
        let dir = try tempDir()
        XCTAssertThrowsError(try TokenizerLoader.load(path: dir + "/missing")) { error in
            XCTAssertTrue("\(error)".contains("does not exist"), "\(error)")
        }
        let readme = dir + "/notes.md"
        try "hello".write(toFile: readme, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TokenizerLoader.load(path: readme)) { error in
            XCTAssertTrue("\(error)".contains("unknown tokenizer file"), "\(error)")
        }
        let badModel = dir + "/bad.model"
        try "garbage".write(toFile: badModel, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TokenizerLoader.load(path: badModel)) { error in
            XCTAssertTrue("\(error)".contains("not a SentencePiece model"), "\(error)")
        }
        let badJSON = dir + "/tokenizer.json"
        try "{not json".write(toFile: badJSON, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TokenizerLoader.load(path: dir)) { error in
            XCTAssertTrue("\(error)".contains("not valid JSON"), "\(error)")
        }
        let unigram = dir + "/u.json"
        try #"{"model": {"type": "Unigram", "vocab": []}}"#.write(toFile: unigram, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TokenizerLoader.load(path: unigram)) { error in
            XCTAssertTrue("\(error)".contains("'Unigram' is not supported"), "\(error)")
        }
        let onlyVocab = try tempDir()
        try "{}".write(toFile: onlyVocab + "/vocab.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TokenizerLoader.find(inModelFolder: onlyVocab)) { error in
            XCTAssertTrue("\(error)".contains("no merges.txt"), "\(error)")
        }
        let fakeGGUF = dir + "/v.gguf"
        try "GGUF".write(toFile: fakeGGUF, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TokenizerLoader.load(path: fakeGGUF)) { error in
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
    }

    func testInvalidUTF8BytesAreAnError() throws {
        let gpt2 = try ByteLevelBPETests.gpt2()
        XCTAssertEqual(try gpt2.encode(utf8: Array("Hello world".utf8)), [15496, 995])
        for bad: [UInt8] in [[0x63, 0x61, 0x66, 0xE9], [0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xE2, 0x82]] {
            XCTAssertThrowsError(try gpt2.encode(utf8: bad)) { error in
                XCTAssertTrue("\(error)".contains("not valid UTF-8"), "\(error)")
            }
        }
        XCTAssertThrowsError(try UTF8Text.decode([0x61, 0x0A, 0x62, 0xFE], source: "stdin")) { error in
            XCTAssertEqual("\(error)", "stdin is not valid UTF-8: byte 0xFE at offset 3 (line 2); convert it to UTF-8 first (for example: iconv -f latin1 -t utf-8)")
        }
    }

    func testPostProcessorAndSpecialTokensAPI() throws {
        let sp = try TokenizerLoader.load(path: TestData.fixture("llama-tiny-tokenizer.model"))
        XCTAssertEqual(sp.postProcessor.apply([5, 6], nil).ids, [1, 5, 6])
        let bert = try TokenizerLoader.load(path: TestData.sharedFile("models/minilm-l6-v2"))
        XCTAssertEqual(bert.specialTokens, SpecialTokens(pad: 0, unk: 100, cls: 101, sep: 102, mask: 103))
        XCTAssertEqual(bert.postProcessor.addedTokenCount(pair: true), 3)
        XCTAssertEqual(bert.id(for: "[MASK]"), 103)
        XCTAssertTrue(bert.isSpecial(101))
    }
}
