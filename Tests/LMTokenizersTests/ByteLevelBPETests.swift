import XCTest
@testable import LMTokenizers

/// GPT-2 byte-level BPE from vocab.json + merges.txt (../shared/data/gpt2-tokenizer).
final class ByteLevelBPETests: XCTestCase {
    private static var cachedGPT2: (any Tokenizer)?

    static func gpt2() throws -> any Tokenizer {
        if let t = cachedGPT2 { return t }
        let t = try TokenizerLoader.load(path: TestData.sharedFile("data/gpt2-tokenizer"))
        cachedGPT2 = t
        return t
    }

    /// The pre-tokenizer against the pattern's behaviour (cases worked out from the regex
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`).
    func testPreTokenizerSplits() {
        func split(_ s: String) -> [String] {
            var out: [String] = []
            var copy = s
            copy.withUTF8 { p in
                GPT2PreTokenizer.forEachPiece(p) { r in
                    out.append(String(decoding: UnsafeBufferPointer(rebasing: p[r]), as: UTF8.self))
                }
            }
            XCTAssertEqual(out.joined(), s)
            return out
        }
        XCTAssertEqual(split("Hello world"), ["Hello", " world"])
        XCTAssertEqual(split("Hello  world"), ["Hello", " ", " world"])
        XCTAssertEqual(split("Hello world  "), ["Hello", " world", "  "])
        XCTAssertEqual(split("a\n\nb"), ["a", "\n", "\n", "b"])
        XCTAssertEqual(split("a \n b"), ["a", " \n", " b"])
        XCTAssertEqual(split("I'm you're we'VE 'll"), ["I", "'m", " you", "'re", " we", "'", "VE", " '", "ll"])
        XCTAssertEqual(split("x''s"), ["x", "''", "s"])
        XCTAssertEqual(split("3.14159 abc123"), ["3", ".", "14159", " abc", "123"])
        XCTAssertEqual(split(" !!! ?"), [" !!!", " ?"])
        XCTAssertEqual(split("Ünïcödé 日本語 ½"), ["Ünïcödé", " 日本語", " ½"])
        XCTAssertEqual(split("\t\tx"), ["\t", "\t", "x"])
        XCTAssertEqual(split("a\u{00A0}b"), ["a", "\u{00A0}", "b"])
        XCTAssertEqual(split(""), [])
        XCTAssertEqual(split(" "), [" "])
    }

    func testReferenceIds() throws {
        let gpt2 = try Self.gpt2()
        XCTAssertEqual(gpt2.vocabularySize, 50257)
        XCTAssertEqual(try gpt2.encode("Hello world"), [15496, 995])
        XCTAssertEqual(try gpt2.encode(" Hello world"), [18435, 995])
        XCTAssertEqual(try gpt2.encode("\n"), [198])
        XCTAssertEqual(gpt2.pieces(for: [18435, 995]), ["ĠHello", "Ġworld"])
        XCTAssertEqual(gpt2.specialTokens.eos, 50256)
        // <|endoftext|> is text unless special tokens are parsed.
        XCTAssertNotEqual(try gpt2.encode("<|endoftext|>"), [50256])
        XCTAssertEqual(try gpt2.encode("a<|endoftext|>b", parseSpecialTokens: true), [64, 50256, 65])
        XCTAssertEqual(gpt2.decode([64, 50256, 65]), "a<|endoftext|>b")
        XCTAssertEqual(gpt2.decode([64, 50256, 65], skipSpecialTokens: true), "ab")
    }

    /// nanoGPT's published counts for Tiny Shakespeare's 90 % / 10 % split with GPT-2 BPE.
    func testTinyShakespeareTokenCounts() throws {
        let gpt2 = try Self.gpt2()
        let text = try TestData.bytes(TestData.sharedFile("data/tinyshakespeare/input.txt"))
        let cut = Int(Double(text.count) * 0.9)
        XCTAssertEqual(try gpt2.encode(utf8: Array(text[..<cut])).count, 301_966)
        XCTAssertEqual(try gpt2.encode(utf8: Array(text[cut...])).count, 36_059)
    }

    /// The heap-based merge (long pieces) gives the same result as the plain scan.
    func testHeapMergeMatchesNaiveMerge() throws {
        let gpt2 = try XCTUnwrap(try Self.gpt2() as? ByteLevelBPETokenizer)
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("aaabbcdeeeinorst ==--".utf8)
        for length in [2, 5, 31, 32, 40, 100, 300] {
            for _ in 0..<20 {
                let word = (0..<length).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] }
                XCTAssertEqual(gpt2.mergeForTesting(word, heap: true), gpt2.mergeForTesting(word, heap: false))
            }
        }
        let long = String(repeating: "=", count: 5000)
        XCTAssertEqual(gpt2.decode(try gpt2.encode(long)), long)
    }

    func testFromTokenizerJSON() throws {
        // A tokenizer.json built from the same files (the GPT-2 layout Hugging Face writes).
        let folder = try TestData.sharedFile("data/gpt2-tokenizer")
        let vocab = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/vocab.json")))
        let merges = lines(of: try TestData.text(folder + "/merges.txt")).dropFirst()
        let root: [String: Any] = [
            "added_tokens": [["id": 50256, "content": "<|endoftext|>", "special": true]],
            "normalizer": NSNull(),
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            "post_processor": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true],
            "model": ["type": "BPE", "vocab": vocab, "merges": Array(merges)],
        ]
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lm-tok-json-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try JSONSerialization.data(withJSONObject: root).write(to: dir.appendingPathComponent("tokenizer.json"))
        let t = try TokenizerLoader.load(path: dir.path)
        XCTAssertTrue(t is ByteLevelBPETokenizer)
        let sample = "Hello world! It's 2024 — naïve café, 日本語."
        XCTAssertEqual(try t.encode(sample), try Self.gpt2().encode(sample))
    }
}

extension ByteLevelBPETokenizer {
    /// Runs one of the two merge implementations on raw bytes (tests only).
    func mergeForTesting(_ word: [UInt8], heap: Bool) -> [Int] {
        var ids = word.map { Int32(self.id(for: String(ByteLevelBPETokenizer.byteToUnicode[Int($0)]))!) }
        let merges = self.mergeTable
        if heap { Self.mergeWithHeap(&ids, merges) } else { Self.mergeNaive(&ids, merges) }
        return ids.map(Int.init)
    }
}
