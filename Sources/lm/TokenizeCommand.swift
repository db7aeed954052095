import ArgumentParser
import Foundation
import LMCore
import LMTokenizers

/// `lm tokenize`: text to token ids with any tokenizer the library reads.
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Turn text into token ids (and pieces) with a model folder's tokenizer, a .model or a .gguf vocabulary.",
        discussion: reflow("""
        TEXT is the argument, or the whole of stdin (newlines included) when no TEXT is given. No special tokens are added unless --add-special, except for BERT WordPiece tokenizers, which add [CLS]/[SEP] as Hugging Face does (turn that off with --no-special). Invalid UTF-8 input is an error.

        With --lines, each line of the input (split at \\n) is tokenized on its own and printed on one line (ids, pieces or a JSON object).

        --tokenizer NAME (a name that is not a path) is a bundled tokenizer: the folder tokenizers/NAME, looked up in $LM_TOKENIZERS, ./tokenizers and the tokenizers/ folder of the checkout that built lm (gpt2, bert-base-uncased, wikitext2-spm, char-shakespeare; see tokenizers/README.md).

        With --decode, TEXT is token ids (spaces or commas between them) and the output is their text (with --json: {"ids": [...], "text": "..."}).

        Examples:
          lm tokenize --tokenizer gpt2 "Hello world"
          lm tokenize --tokenizer gpt2 --decode "15496 995"
          echo "Hello world" | lm tokenize --tokenizer tokenizer.model --json
          lm tokenize --tokenizer gemma-3-270m-q4_k_m.gguf --add-special --lines --ids < valid.txt
          lm tokenize --tokenizer ggml-vocab-bert-bge.gguf --ids --no-special "Führer"
        """))

    @Option(help: "A bundled tokenizer's name (tokenizers/NAME), a model folder (tokenizer.json, tokenizer.model, vocab.txt, or vocab.json + merges.txt), a .model file, or a .gguf file (a model or a vocabulary).")
    var tokenizer: String

    @Flag(help: "Tokenize each line of the input on its own; one output line per input line.")
    var lines = false

    @Flag(help: "Print only the ids, space-separated, on one line.")
    var ids = false
    @Flag(help: "Print only the pieces, space-separated, on one line.")
    var pieces = false
    @Flag(help: "Print one JSON object: {\"ids\": [...], \"pieces\": [...]}.")
    var json = false
    @Flag(help: "Add the tokenizer's special tokens (<s>, [CLS]/[SEP], ...).")
    var addSpecial = false
    @Flag(help: "Add no special tokens, not even BERT's [CLS]/[SEP].")
    var noSpecial = false
    @Flag(help: "Turn the text of special tokens (<|endoftext|>, [MASK]) into their ids instead of tokenizing it as text.")
    var parseSpecial = false
    @Flag(help: "Decode: the input is token ids (spaces or commas between them); print their text.")
    var decode = false

    @Option(help: .hidden) var benchFile: String?
    /// `library` forces libsentencepiece for .model files (the Swift encoder's reference).
    @Option(help: .hidden) var sentencepieceEngine: String?
    @Option(help: .hidden) var benchReps: Int = 3

    @Argument(help: "The text to tokenize (default: read stdin).")
    var text: String?

    func validate() throws {
        if [ids, pieces, json].filter({ $0 }).count > 1 {
            throw LMError(.invalidArgument, "give only one of --ids, --pieces and --json")
        }
        if addSpecial && noSpecial {
            throw LMError(.invalidArgument, "give --add-special or --no-special, not both")
        }
        if benchReps < 1 { throw LMError(.invalidArgument, "--bench-reps must be at least 1") }
        if decode && (ids || pieces || lines || addSpecial || noSpecial || parseSpecial) {
            throw LMError(.invalidArgument, "--decode prints text: give it alone or with --json")
        }
    }

    func run() throws {
        if tokenizer == "char" || tokenizer.hasPrefix("spm:") {
            throw LMError(.invalidArgument, "--tokenizer \(tokenizer) names a tokenizer lm train builds from its corpus; lm tokenize needs an existing one (a bundled name such as char-shakespeare, or a path)")
        }
        let path = try resolveTokenizerArgument(tokenizer)
        let tok: any Tokenizer
        if sentencepieceEngine == "library", path.hasSuffix(".model") {
            tok = try SentencePieceTokenizer(modelFile: path, engine: .library)
        } else {
            tok = try TokenizerLoader.load(path: path)
        }
        let add = addSpecial ? true : (noSpecial ? false : tok.addsSpecialTokensByDefault)
        if let benchFile {
            try TokenizerBenchmark.run(tokenizer: tok, file: benchFile, addSpecial: add, reps: benchReps)
            return
        }
        let input: String
        if let text {
            input = text
        } else {
            input = try UTF8Text.decode(Array(FileHandle.standardInput.readDataToEndOfFile()), source: "stdin")
        }
        if decode {
            let list = try parseIDs(input.trimmingCharacters(in: .whitespacesAndNewlines), flag: "--decode")
            if let bad = list.first(where: { $0 >= tok.vocabularySize }) {
                throw LMError(.invalidInput, "--decode: id \(bad) is out of range for this tokenizer's \(tok.vocabularySize) tokens (0...\(tok.vocabularySize - 1))")
            }
            let text = tok.decode(list)
            print(json ? jsonLine(["ids": list, "text": text]) : text)
            return
        }
        if lines {
            for line in TextFile.lines(of: input) {
                let r = try tok.encode(line, addSpecialTokens: add, parseSpecialTokens: parseSpecial)
                if json {
                    print(jsonLine(["ids": r, "pieces": tok.pieces(for: r)]))
                } else if pieces {
                    print(tok.pieces(for: r).joined(separator: " "))
                } else {
                    print(r.map(String.init).joined(separator: " "))
                }
            }
            return
        }
        let result = try tok.encode(input, addSpecialTokens: add, parseSpecialTokens: parseSpecial)
        let names = tok.pieces(for: result)
        if json {
            print(jsonLine(["ids": result, "pieces": names]))
        } else if ids {
            print(result.map(String.init).joined(separator: " "))
        } else if pieces {
            print(names.joined(separator: " "))
        } else {
            let width = max(2, result.map { String($0).count }.max() ?? 2)
            print(String(repeating: " ", count: width - 2) + "id  piece")
            for (id, name) in zip(result, names) {
                let s = String(id)
                print(String(repeating: " ", count: width - s.count) + s + "  " + name.debugDescription.dropFirst().dropLast())
            }
            print("\(result.count) token\(result.count == 1 ? "" : "s") — \(tok.summary)")
        }
    }
}

