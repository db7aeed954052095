import CSentencePiece
#if canImport(Glibc)
import Glibc
#endif
import LMCore

/// A SentencePiece model (`tokenizer.model`) run by libsentencepiece through the CSentencePiece
/// shim: BPE, unigram, char or word models, with the model's own normalization, dummy prefix and
/// byte fallback — exactly what Python's `sentencepiece` and Hugging Face's slow Llama/T5
/// tokenizers produce. This is the only file that imports CSentencePiece (training is in
/// `SentencePieceTrainer`, which calls the shim's `csp_train`).
///
/// ```swift
/// let sp = try SentencePieceTokenizer(modelFile: "llama-tiny/tokenizer.model")
/// let ids = try sp.encode("Hello world")        // no <s>; encode(_:addSpecialTokens: true) adds it
/// sp.pieces(for: ids)                           // ["▁H", "ello", "▁world"]-style pieces
/// sp.decode(ids)                                // "Hello world"
/// ```
public final class SentencePieceTokenizer: Tokenizer, @unchecked Sendable {
    private let handle: OpaquePointer
    public let vocabularySize: Int
    public let specialTokens: SpecialTokens
    public let postProcessor: PostProcessor
    public let addsSpecialTokensByDefault = false
    public var summary: String {
        let engine = swiftEncoder.map { "\($0.algorithm), Swift encoder" } ?? "libsentencepiece"
        return "SentencePiece (\(engine)), \(vocabularySize) pieces\(hasByteFallback ? ", byte fallback" : "")"
    }

    /// Which code encodes text.
    public enum Engine: String, Sendable {
        /// The Swift encoder (`SentencePieceEncoder`) when it supports the model (BPE and unigram
        /// models with the standard normalizers), libsentencepiece otherwise.
        case automatic
        /// Always libsentencepiece (the reference).
        case library
    }

    /// Whether the model has the 256 byte pieces `<0x00>`…`<0xFF>`.
    public let hasByteFallback: Bool
    /// The engine that `encode` uses for this model.
    public let engine: Engine
    private let types: [Int32]
    private let added: AddedTokens
    private let swiftEncoder: SentencePieceEncoder?

    /// Loads a serialized model (the bytes of a `.model` file). libsentencepiece always loads
    /// it (and so validates it, and decodes); encoding goes through the Swift engine when
    /// `engine` is `.automatic` and the model is one it supports.
    public init(modelBytes: [UInt8], engine: Engine = .automatic) throws {
        var error: UnsafeMutablePointer<CChar>? = nil
        let h = modelBytes.withUnsafeBytes { csp_load_bytes($0.baseAddress, $0.count, &error) }
        guard let h else {
            throw LMError(.corruptFile, "not a SentencePiece model (\(Self.message(error))); pass the tokenizer.model written by SentencePiece")
        }
        self.handle = h
        (vocabularySize, specialTokens, postProcessor, hasByteFallback, types, added) = Self.describe(h)
        var encoder: SentencePieceEncoder? = nil
        if engine == .automatic {
            let proto = modelBytes.withUnsafeBytes { try? SentencePieceModelProto(bytes: $0) }
            if let proto, proto.pieces.count == vocabularySize { encoder = SentencePieceEncoder(proto: proto) }
        }
        self.swiftEncoder = encoder
        self.engine = encoder == nil ? .library : .automatic
    }

    /// Loads a `.model` file.
    public convenience init(modelFile path: String, engine: Engine = .automatic) throws {
        let file = try MappedFile(path: path)
        if file.size == 0 {
            throw LMError(.corruptFile, "'\(path)' is empty; expected a SentencePiece tokenizer.model")
        }
        do {
            try self.init(modelBytes: Array(file.bytes), engine: engine)
        } catch let e as LMError {
            throw LMError(e.kind, "'\(path)' is \(e.message)")
        }
    }

    deinit {
        csp_processor_free(handle)
    }

    private static func describe(_ h: OpaquePointer) -> (Int, SpecialTokens, PostProcessor, Bool, [Int32], AddedTokens) {
        let size = Int(csp_piece_size(h))
        func id(_ v: Int32) -> Int? { v >= 0 && Int(v) < size ? Int(v) : nil }
        let tokens = SpecialTokens(bos: id(csp_bos_id(h)), eos: id(csp_eos_id(h)), pad: id(csp_pad_id(h)),
                                   unk: id(csp_unk_id(h)))
        let types = (0..<size).map { csp_piece_type(h, Int32($0)) }
        let bytes = types.lazy.filter { $0 == 6 }.count == 256
        var control: [(content: String, id: Int)] = []
        for (i, t) in types.enumerated() where t == 3 {
            var n = 0
            if let p = csp_id_to_piece(h, Int32(i), &n) {
                let s = String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
                control.append((s, i))
            }
        }
        // Hugging Face's Llama tokenizer adds <s> (not </s>) by default.
        return (size, tokens, .bosEos(bos: tokens.bos, eos: nil), bytes, types, AddedTokens(control))
    }

    private static func message(_ error: UnsafeMutablePointer<CChar>?) -> String {
        guard let error else { return "unknown error" }
        defer { csp_string_free(error) }
        return String(cString: error)
    }

    public func encode(_ text: String, parseSpecialTokens: Bool) throws -> [Int] {
        if let swiftEncoder {
            return encodeSplittingAddedTokens(text, added: added, parse: parseSpecialTokens) { p, out in
                swiftEncoder.encode(p, into: &out)
            }
        }
        return try encodeWithLibrary(text, parseSpecialTokens: parseSpecialTokens)
    }

