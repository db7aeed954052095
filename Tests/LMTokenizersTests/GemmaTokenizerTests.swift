import Foundation
import XCTest
import LMCore
@testable import LMTokenizers

/// The Gemma 3 vocabulary (262,144 SentencePiece pieces in google/gemma-3-270m's Q4_K_M GGUF)
/// tokenized and detokenized exactly as llama.cpp (llama-cpp-python 0.3.36) does.
///
/// The expected values are in `Fixtures/gemma3/`, made by `Fixtures/gemma3/make_fixtures.py`
/// (its docstring describes each file). The model file is found at
/// `$LM_CACHE/gemma-3-270m-q4_k_m.gguf`, else `~/.cache/swift-lm/gemma-3-270m-q4_k_m.gguf`;
/// `make gemma` fetches it. Without it the tests fail (they are never skipped).
final class GemmaTokenizerTests: XCTestCase {
    static let modelName = "gemma-3-270m-q4_k_m.gguf"

    static var modelPath: String {
        let home = (NSHomeDirectory() as NSString).appendingPathComponent(".cache/swift-lm/\(modelName)")
        if let cache = ProcessInfo.processInfo.environment["LM_CACHE"], !cache.isEmpty {
            let path = (cache as NSString).appendingPathComponent(modelName)
            if FileManager.default.fileExists(atPath: path) || !FileManager.default.fileExists(atPath: home) { return path }
        }
        return home
    }

    /// The vocabulary and its tokenizer, loaded once for all tests.
    private static let loaded: Result<(GGUFVocabulary, SentencePieceBPETokenizer), Error> = Result {
        let path = modelPath
        guard FileManager.default.fileExists(atPath: path) else {
            throw LMTestDataMissing(message: "missing \(path): run `make gemma` to fetch google/gemma-3-270m (Q4_K_M GGUF) into ~/.cache/swift-lm (or set LM_CACHE)")
        }
        let vocab = try GGUFVocabulary(path: path)
        guard let tokenizer = try vocab.makeTokenizer() as? SentencePieceBPETokenizer else {
            throw LMTestDataMissing(message: "\(path): expected a SentencePiece (llama) vocabulary")
        }
        return (vocab, tokenizer)
    }

    private func gemma(file: StaticString = #filePath, line: UInt = #line) throws -> (GGUFVocabulary, SentencePieceBPETokenizer) {
        do {
            return try Self.loaded.get()
        } catch {
            XCTFail("\(error)", file: file, line: line)
            throw error
        }
    }

    private func tokenizer() throws -> SentencePieceBPETokenizer { try gemma().1 }

    private func fixture(_ name: String) throws -> String { try TestData.fixture("gemma3/\(name)") }

    private func wikiText() throws -> String {
        try TestData.text(TestData.sharedFile("data/wikitext-2/valid.txt"))
    }

