import Foundation
import LMCore

/// A tokenized corpus on disk: written once, then memory-mapped for training.
///
/// Format (little-endian): the magic `LMTOKENS`, UInt32 version (1), UInt32 bytes per token
/// (2 when the vocabulary fits in 16 bits, else 4), UInt64 vocabulary size, UInt64 token count,
/// then the tokens.
public final class TokenFile: @unchecked Sendable {
    public static let magic = Array("LMTOKENS".utf8)
    public let path: String
    public let vocabularySize: Int
    public let count: Int
    private let file: MappedFile
    private let width: Int
    private let data: UnsafeRawPointer?

    /// Writes `tokens` atomically.
    public static func write(_ tokens: [Int32], vocabularySize: Int, to path: String) throws {
        let width = vocabularySize <= 65_536 ? 2 : 4
        var header = magic
        func append<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { header += $0 } }
        append(UInt32(1)); append(UInt32(width)); append(UInt64(vocabularySize)); append(UInt64(tokens.count))
        try FileIO.writeAtomically(path) { fd in
            try header.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: path) }
            if width == 2 {
                let narrow = tokens.map { UInt16(truncatingIfNeeded: $0).littleEndian }
                try narrow.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: path) }
            } else {
                try tokens.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: path) }
            }
        }
    }

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        let raw = file.bytes
        let headerSize = 8 + 4 + 4 + 8 + 8
        guard raw.count >= headerSize, Array(raw[0..<8]) == TokenFile.magic else {
            throw LMError(.corruptFile, "'\(path)' is not a swift-lm token file — delete it and it will be rebuilt from the corpus")
        }
        let version = raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        width = Int(raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        vocabularySize = Int(raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        count = Int(raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        guard version == 1, width == 2 || width == 4, raw.count == headerSize + count * width else {
            throw LMError(.corruptFile, "'\(path)' is truncated or from another version — delete it and it will be rebuilt")
        }
        data = raw.baseAddress.map { UnsafeRawPointer($0) + headerSize }
    }

    @inline(__always)
    public subscript(i: Int) -> Int32 {
        width == 2 ? Int32(data!.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                   : data!.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)
    }
}

/// Train and validation token ranges of one corpus, and deterministic batches.
///
/// The batch of step s is a pure function of (seed, s): random windows of T + 1 tokens, as
/// nanoGPT draws them. A resumed run therefore sees exactly the batches it would have seen.
public struct TokenDataset: @unchecked Sendable {
    public let tokens: TokenFile
    public let train: Range<Int>
    public let validation: Range<Int>

    /// Splits the first `trainFraction` of the tokens for training, the rest for validation.
    public init(tokens: TokenFile, trainFraction: Double = 0.9, context T: Int) throws {
        self.tokens = tokens
        let n = tokens.count
        guard n > 0 else {
            throw LMError(.invalidInput, "the corpus is empty — give a text file with some content")
        }
        let cut = Int(Double(n) * trainFraction)
        train = 0..<cut
        validation = cut..<n
        guard train.count > T + 1 else {
            throw LMError(.invalidInput, "the corpus has \(n) tokens: its training part (\(train.count)) is shorter than the context plus one (\(T + 1)) — use a longer corpus or a smaller --context")
        }
        guard validation.count > T + 1 else {
            throw LMError(.invalidInput, "the corpus has \(n) tokens: its validation part (\(validation.count), the last 10 %) is shorter than the context plus one (\(T + 1)) — use a longer corpus or a smaller --context")
        }
    }

    /// Fills inputs and targets (B × T each) with random windows of `range`, drawn by `rng`.
    public func batch(from range: Range<Int>, B: Int, T: Int, rng: inout SeededRNG,
                      inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>) {
        for b in 0..<B {
            let start = range.lowerBound + rng.nextInt(below: range.count - T)
            for t in 0..<T {
                inputs[b * T + t] = tokens[start + t]
                targets[b * T + t] = tokens[start + t + 1]
            }
        }
    }

    /// The RNG for training step `step` (and micro-batch `micro`) of a run seeded with `seed`.
    public static func stepRNG(seed: UInt64, step: Int, micro: Int = 0) -> SeededRNG {
        SeededRNG(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(step) &* 1_000_003 &+ UInt64(micro))
    }
}
