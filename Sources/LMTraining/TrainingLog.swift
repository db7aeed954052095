import Foundation
import LMCore

/// One line of `log.jsonl`.
public struct StepRecord: Codable, Sendable, Equatable {
    public var step: Int
    public var trainLoss: Float
    public var lr: Float
    public var msPerStep: Double
    public var tokensPerSecond: Double
    public var gradNorm: Float
    public var valLoss: Float?
    public var valPerplexity: Float?

    enum CodingKeys: String, CodingKey {
        case step, trainLoss = "train_loss", lr, msPerStep = "ms_per_step", tokensPerSecond = "tokens_per_s"
        case gradNorm = "grad_norm", valLoss = "val_loss", valPerplexity = "val_ppl"
    }

    public init(step: Int, trainLoss: Float, lr: Float, msPerStep: Double, tokensPerSecond: Double, gradNorm: Float,
                valLoss: Float? = nil, valPerplexity: Float? = nil) {
        self.step = step; self.trainLoss = trainLoss; self.lr = lr; self.msPerStep = msPerStep
        self.tokensPerSecond = tokensPerSecond; self.gradNorm = gradNorm
        self.valLoss = valLoss; self.valPerplexity = valPerplexity
    }
}

/// Appends records to `log.jsonl`, flushing each line so a killed run loses nothing written.
public final class TrainingLog {
    public let path: String
    private var handle: FileHandle

    /// Opens the log for appending, first truncating it to `keepBytes` (a resumed run drops
    /// what was logged after its checkpoint) or emptying it for a new run.
    public init(path: String, keepBytes: Int) throws {
        self.path = path
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw LMError(.ioFailure, "cannot create '\(path)'")
            }
        }
        guard let h = FileHandle(forUpdatingAtPath: path) else {
            throw LMError(.ioFailure, "cannot open '\(path)' for writing")
        }
        handle = h
        try handle.truncate(atOffset: UInt64(keepBytes))
        try handle.seekToEnd()
    }

    deinit { try? handle.close() }

    public func append(_ record: StepRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try writeLine(try encoder.encode(record))
    }

    /// One JSON object per line, keys sorted (the classifier trainer's records).
    public func append(object: [String: Any]) throws {
        try writeLine(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    }

    private func writeLine(_ json: Data) throws {
        var data = json
        data.append(0x0A)
        do {
            try handle.write(contentsOf: data)
        } catch {
            throw LMError(.ioFailure, "cannot write '\(path)': \(error.localizedDescription) — free some disk space")
        }
    }

    /// Bytes written so far (saved in checkpoints).
    public var size: Int { Int((try? handle.offset()) ?? 0) }

    /// All records of a log file.
    public static func read(_ path: String) throws -> [StepRecord] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let decoder = JSONDecoder()
        return try text.split(separator: "\n").map { try decoder.decode(StepRecord.self, from: Data($0.utf8)) }
    }
}
