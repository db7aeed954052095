import XCTest
@testable import LMTokenizers

/// encode -> decode gives back the exact text, for SentencePiece (llama-tiny, byte fallback)
/// and byte-level BPE (GPT-2), on all of WikiText-2 valid and Tiny Shakespeare.
final class RoundTripTests: XCTestCase {
    private let corpora = ["data/wikitext-2/valid.txt", "data/tinyshakespeare/input.txt"]

    private func roundTrip(_ tokenizer: any Tokenizer, name: String) throws {
        for corpus in corpora {
            let text = try TestData.text(TestData.sharedFile(corpus))
            let start = Date()
            let ids = try tokenizer.encode(text)
            let back = tokenizer.decode(ids)
            XCTAssertEqual(back.utf8.count, text.utf8.count, "\(name) \(corpus)")
            XCTAssertTrue(back == text, "\(name): \(corpus) does not round-trip")
            print("\(name) \(corpus): \(text.utf8.count) bytes -> \(ids.count) tokens, round trip in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
        }
    }

    func testSentencePieceRoundTrip() throws {
        try roundTrip(SentencePieceTokenizer(modelFile: TestData.fixture("llama-tiny-tokenizer.model")), name: "sentencepiece")
    }

    func testByteLevelBPERoundTrip() throws {
        try roundTrip(ByteLevelBPETests.gpt2(), name: "gpt2")
    }

    /// Per line too, since generation and the CLI encode short texts.
    func testSentencePiecePerLineRoundTrip() throws {
        let sp = try SentencePieceTokenizer(modelFile: TestData.fixture("llama-tiny-tokenizer.model"))
        let text = try TestData.text(TestData.sharedFile("data/tinyshakespeare/input.txt"))
        var failures = 0
        for line in lines(of: text) where sp.decode(try sp.encode(line)) != line {
            failures += 1
        }
        XCTAssertEqual(failures, 0)
    }
}