    /// Encodes with libsentencepiece whatever the engine (the reference for the Swift engine).
    public func encodeWithLibrary(_ text: String, parseSpecialTokens: Bool = false) throws -> [Int] {
        var failure: String? = nil
        let ids = encodeSplittingAddedTokens(text, added: added, parse: parseSpecialTokens) { p, out in
            var count = 0
            var error: UnsafeMutablePointer<CChar>? = nil
            let raw = UnsafeRawPointer(p.baseAddress).map { $0.assumingMemoryBound(to: CChar.self) }
            guard let result = csp_encode_ids(handle, raw, p.count, &count, &error) else {
                failure = Self.message(error)
                return
            }
            out.reserveCapacity(out.count + count)
            for k in 0..<count { out.append(Int(result[k])) }
        }
        if let failure {
            throw LMError(.library, "SentencePiece could not encode the text: \(failure)")
        }
        return ids
    }

    /// Encodes into pieces as libsentencepiece segments the text (for an unknown character
    /// without byte fallback this is the character itself, not `<unk>`).
    public func encodeAsPieces(_ text: String) throws -> [String] {
        var copy = text
        return try copy.withUTF8 { p -> [String] in
            var bytes: UnsafePointer<CChar>? = nil
            var count = 0
            var error: UnsafeMutablePointer<CChar>? = nil
            let raw = UnsafeRawPointer(p.baseAddress).map { $0.assumingMemoryBound(to: CChar.self) }
            guard let lengths = csp_encode_pieces(handle, raw, p.count, &bytes, &count, &error) else {
                throw LMError(.library, "SentencePiece could not encode the text: \(Self.message(error))")
            }
            var out: [String] = []
            var offset = 0
            for k in 0..<count {
                let n = lengths[k]
                let start = UnsafeRawPointer(bytes!) + offset
                out.append(String(decoding: UnsafeRawBufferPointer(start: start, count: n), as: UTF8.self))
                offset += n
            }
            return out
        }
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        // libsentencepiece never prints control pieces; out-of-range ids become U+FFFD here.
        var out = ""
        var run: [Int32] = []
        func flushRun() {
            if run.isEmpty { return }
            var length = 0
            var error: UnsafeMutablePointer<CChar>? = nil
            if let p = run.withUnsafeBufferPointer({ csp_decode_ids(handle, $0.baseAddress, $0.count, &length, &error) }) {
                out += String(decoding: UnsafeRawBufferPointer(start: p, count: length), as: UTF8.self)
            } else {
                _ = Self.message(error)
                out += "\u{FFFD}"
            }
            run.removeAll(keepingCapacity: true)
        }
        for id in ids {
            if id >= 0 && id < vocabularySize {
                run.append(Int32(id))
            } else {
                flushRun()
                out += "\u{FFFD}"
            }
        }
        flushRun()
        return out
    }

    public func piece(for id: Int) -> String? {
        var n = 0
        guard id >= 0 && id < vocabularySize, let p = csp_id_to_piece(handle, Int32(id), &n) else { return nil }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
    }

    public func id(for piece: String) -> Int? {
        var copy = piece
        let id = copy.withUTF8 { p in
            p.withMemoryRebound(to: CChar.self) { csp_piece_to_id(handle, $0.baseAddress, $0.count) }
        }
        if id < 0 { return nil }
        // PieceToId answers unk_id for unknown pieces; only the unknown piece itself maps there.
        if let unk = specialTokens.unk, Int(id) == unk, self.piece(for: unk) != piece { return nil }
        return Int(id)
    }

    public func isSpecial(_ id: Int) -> Bool {
        id >= 0 && id < types.count && types[id] == 3
    }

    /// The score of a piece (log probability for unigram, negative merge order for BPE).
    public func score(for id: Int) -> Float {
        csp_score(handle, Int32(id))
    }

    /// The piece type: normal, unknown, control, unused or byte.
    public func pieceType(for id: Int) -> SentencePiecePieceType {
        guard id >= 0 && id < types.count else { return .normal }
        return SentencePiecePieceType(rawValue: Int(types[id])) ?? .normal
    }
}

/// SentencePiece's piece types (also the GGUF `tokenizer.ggml.token_type` values).
public enum SentencePiecePieceType: Int, Sendable {
    case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

/// The shim's trainer entry point, kept in this file so that only it imports CSentencePiece.
/// `SentencePieceTrainer` validates every option before calling this.
enum SentencePieceLibrary {
    /// Runs libsentencepiece's trainer with flag-style options; returns the serialized model,
    /// or throws the library's status message.
    static func train(_ options: [(String, String)]) throws -> [UInt8] {
        var keys = options.map { strdup($0.0) }
        var values = options.map { strdup($0.1) }
        defer {
            keys.forEach { free($0) }
            values.forEach { free($0) }
        }
        var size = 0
        var error: UnsafeMutablePointer<CChar>? = nil
        let model: UnsafeMutableRawPointer? = keys.withUnsafeMutableBufferPointer { k in
            values.withUnsafeMutableBufferPointer { v in
                k.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: k.count) { kp in
                    v.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: v.count) { vp in
                        csp_train(kp, vp, options.count, &size, &error)
                    }
                }
            }
        }
        guard let model else {
            var message = "unknown error"
            if let error {
                message = String(cString: error)
                csp_string_free(error)
            }
            throw LMError(.library, message)
        }
        defer { csp_bytes_free(model) }
        return Array(UnsafeRawBufferPointer(start: model, count: size))
    }
}
