import LMCore
import XCTest
@testable import LMTokenizers

/// llama.cpp's tokenizer conformance vectors (../shared/data/llama-cpp-vocab): each `.gguf`
/// vocabulary, 46 strings, ids from Hugging Face with special tokens off and special-token
/// parsing off. GPT-2 and BERT must pass 100 %.
final class LlamaCppVocabTests: XCTestCase {
    /// Runs all cases; returns (passed, total) and records each failure.
    private func run(_ name: String, requireAll: Bool) throws -> (Int, Int) {
        let path = try TestData.sharedFile("data/llama-cpp-vocab/\(name).gguf")
        let tokenizer = try TokenizerLoader.load(path: path)
        let cases = try TestData.llamaCppCases(name)
        XCTAssertEqual(cases.count, 46)
        var passed = 0
        for (input, expected) in cases {
            let ids = try tokenizer.encode(input)
            if ids == expected {
                passed += 1
            } else if requireAll {
                XCTFail("\(name): \(input.debugDescription) -> \(ids), expected \(expected)")
            } else {
                print("\(name) mismatch: \(input.debugDescription) -> \(ids), expected \(expected)")
            }
        }
        print("\(name): \(passed)/\(cases.count) llama.cpp vectors pass")
        return (passed, cases.count)
    }

    func testGPT2AllVectors() throws {
        let (passed, total) = try run("ggml-vocab-gpt-2", requireAll: true)
        XCTAssertEqual(passed, total)
    }

    func testBertBgeAllVectors() throws {
        let (passed, total) = try run("ggml-vocab-bert-bge", requireAll: true)
        XCTAssertEqual(passed, total)
    }

    func testLlamaSpmAllVectors() throws {
        let (passed, total) = try run("ggml-vocab-llama-spm", requireAll: true)
        XCTAssertEqual(passed, total)
    }

    func testGGUFMetadata() throws {
        let path = try TestData.sharedFile("data/llama-cpp-vocab/ggml-vocab-bert-bge.gguf")
        let meta = try GGUFMetadata(path: path)
        XCTAssertEqual(meta.version, 3)
        XCTAssertEqual(meta.tensorCount, 0)
        XCTAssertEqual(meta["tokenizer.ggml.model"]?.stringValue, "bert")
        XCTAssertEqual(meta["bert.context_length"]?.intValue, 512)
        let vocab = try GGUFVocabulary(metadata: meta)
        XCTAssertEqual(vocab.tokens.count, 30522)
        XCTAssertEqual(vocab.specialTokens, SpecialTokens(pad: 0, unk: 100, cls: 101, sep: 102, mask: 103))
        let bert = try vocab.makeTokenizer()
        XCTAssertEqual(bert.piece(for: 1996), "the")
        XCTAssertEqual(try bert.encode("Führer"), [11865, 17875])
        XCTAssertEqual(bert.pieces(for: [11865, 17875]), ["fu", "##hrer"])
    }

    func testTruncatedGGUFIsAnError() throws {
        let path = try TestData.sharedFile("data/llama-cpp-vocab/ggml-vocab-gpt-2.gguf")
        let bytes = try TestData.bytes(path)
        for cut in [3, 10, 30, 1000, bytes.count / 2] {
            XCTAssertThrowsError(try Array(bytes[0..<cut]).withUnsafeBytes { try GGUFMetadata(bytes: $0) }) { error in
                XCTAssertTrue("\(error)".contains("GGUF"), "\(error)")
            }
        }
    }
}
