import LMCore

/// One metadata value of a GGUF file.
public indirect enum GGUFValue: Equatable, Sendable {
    case uint(UInt64)
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])

    public var intValue: Int? {
        switch self {
        case .uint(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int(let v): return Int(v)
        default: return nil
        }
    }
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    public var arrayValue: [GGUFValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
    public var doubleValue: Double? {
        switch self {
        case .float(let v): return v
        case .int(let v): return Double(v)
        case .uint(let v): return Double(v)
        default: return nil
        }
    }
}

/// The metadata of a GGUF file (llama.cpp's format): magic `GGUF`, version (2 or 3), tensor
/// count, key/value count, then typed key/value pairs, all little-endian. Tensor descriptions
/// and data that follow the metadata are not read — this reader is for vocabularies.
public struct GGUFMetadata: Sendable {
    public let version: Int
    public let tensorCount: Int
    public let values: [String: GGUFValue]

    /// Reads the metadata of the file at `path`.
    public init(path: String) throws {
        let file = try MappedFile(path: path)
        do {
            try self.init(bytes: file.bytes)
        } catch let e as LMError {
            throw LMError(e.kind, "'\(path)': \(e.message)")
        }
    }

    public init(bytes: UnsafeRawBufferPointer) throws {
        var r = Reader(bytes: bytes)
        guard bytes.count >= 4, bytes[0] == 0x47, bytes[1] == 0x47, bytes[2] == 0x55, bytes[3] == 0x46 else {
            throw LMError(.corruptFile, "not a GGUF file (it does not start with 'GGUF'); pass a llama.cpp .gguf vocabulary")
        }
        r.offset = 4
        let version = Int(try r.u32())
        guard version == 2 || version == 3 else {
            throw LMError(.corruptFile, "GGUF version \(version) is not supported (only 2 and 3); convert it with a recent llama.cpp")
        }
        let tensors = try r.u64()
        let count = try r.u64()
        guard count <= UInt64(bytes.count) else {
            throw LMError(.corruptFile, "GGUF header claims \(count) metadata entries in a \(bytes.count)-byte file; the file is corrupt")
        }
        var values: [String: GGUFValue] = [:]
        for _ in 0..<count {
            let key = try r.string()
            let type = try r.u32()
            values[key] = try r.value(type: type)
        }
        self.version = version
        self.tensorCount = Int(clamping: tensors)
        self.values = values
    }

    public subscript(key: String) -> GGUFValue? { values[key] }

    /// A bounds-checked little-endian reader.
    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var offset = 0

        mutating func need(_ n: Int) throws {
            guard n >= 0, offset + n <= bytes.count else {
                throw LMError(.corruptFile, "GGUF metadata is truncated at byte \(offset) (needs \(n) more bytes); the file is incomplete")
            }
        }
        mutating func load<T: FixedWidthInteger>(_: T.Type) throws -> T {
            try need(MemoryLayout<T>.size)
            let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
            offset += MemoryLayout<T>.size
            return v
        }
        mutating func u32() throws -> UInt32 { try load(UInt32.self) }
        mutating func u64() throws -> UInt64 { try load(UInt64.self) }
        mutating func string() throws -> String {
            let n = try u64()
            guard n <= UInt64(bytes.count - offset) else {
                throw LMError(.corruptFile, "GGUF string of \(n) bytes at byte \(offset) runs past the end of the file")
            }
            let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + Int(n)]), as: UTF8.self)
            offset += Int(n)
            return s
        }
        mutating func value(type: UInt32) throws -> GGUFValue {
            switch type {
            case 0: return .uint(UInt64(try load(UInt8.self)))
            case 1: return .int(Int64(try load(Int8.self)))
            case 2: return .uint(UInt64(try load(UInt16.self)))
            case 3: return .int(Int64(try load(Int16.self)))
            case 4: return .uint(UInt64(try load(UInt32.self)))
            case 5: return .int(Int64(try load(Int32.self)))
            case 6: return .float(Double(Float(bitPattern: try load(UInt32.self))))
            case 7: return .bool(try load(UInt8.self) != 0)
            case 8: return .string(try string())
            case 9:
                let elementType = try u32()
                let n = try u64()
                guard n <= UInt64(bytes.count - offset) else {
                    throw LMError(.corruptFile, "GGUF array of \(n) elements at byte \(offset) cannot fit in the file")
                }
                var items: [GGUFValue] = []
                items.reserveCapacity(Int(n))
                for _ in 0..<n { items.append(try value(type: elementType)) }
                return .array(items)
            case 10: return .uint(try load(UInt64.self))
            case 11: return .int(try load(Int64.self))
            case 12: return .float(Double(bitPattern: try load(UInt64.self)))
            default:
                throw LMError(.corruptFile, "unknown GGUF value type \(type) at byte \(offset - 4); the file is corrupt or from a newer format")
            }
        }
    }
}

/// The tokenizer stored in a GGUF file's `tokenizer.ggml.*` keys (a llama.cpp vocabulary file or
/// a full model), and the `Tokenizer` it describes.
///
/// | `tokenizer.ggml.model` | tokenizer |
/// | --- | --- |
/// | `gpt2` | `ByteLevelBPETokenizer` from `tokens` + `merges` |
/// | `bert` | `WordPieceTokenizer` (uncased) from `tokens`, converted back from llama.cpp's `▁word` spelling to `##` |
/// | `llama` | `SentencePieceBPETokenizer` from `tokens` + `scores` + `token_type` |
public struct GGUFVocabulary: Sendable {
    public var model: String
    public var pre: String?
    public var tokens: [String]
    public var scores: [Float]
    public var tokenTypes: [Int]
    public var merges: [String]
    public var specialTokens: SpecialTokens
    public var addBOS: Bool
    public var addEOS: Bool
    public var addSpacePrefix: Bool

