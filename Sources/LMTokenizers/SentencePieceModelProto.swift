import LMCore

/// The parts of a serialized SentencePiece `ModelProto` (a `.model` file) that encoding needs,
/// read with a minimal protobuf wire-format reader: the pieces, the trainer spec's model type
/// and flags, and the normalizer spec (rule name, precompiled character map, whitespace flags).
///
/// Field numbers follow sentencepiece_model.proto; unknown fields are skipped, absent fields
/// take the proto's declared defaults.
struct SentencePieceModelProto {
    enum ModelType: Int { case unigram = 1, bpe = 2, word = 3, char = 4 }

    struct Piece {
        var piece: String
        var score: Float
        var type: SentencePiecePieceType
    }

    var pieces: [Piece] = []
    var modelType: ModelType = .unigram
    var byteFallback = false
    var treatWhitespaceAsSuffix = false
    var normalizerName = ""
    var precompiledCharsMap: [UInt8] = []
    var addDummyPrefix = true
    var removeExtraWhitespaces = true
    var escapeWhitespaces = true
    var hasNormalizationRuleTSV = false

    init(bytes: UnsafeRawBufferPointer) throws {
        var r = ProtoReader(bytes)
        while let (field, wire) = try r.next() {
            switch (field, wire) {
            case (1, 2): pieces.append(try Self.piece(r.message()))
            case (2, 2): try readTrainerSpec(r.message())
            case (3, 2): try readNormalizerSpec(r.message())
            default: try r.skip(wire)
            }
        }
    }

    private static func piece(_ bytes: UnsafeRawBufferPointer) throws -> Piece {
        var r = ProtoReader(bytes)
        var p = Piece(piece: "", score: 0, type: .normal)
        while let (field, wire) = try r.next() {
            switch (field, wire) {
            case (1, 2): p.piece = String(decoding: try r.message(), as: UTF8.self)
            case (2, 5): p.score = Float(bitPattern: try r.fixed32())
            case (3, 0): p.type = SentencePiecePieceType(rawValue: Int(try r.varint())) ?? .normal
            default: try r.skip(wire)
            }
        }
        return p
    }

    private mutating func readTrainerSpec(_ bytes: UnsafeRawBufferPointer) throws {
        var r = ProtoReader(bytes)
        while let (field, wire) = try r.next() {
            switch (field, wire) {
            case (3, 0): modelType = ModelType(rawValue: Int(try r.varint())) ?? .unigram
            case (24, 0): treatWhitespaceAsSuffix = try r.varint() != 0
            case (35, 0): byteFallback = try r.varint() != 0
            default: try r.skip(wire)
            }
        }
    }

    private mutating func readNormalizerSpec(_ bytes: UnsafeRawBufferPointer) throws {
        var r = ProtoReader(bytes)
        while let (field, wire) = try r.next() {
            switch (field, wire) {
            case (1, 2): normalizerName = String(decoding: try r.message(), as: UTF8.self)
            case (2, 2): precompiledCharsMap = Array(try r.message())
            case (3, 0): addDummyPrefix = try r.varint() != 0
            case (4, 0): removeExtraWhitespaces = try r.varint() != 0
            case (5, 0): escapeWhitespaces = try r.varint() != 0
            case (6, 2): hasNormalizationRuleTSV = !(try r.message()).isEmpty
            default: try r.skip(wire)
            }
        }
    }
}

/// Protobuf wire format, just enough to walk messages.
struct ProtoReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    private func corrupt() -> LMError {
        LMError(.corruptFile, "the SentencePiece model is truncated or corrupt at byte \(offset)")
    }

    /// The next field number and wire type, or nil at the end.
    mutating func next() throws -> (Int, Int)? {
        if offset >= bytes.count { return nil }
        let key = try varint()
        return (Int(key >> 3), Int(key & 7))
    }

    mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < bytes.count, shift < 64 else { throw corrupt() }
            let b = bytes[offset]
            offset += 1
            value |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return value }
            shift += 7
        }
    }

    mutating func fixed32() throws -> UInt32 {
        guard offset + 4 <= bytes.count else { throw corrupt() }
        let v = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        offset += 4
        return v
    }

    /// A length-delimited field's bytes.
    mutating func message() throws -> UnsafeRawBufferPointer {
        let n = try varint()
        guard n <= UInt64(bytes.count - offset) else { throw corrupt() }
        let start = offset
        offset += Int(n)
        return UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
    }

    mutating func skip(_ wire: Int) throws {
        switch wire {
        case 0: _ = try varint()
        case 1:
            guard offset + 8 <= bytes.count else { throw corrupt() }
            offset += 8
        case 2: _ = try message()
        case 5:
            guard offset + 4 <= bytes.count else { throw corrupt() }
            offset += 4
        default: throw corrupt()
        }
    }
}
