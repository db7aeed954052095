import ArgumentParser
import Foundation
import LMCore
import LMTokenizers

/// `lm tokenizer train`: trains a SentencePiece model with libsentencepiece.
struct TokenizerTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a SentencePiece tokenizer (BPE, unigram, char or word) on a text corpus.",
        discussion: reflow("""
        Writes DIR/tokenizer.model and DIR/tokenizer_training.json (vocabulary size, type, corpus, options, time). Every option and the corpus are checked before training starts: a vocabulary too small or too large for the corpus, an empty or non-UTF-8 corpus are errors that say which value works.

        Examples:
          lm tokenizer train --input input.txt --vocab-size 2000 --model-type bpe --output tok/
          lm tokenizer train --input c.txt --vocab-size 8000 --model-type unigram --byte-fallback --output t/
        """))

    @Option(help: "The corpus: a UTF-8 text file, one sentence per line.")
    var input: String
    @Option(help: "Number of pieces in the vocabulary (special and byte pieces included).")
    var vocabSize: Int
    @Option(help: "bpe, unigram, char or word.")
    var modelType: String
    @Flag(help: "Add the 256 byte pieces so that any text can be encoded (Llama-style).")
    var byteFallback = false
    @Option(help: "The output folder (not one holding a model, unless --overwrite).")
    var output: String
    @Flag(help: "Write into an --output folder that holds a model, replacing its tokenizer.model.")
    var overwrite = false
    @Option(help: "Share of the corpus's characters the alphabet must cover (0.98...1).")
    var characterCoverage: Double = 0.9995
    @Option(help: "Text normalization: nmt_nfkc, nfkc, nmt_nfkc_cf, nfkc_cf or identity.")
    var normalization: String = "nmt_nfkc"
    @Flag(help: "Split numbers into single digits.")
    var splitDigits = false
    @Option(help: "Longest piece, in characters.")
    var maxPieceLength: Int = 16
    @Option(help: "Train on a random sample of this many lines (0: all).")
    var inputSentenceSize: Int = 0
    @Option(help: "Training threads (default: all cores, at most 16).")
    var threads: Int?
    @Flag(help: "Show libsentencepiece's own log.")
    var verbose = false
    @Flag(help: "Print the training report as one JSON line.")
    var json = false

    func options() throws -> SentencePieceTrainingOptions {
        guard let type = SentencePieceTrainingOptions.ModelType(rawValue: modelType) else {
            throw LMError(.invalidArgument, "--model-type '\(modelType)' is unknown; use bpe, unigram, char or word")
        }
        var o = SentencePieceTrainingOptions(input: input, vocabSize: vocabSize, modelType: type, byteFallback: byteFallback)
        o.characterCoverage = characterCoverage
        o.normalization = normalization
        o.splitDigits = splitDigits
        o.maxSentencePieceLength = maxPieceLength
        o.inputSentenceSize = inputSentenceSize
        if let threads { o.numThreads = threads }
        return o
    }

    func run() throws {
        let o = try options()
        let lock = try FolderLock(folder: output, flag: "--output")
        defer { withExtendedLifetime(lock) {} }
        try OutputFolder.check(output, input: nil, overwrite: overwrite, command: "lm tokenizer train", flag: "--output")
        let summary = try SentencePieceTrainer.validate(o)
        printError("training a \(o.modelType.rawValue) tokenizer of \(o.vocabSize) pieces on '\(input)' (\(summary.sentences) sentences, \(summary.characters) characters)")

        // The trainer blocks: run it on a thread and show elapsed time here.
        final class Outcome: @unchecked Sendable {
            var report: SentencePieceTrainer.Report?
            var error: Error?
        }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        let (out, verbose) = (output, self.verbose)
        let thread = Thread {
            do {
                outcome.report = try SentencePieceTrainer.train(o, outputDirectory: out, verbose: verbose, validated: summary)
            } catch {
                outcome.error = error
            }
            done.signal()
        }
        thread.stackSize = 64 << 20
        let start = Date()
        thread.start()
        let interactive = isatty(STDERR_FILENO) != 0 && !verbose
        let frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]
        var frame = 0
        while done.wait(timeout: .now() + .milliseconds(interactive ? 100 : 5000)) == .timedOut {
            let elapsed = String(format: "%.1f s", Date().timeIntervalSince(start))
            if interactive {
                printError("\r\(frames[frame % frames.count]) training… \(elapsed)", terminator: "")
                frame += 1
            } else {
                printError("training… \(elapsed)")
            }
        }
        if interactive { printError("\r\u{1B}[K", terminator: "") }
        if let error = outcome.error { throw error }
        guard let report = outcome.report else {
            throw LMError(.library, "training ended without a model; run again with --verbose")
        }
        let modelPath = (output as NSString).appendingPathComponent(report.model)
        printError("wrote \(modelPath) (\(report.vocabSize) pieces, \(report.modelType)) in \(String(format: "%.2f", report.seconds)) s")
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        }
    }
}