    public init(path: String) throws {
        let meta = try GGUFMetadata(path: path)
        try self.init(metadata: meta, path: path)
    }

    public init(metadata meta: GGUFMetadata, path: String = "the GGUF file") throws {
        guard let model = meta["tokenizer.ggml.model"]?.stringValue else {
            throw LMError(.invalidConfig, "'\(path)' has no tokenizer (no tokenizer.ggml.model key); use a GGUF that includes its vocabulary")
        }
        guard let tokenValues = meta["tokenizer.ggml.tokens"]?.arrayValue, !tokenValues.isEmpty else {
            throw LMError(.corruptFile, "'\(path)' has no tokenizer.ggml.tokens array; the vocabulary is missing")
        }
        self.model = model
        self.pre = meta["tokenizer.ggml.pre"]?.stringValue
        self.tokens = try tokenValues.map {
            guard let s = $0.stringValue else { throw LMError(.corruptFile, "'\(path)': tokenizer.ggml.tokens holds a non-string") }
            return s
        }
        self.scores = meta["tokenizer.ggml.scores"]?.arrayValue?.map { Float($0.doubleValue ?? 0) } ?? []
        self.tokenTypes = meta["tokenizer.ggml.token_type"]?.arrayValue?.map { $0.intValue ?? 1 } ?? []
        self.merges = meta["tokenizer.ggml.merges"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let n = tokens.count
        func id(_ keys: String...) -> Int? {
            for k in keys {
                if let v = meta["tokenizer.ggml.\(k)"]?.intValue, v >= 0, v < n { return v }
            }
            return nil
        }
        self.specialTokens = SpecialTokens(
            bos: id("bos_token_id"), eos: id("eos_token_id"), pad: id("padding_token_id"),
            unk: id("unknown_token_id"), cls: id("cls_token_id"),
            sep: id("seperator_token_id", "separator_token_id"), mask: id("mask_token_id"))
        self.addBOS = meta["tokenizer.ggml.add_bos_token"]?.boolValue ?? (model == "llama")
        self.addEOS = meta["tokenizer.ggml.add_eos_token"]?.boolValue ?? false
        self.addSpacePrefix = meta["tokenizer.ggml.add_space_prefix"]?.boolValue ?? (model == "llama")
        if !scores.isEmpty && scores.count != n || !tokenTypes.isEmpty && tokenTypes.count != n {
            throw LMError(.corruptFile, "'\(path)': \(n) tokens but \(scores.count) scores and \(tokenTypes.count) token types; the vocabulary is corrupt")
        }
    }

    /// The tokenizer this vocabulary describes.
    public func makeTokenizer() throws -> any Tokenizer {
        switch model {
        case "gpt2":
            var vocabulary: [String: Int] = [:]
            vocabulary.reserveCapacity(tokens.count)
            var added: [(content: String, id: Int, special: Bool)] = []
            for (i, t) in tokens.enumerated() {
                let type = i < tokenTypes.count ? tokenTypes[i] : 1
                if type == SentencePiecePieceType.control.rawValue || type == SentencePiecePieceType.userDefined.rawValue {
                    added.append((t, i, type == SentencePiecePieceType.control.rawValue))
                } else {
                    vocabulary[t] = i
                }
            }
            var pairs: [(String, String)] = []
            pairs.reserveCapacity(merges.count)
            for m in merges {
                guard let pair = splitMerge(m) else {
                    throw LMError(.corruptFile, "GGUF merge '\(m)' is not two symbols separated by a space")
                }
                pairs.append(pair)
            }
            let post: PostProcessor = addBOS || addEOS
                ? .bosEos(bos: addBOS ? specialTokens.bos : nil, eos: addEOS ? specialTokens.eos : nil) : .none
            return try ByteLevelBPETokenizer(vocabulary: vocabulary, merges: pairs, addedTokens: added,
                                             specialTokens: specialTokens, postProcessor: post)
        case "bert":
            // llama.cpp stores "▁word" for word-initial pieces and "ing" for "##ing".
            let vocabulary = tokens.map { t -> String in
                let scalars = t.unicodeScalars
                if scalars.first == "[" && scalars.last == "]" { return t }
                if scalars.first == "\u{2581}" { return String(scalars.dropFirst()) }
                return "##" + t
            }
            var config = WordPieceTokenizer.Configuration()
            func name(_ id: Int?) -> String? { id.map { vocabulary[$0] } }
            if let s = name(specialTokens.unk) { config.unkToken = s }
            if let s = name(specialTokens.cls) { config.clsToken = s }
            if let s = name(specialTokens.sep) { config.sepToken = s }
            if let s = name(specialTokens.pad) { config.padToken = s }
            if let s = name(specialTokens.mask) { config.maskToken = s }
            return try WordPieceTokenizer(vocabulary: vocabulary, configuration: config)
        case "llama":
            return try SentencePieceBPETokenizer(
                pieces: tokens, scores: scores.isEmpty ? Array(repeating: 0, count: tokens.count) : scores,
                types: tokenTypes.isEmpty ? Array(repeating: 1, count: tokens.count) : tokenTypes,
                specialTokens: specialTokens, addSpacePrefix: addSpacePrefix,
                postProcessor: .bosEos(bos: addBOS ? specialTokens.bos : nil, eos: addEOS ? specialTokens.eos : nil))
        default:
            throw LMError(.invalidConfig, "GGUF tokenizer model '\(model)' is not supported; supported: gpt2 (byte-level BPE), bert (WordPiece), llama (SentencePiece BPE)")
        }
    }
}