/// `lm tokenizer`: tokenizer tools.
struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Train tokenizers.",
        discussion: reflow("""
        Examples:
          lm tokenizer train --input c.txt --vocab-size 8000 --model-type bpe --output tok/
        """),
        subcommands: [TokenizerTrainCommand.self])
}

/// The hidden `lm tokenize --bench-file FILE` mode used by Benchmarks/tokenizers: encodes every
/// line of FILE (split like Python's `str.splitlines()`, as the peer script does), one thread,
/// `reps` timed passes after a warm-up, and prints one JSON line with MB/s.
enum TokenizerBenchmark {
    static func run(tokenizer: any Tokenizer, file: String, addSpecial: Bool, reps: Int) throws {
        let bytes = try MappedFile(path: file)
        let text = try UTF8Text.decode(Array(bytes.bytes), source: "'\(file)'")
        let lines = splitLines(text)
        let megabytes = Double(bytes.size) / 1e6
        var tokens = 0
        func pass() throws -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            var n = 0
            for line in lines {
                n += try tokenizer.encode(line, addSpecialTokens: addSpecial).count
            }
            tokens = n
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        // A checksum of every line's ids (not timed), so the benchmark script can check that
        // the peers produced exactly the same tokens: h = (h * 1000003 + id + 1) mod (2^61 - 1),
        // with a 0 after each line.
        var checksum: UInt64 = 0
        let modulus: UInt64 = (1 << 61) - 1
        for line in lines {
            for id in try tokenizer.encode(line, addSpecialTokens: addSpecial) {
                checksum = UInt64((UInt128(checksum) * 1_000_003 + UInt128(id + 1)) % UInt128(modulus))
            }
            checksum = UInt64((UInt128(checksum) * 1_000_003) % UInt128(modulus))
        }
        _ = try pass()
        var seconds: [Double] = []
        for _ in 0..<reps { seconds.append(try pass()) }
        let rates = seconds.map { megabytes / $0 }.sorted()
        let object: [String: Any] = [
            "tokenizer": tokenizer.summary, "file": file, "bytes": bytes.size, "lines": lines.count,
            "tokens": tokens, "ids_checksum": String(checksum), "add_special": addSpecial, "reps": reps,
            "seconds": seconds.map { ($0 * 1000).rounded() / 1000 },
            "encode_MBps": ["min": round2(rates.first ?? 0), "median": round2(rates[rates.count / 2]),
                            "max": round2(rates.last ?? 0)],
        ]
        print(jsonLine(object))
    }

    private static func round2(_ v: Double) -> Double { (v * 100).rounded() / 100 }

    /// Python's `str.splitlines()`: breaks at \n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, U+2028, U+2029.
    static func splitLines(_ text: String) -> [String] {
        var out: [String] = []
        var current = String.UnicodeScalarView()
        var pendingCR = false
        for s in text.unicodeScalars {
            if pendingCR {
                pendingCR = false
                if s == "\n" { continue }
            }
            switch s.value {
            case 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029:
                out.append(String(current))
                current = String.UnicodeScalarView()
                pendingCR = s.value == 0x0D
            default:
                current.append(s)
            }
        }
        if !current.isEmpty { out.append(String(current)) }
        return out
    }
}