    /// FNV-1a 64 of the ids as little-endian uint32 (as make_fixtures.py computes it).
    static func fnv<C: Collection>(_ ids: C, _ h: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 where C.Element == Int {
        var h = h
        for id in ids {
            let v = UInt32(truncatingIfNeeded: id)
            for k in 0..<4 { h = (h ^ UInt64((v >> (8 * UInt32(k))) & 0xFF)) &* 0x100_0000_01B3 }
        }
        return h
    }

    static func fnv(bytes: some Sequence<UInt8>, _ h: UInt64) -> UInt64 {
        var h = h
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }

    static func hex(_ h: UInt64) -> String {
        let s = String(h, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    static func bytes(hex: String) -> [UInt8] {
        let u = Array(hex.utf8)
        return stride(from: 0, to: u.count, by: 2).map { UInt8(String(decoding: u[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
    }

    /// The lines llamacpp_file.py tokenizes: `text.split("\n")`, without whitespace-only ones
    /// (Python's `str.strip()`, whose whitespace includes U+001C…U+001F).
    static func nonEmptyLines(_ text: String) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { line in
            line.unicodeScalars.contains { s in !(s.properties.isWhitespace || (0x1C...0x1F).contains(s.value)) }
        }
    }

    // MARK: Vocabulary

    func testVocabularyAsLlamaCppLoadsIt() throws {
        let (vocab, t) = try gemma()
        XCTAssertEqual(vocab.model, "llama")
        XCTAssertEqual(vocab.tokens.count, 262_144)
        XCTAssertEqual(vocab.specialTokens, SpecialTokens(bos: 2, eos: 1, pad: 0, unk: 3))
        XCTAssertTrue(vocab.addBOS)
        XCTAssertFalse(vocab.addEOS)
        XCTAssertFalse(vocab.addSpacePrefix)
        // </s> is user-defined in the file; llama.cpp makes it control (an end of generation).
        XCTAssertEqual(vocab.tokenTypes[212], 4)
        XCTAssertEqual(vocab.llamaCppTokenTypes[212], 3)
        XCTAssertEqual(vocab.endOfGenerationTokens, [1, 106, 212])
        XCTAssertEqual(zip(vocab.tokenTypes, vocab.llamaCppTokenTypes).filter { $0 != $1 }.count, 1)
        XCTAssertEqual(t.vocabularySize, 262_144)
        XCTAssertEqual(t.piece(for: 236743), "\u{2581}")
        XCTAssertEqual(t.id(for: "<start_of_turn>"), 105)
        XCTAssertEqual(t.id(for: "<0x0A>"), 248)
        XCTAssertTrue(t.summary.contains("262144 pieces"), t.summary)
    }

    // MARK: Encoding

    func testExamples() throws {
        let t = try tokenizer()
        XCTAssertEqual(try t.encode("The capital of France is", addSpecialTokens: true), [2, 818, 5279, 529, 7001, 563])
        XCTAssertEqual(try t.encode("a</s>b", addSpecialTokens: true), [2, 236746, 954, 236751, 236813, 236763])
        XCTAssertEqual(try t.encode("a</s>b", addSpecialTokens: true, parseSpecialTokens: true), [2, 236746, 212, 236763])
        XCTAssertEqual(try t.encode("<start_of_turn>user\nHi<end_of_turn>\n", addSpecialTokens: true, parseSpecialTokens: true),
                       [2, 105, 2364, 107, 10979, 106, 107])
        XCTAssertEqual(try t.encode("", addSpecialTokens: true), [2])
        XCTAssertEqual(try t.encode(""), [])
        // User-defined pieces are split out even without parsing special tokens.
        XCTAssertEqual(try t.encode("\n\n"), [108])
        XCTAssertEqual(try t.encode("<b>"), [200])
        XCTAssertEqual(try t.encode("\t"), [255968])
    }

    func testHardStringsMatchLlamaCpp() throws {
        let t = try tokenizer()
        let json = try TestData.json(fixture("hard-strings.json"))
        let cases = try XCTUnwrap(json["cases"] as? [[String: Any]])
        XCTAssertGreaterThan(cases.count, 200)
        var passed = 0
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            let parse = try XCTUnwrap(c["parse_special"] as? Bool)
            let withBOS = try t.encode(text, addSpecialTokens: true, parseSpecialTokens: parse)
            let plain = try t.encode(text, parseSpecialTokens: parse)
            XCTAssertEqual(withBOS, TestData.ints(c["ids"]), "\(text.debugDescription) parse_special=\(parse)")
            XCTAssertEqual(plain, TestData.ints(c["ids_no_bos"]), "\(text.debugDescription) parse_special=\(parse)")
            if withBOS == TestData.ints(c["ids"]) && plain == TestData.ints(c["ids_no_bos"]) { passed += 1 }
            // No normalization and no dummy prefix: text without special tokens comes back
            // (except that a "▁" in the text comes back as a space, as in llama.cpp).
            if !parse {
                XCTAssertEqual(t.decode(withBOS, skipSpecialTokens: true), text.replacingOccurrences(of: "\u{2581}", with: " "),
                               text.debugDescription)
            }
        }
        print("gemma3 hard strings: \(passed)/\(cases.count) match llama.cpp")
    }

    /// Random mixes of special-token text (`</s>`, `<start_of_turn>`), user-defined text (`<b>`,
    /// space runs), whitespace and other characters: where the partition order matters.
    func testRandomMixesMatchLlamaCpp() throws {
        let t = try tokenizer()
        let json = try TestData.json(fixture("hard-strings.json"))
        let cases = try XCTUnwrap(json["random"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 120)
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            XCTAssertEqual(try t.encode(text), TestData.ints(c["ids"]), text.debugDescription)
            XCTAssertEqual(try t.encode(text, parseSpecialTokens: true), TestData.ints(c["ids_special"]), text.debugDescription)
        }
    }

    func testWikiTextLinesMatchLlamaCpp() throws {
        let t = try tokenizer()
        var expected = try TestData.text(fixture("valid-lines.txt"))
            .split(separator: "\n").filter { !$0.hasPrefix("#") }
            .map { $0.split(separator: " ").map(String.init) }
        let lines = Self.nonEmptyLines(try wikiText())
        XCTAssertEqual(lines.count, expected.count, "valid.txt and valid-lines.txt disagree on the number of lines")
        expected = Array(expected.prefix(lines.count))
        var matched = 0, tokens = 0, failures = 0
        let start = Date()
        for (line, e) in zip(lines, expected) {
            let ids = try t.encode(line, addSpecialTokens: true)
            tokens += ids.count
            if String(ids.count) == e[0] && Self.hex(Self.fnv(ids)) == e[1] {
                matched += 1
                XCTAssertEqual(t.decode(ids, skipSpecialTokens: true), line)
            } else {
                failures += 1
                if failures <= 10 {
                    XCTFail("\(line.debugDescription): \(ids.count) ids \(ids.prefix(40)), llama.cpp has \(e[0]) ids (run make_fixtures.py to see them)")
                }
            }
        }
        let seconds = Date().timeIntervalSince(start)
        print("gemma3 valid.txt lines: \(matched)/\(lines.count) match llama.cpp (\(tokens) ids; encode+decode \(String(format: "%.2f", seconds)) s)")
        XCTAssertEqual(matched, lines.count)
    }

    func testWikiTextWholeFileMatchesLlamaCpp() throws {
        let t = try tokenizer()
        let json = try TestData.json(fixture("valid-whole.json"))
        let text = try wikiText()
        let start = Date()
        let ids = try t.encode(text, addSpecialTokens: true)
        let seconds = Date().timeIntervalSince(start)
        print("gemma3 valid.txt as one string: \(ids.count) ids in \(String(format: "%.3f", seconds)) s (\(String(format: "%.1f", Double(text.utf8.count) / seconds / 1e6)) MB/s)")
        XCTAssertEqual(ids.count, (json["count"] as? NSNumber)?.intValue)
        XCTAssertEqual(Array(ids.prefix(256)), TestData.ints(json["first"]))
        XCTAssertEqual(Array(ids.suffix(256)), TestData.ints(json["last"]))
        let chunk = try XCTUnwrap((json["chunk"] as? NSNumber)?.intValue)
        let chunks = try XCTUnwrap(json["chunks"] as? [String])
        for (k, h) in chunks.enumerated() where k * chunk < ids.count {
            let got = Self.hex(Self.fnv(ids[(k * chunk)..<min(ids.count, (k + 1) * chunk)]))
            if got != h {
                XCTFail("ids \(k * chunk)..<\((k + 1) * chunk) differ from llama.cpp's")
                break
            }
        }
        XCTAssertEqual(Self.hex(Self.fnv(ids)), json["fnv"] as? String, "whole-file ids differ from llama.cpp's")
        XCTAssertEqual(t.decode(ids, skipSpecialTokens: true), text)
        // Parsing special tokens: the file's "<unk>" texts become <unk> (3).
        let special = try t.encode(text, addSpecialTokens: true, parseSpecialTokens: true)
        XCTAssertEqual(special.count, (json["parse_special_count"] as? NSNumber)?.intValue)
        XCTAssertEqual(Self.hex(Self.fnv(special)), json["parse_special_fnv"] as? String,
                       "whole-file ids with parse_special differ from llama.cpp's")
    }

    // MARK: Decoding

    func testDetokenizeMatchesLlamaCpp() throws {
        let t = try tokenizer()
        let json = try TestData.json(fixture("hard-strings.json"))
        let cases = try XCTUnwrap(json["decode"] as? [[String: Any]])
        for c in cases {
            let ids = TestData.ints(c["ids"])
            let skip = Self.bytes(hex: try XCTUnwrap(c["skip"] as? String))
            let keep = Self.bytes(hex: try XCTUnwrap(c["keep"] as? String))
            XCTAssertEqual(t.detokenize(ids, removeSpecial: true, unparseSpecial: false), skip, "\(ids)")
            XCTAssertEqual(t.detokenize(ids, removeSpecial: false, unparseSpecial: true), keep, "\(ids)")
            XCTAssertEqual(t.decode(ids, skipSpecialTokens: true), String(decoding: skip, as: UTF8.self), "\(ids)")
            XCTAssertEqual(t.decode(ids, skipSpecialTokens: false), String(decoding: keep, as: UTF8.self), "\(ids)")
        }
        XCTAssertEqual(t.decode([2, 105, 2364, 107, 10979, 106, 107]), "<bos><start_of_turn>user\nHi<end_of_turn>\n")
        XCTAssertEqual(t.decode([2, 105, 2364, 107, 10979, 106, 107], skipSpecialTokens: true), "user\nHi\n")
        XCTAssertEqual(t.decode([2, 818, 5279, 529, 7001, 563], skipSpecialTokens: true), "The capital of France is")
        XCTAssertEqual(t.decode([238 + 0xE2, 238 + 0x82, 238 + 0xAC]), "€")
    }

    func testEveryPieceMatchesLlamaCpp() throws {
        let t = try tokenizer()
        let json = try TestData.json(fixture("pieces.json"))
        let n = try XCTUnwrap((json["n_tokens"] as? NSNumber)?.intValue)
        XCTAssertEqual(n, t.vocabularySize)
        var h = [false: UInt64(0xCBF2_9CE4_8422_2325), true: UInt64(0xCBF2_9CE4_8422_2325)]
        for id in 0..<n {
            for special in [false, true] {
                let p = t.pieceBytes(for: id, special: special)
                let len = UInt32(p.count)
                h[special] = Self.fnv(bytes: p, Self.fnv(bytes: (0..<4).map { UInt8((len >> (8 * $0)) & 0xFF) }, h[special]!))
            }
        }
        XCTAssertEqual(Self.hex(h[false]!), json["piece_fnv"] as? String, "token_to_piece(special: false) differs")
        XCTAssertEqual(Self.hex(h[true]!), json["piece_special_fnv"] as? String, "token_to_piece(special: true) differs")
        for s in try XCTUnwrap(json["sample"] as? [[String: Any]]) {
            let id = try XCTUnwrap((s["id"] as? NSNumber)?.intValue)
            XCTAssertEqual(Array(t.pieceBytes(for: id, special: false)), Self.bytes(hex: s["piece"] as! String), "\(id)")
            XCTAssertEqual(Array(t.pieceBytes(for: id, special: true)), Self.bytes(hex: s["piece_special"] as! String), "\(id)")
        }
        // isSpecial: exactly llama.cpp's CONTROL/UNKNOWN tokens.
        var special = [Bool](repeating: false, count: n)
        for r in try XCTUnwrap(json["special_ranges"] as? [[NSNumber]]) {
            for id in r[0].intValue..<r[1].intValue { special[id] = true }
        }
        XCTAssertEqual((0..<n).filter { t.isSpecial($0) != special[$0] }, [])
    }

    func testStreamingDetokenizer() throws {
        let t = try tokenizer()
        var texts = Array(Self.nonEmptyLines(try wikiText()).prefix(200))
        texts += ["你好，世界！🤖🦙 👨‍👩‍👧 \u{13000}\u{1F9EC} e\u{301}", "\n\n\t  x  \n", "<start_of_turn>user\nHi<end_of_turn>\n"]
        for text in texts {
            let ids = try t.encode(text, addSpecialTokens: true, parseSpecialTokens: true)
            for skip in [true, false] {
                var stream = t.makeStreamingDetokenizer(skipSpecialTokens: skip)
                var out = ""
                for id in ids { out += stream.append(id) }
                out += stream.flush()
                XCTAssertEqual(out, t.decode(ids, skipSpecialTokens: skip), text.debugDescription)
            }
        }
    }

    // MARK: llama.cpp's leading-space rules (an SPM vocabulary with add_space_prefix)

    func testLlamaSpmDetokenizeAndPrefixMatchLlamaCpp() throws {
        let t = try XCTUnwrap(TokenizerLoader.load(path: TestData.sharedFile("data/llama-cpp-vocab/ggml-vocab-llama-spm.gguf")) as? SentencePieceBPETokenizer)
        let json = try TestData.json(fixture("llama-spm-detokenize.json"))
        for c in try XCTUnwrap(json["decode"] as? [[String: Any]]) {
            let ids = TestData.ints(c["ids"])
            XCTAssertEqual(t.detokenize(ids, removeSpecial: true, unparseSpecial: false),
                           Self.bytes(hex: c["skip"] as! String), "\(ids) skip")
            XCTAssertEqual(t.detokenize(ids, removeSpecial: false, unparseSpecial: true),
                           Self.bytes(hex: c["keep"] as! String), "\(ids) keep")
        }
        for c in try XCTUnwrap(json["cases"] as? [[String: Any]]) {
            let text = c["text"] as! String
            let parse = c["parse_special"] as! Bool
            XCTAssertEqual(try t.encode(text, parseSpecialTokens: parse), TestData.ints(c["ids_no_bos"]),
                           "\(text.debugDescription) parse_special=\(parse)")
        }
    }

    // MARK: Speed

    func testLoadAndEncodeTimes() throws {
        let path = Self.modelPath
        _ = try gemma()
        var start = Date()
        let meta = try GGUFMetadata(path: path)
        let tMeta = Date().timeIntervalSince(start)
        start = Date()
        let vocab = try GGUFVocabulary(metadata: meta, path: path)
        let tVocab = Date().timeIntervalSince(start)
        start = Date()
        let tokenizer = try vocab.makeTokenizer()
        let tBuild = Date().timeIntervalSince(start)
        start = Date()
        _ = try GGUFVocabulary(path: path)
        let tEndToEnd = Date().timeIntervalSince(start)
        let text = try wikiText()
        start = Date()
        let ids = try tokenizer.encode(text, addSpecialTokens: true)
        let tEncode = Date().timeIntervalSince(start)
        start = Date()
        _ = tokenizer.decode(ids, skipSpecialTokens: true)
        let tDecode = Date().timeIntervalSince(start)
        func ms(_ s: Double) -> String { String(format: "%.0f ms", s * 1000) }
        print("gemma3 timings: GGUFMetadata \(ms(tMeta)), GGUFVocabulary(metadata:) \(ms(tVocab)), GGUFVocabulary(path:) \(ms(tEndToEnd)), makeTokenizer \(ms(tBuild)), encode valid.txt (\(text.utf8.count) bytes, \(ids.count) ids) \(ms(tEncode)), decode \(ms(tDecode))")
    }
}
