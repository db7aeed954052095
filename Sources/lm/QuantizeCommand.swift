import ArgumentParser
import Foundation
import LMCore
import LMModels
import LMQuant
import LMTokenizers
import LMTraining

/// The held-out data of `lm quantize --report` and `lm eval`: text for a causal LM (`--corpus`)
/// or a labelled TSV for a BERT classifier (`--tsv`).
struct HeldOutOptions: ParsableArguments {
    @Option(help: "Held-out text to score a causal LM on (UTF-8).")
    var corpus: String?
    @Option(name: .customLong("split-from"), help: "Score only the text after this fraction (0.9 = the last 10 %, lm train's validation split).")
    var splitFrom: Double = 0
    @Option(help: "Window length (default: the model's context, at most 4096).")
    var context: Int?
    @Option(name: .customLong("max-chunks"), help: "Score at most this many windows.")
    var maxChunks: Int?
    @Option(help: "A labelled TSV (sentence<TAB>label header) to score a BERT classifier on.")
    var tsv: String?
    @Option(help: "Sentences per batch (--tsv).")
    var batch = 32

    func validate() throws {
        guard splitFrom >= 0 && splitFrom < 1 else { throw LMError(.invalidArgument, "--split-from \(splitFrom) must be in [0, 1)") }
        if let maxChunks, maxChunks < 1 { throw LMError(.invalidArgument, "--max-chunks must be ≥ 1") }
        guard batch >= 1 else { throw LMError(.invalidArgument, "--batch must be ≥ 1") }
        if corpus != nil && tsv != nil {
            throw LMError(.invalidArgument, "give either --corpus FILE (a causal LM) or --tsv FILE.tsv (a classifier), not both")
        }
        if tsv != nil && (splitFrom != 0 || context != nil || maxChunks != nil) {
            throw LMError(.invalidArgument, "--split-from, --context and --max-chunks apply to --corpus text, not to --tsv")
        }
    }

    /// Whether the model at `path` is scored as a classifier (on --tsv) rather than a causal LM
    /// (on --corpus); throws when the data given does not fit the model, or none is given.
    func scoresClassifier(_ path: String) throws -> Bool {
        let type = try ModelFile(path: path).architectureName
        if type == "bert" {
            if corpus != nil {
                throw LMError(.invalidArgument, "'\(path)' is a BERT classifier, which --corpus cannot score — give a labelled TSV with --tsv FILE.tsv (sentence<TAB>label header)")
            }
            guard tsv != nil else {
                throw LMError(.invalidArgument, "'\(path)' is a BERT classifier — give a labelled TSV to score it on with --tsv FILE.tsv (sentence<TAB>label header)")
            }
            return true
        }
        if tsv != nil {
            throw LMError(.invalidArgument, "'\(path)' is a \(type) model (a causal LM); --tsv scores BERT classifiers — score it on held-out text with --corpus FILE")
        }
        guard corpus != nil else { throw LMError(.invalidArgument, "give --corpus FILE: a held-out text to score '\(path)' on") }
        return false
    }

    /// The window of perplexity scoring: --context, at most the model's positions (default: those,
    /// up to the usual default context).
    func scoringContext(for lm: any CausalLanguageModel) throws -> Int {
        guard let context else { return min(lm.contextLength, defaultContextSize) }
        guard context >= 4 else { throw LMError(.invalidArgument, "--context \(context) is too small (at least 4)") }
        guard context <= lm.contextLength else {
            throw LMError(.invalidArgument, "--context \(context) exceeds the model's \(lm.contextLength) positions — use --context \(lm.contextLength) or less")
        }
        return context
    }

    /// The corpus tokenized with the model's tokenizer, from `splitFrom` on, and the BOS token
    /// every window starts with when the tokenizer adds one (llama.cpp's perplexity: the text is
    /// tokenized with its BOS and each window's first token becomes BOS).
    func tokens(modelPath: String) throws -> (ids: [Int], bos: Int?) {
        guard let corpus else { throw LMError(.invalidArgument, "give --corpus FILE: a held-out text to score") }
        guard let tok = try LoadedModel.tokenizer(of: try ModelFile(path: modelPath)) else {
            throw LMError(.fileNotFound, "'\(modelPath)' has no tokenizer, so it cannot read --corpus text")
        }
        let text = try TextFile.readText(corpus, what: "corpus", expecting: "a UTF-8 text file to score the model on")
        guard !text.isEmpty else { throw LMError(.invalidInput, "corpus '\(corpus)' is empty") }
        let added = tok.postProcessor.apply([], nil).ids
        let bos = added.count == 1 && added[0] == tok.specialTokens.bos ? added[0] : nil
        let ids = try tok.encode(text, addSpecialTokens: bos != nil)
        return (Array(ids[Int(Double(ids.count) * splitFrom)...]), bos)
    }
}

struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Write the int8 (Q8) form of a model, with an optional quality report.",
        discussion: reflow("""
        Linear layers, the token embedding and the LM head become blocks of 32 int8 weights with a
        float16 scale (llama.cpp's Q8_0 layout); the rest stays float32. Every inference command
        loads the result like any model. --report scores the float and int8 models on held-out
        data in one pass: for a causal LM on --corpus text (size, perplexity change, mean KL
        divergence, top-1 agreement), for a BERT classifier on a labelled --tsv (size, accuracy of
        both and its change, F1, top-1 agreement, mean KL divergence of the class distributions).

        Examples:
          lm quantize --model models/shakespeare --out models/shakespeare-int8
          lm quantize --model models/shakespeare --out runs/shakespeare-int8 --report --corpus ../shared/data/tinyshakespeare/input.txt --split-from 0.9 --json
          lm quantize --model runs/sst2-minilm --out runs/sst2-int8 --report --tsv ../shared/data/sst2/dev.tsv
          lm quantize --random gpt2-124m --max-chunks 4
        """)
    )

    @Option(help: "The float model folder.")
    var model: String?
    @Option(help: "Where to write the int8 model folder (not --model, and not a folder holding a model unless --overwrite).")
    var out: String?
    @Flag(help: "Replace the model an existing --out folder holds.")
    var overwrite = false
    @Option(help: "Instead of a folder: compare a random model of this shape (gpt2-124m, …) with its int8 form on random tokens (nothing is written).")
    var random: String?
    @Flag(help: "Score the float and int8 models on --corpus (a causal LM) or --tsv (a classifier).")
    var report = false
    @OptionGroup var data: HeldOutOptions
    @Flag(help: "Print one JSON object as the last line.")
    var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if random == nil && (model == nil || out == nil) {
            throw LMError(.invalidArgument, "give --model DIR and --out DIR (or --random NAME for a comparison on a random model)")
        }
        if random == nil && !report && (data.corpus != nil || data.tsv != nil) {
            throw LMError(.invalidArgument, "--corpus and --tsv are scored only with --report — add --report (or drop them)")
        }
        if let random, GPT2Config.presets[random] == nil {
            throw LMError(.invalidArgument, "--random \(random) is not a known shape (known: \(GPT2Config.presets.keys.sorted().joined(separator: ", ")))")
        }
    }

    func run() throws {
        let pool = threads.apply()
        if let random {
            try compareRandom(random, pool: pool)
            return
        }
        let model = self.model!, out = self.out!
        // The held-out data must fit the model before anything is written.
        var classifier: (fp32: BertTextPipeline, data: LabelledExamples)?
        var causal: (fp32: any CausalLanguageModel, ids: [Int], bos: Int?, context: Int)?
        if report, try data.scoresClassifier(model) {
            let fp32 = try BertTextPipeline(folder: model, classifier: true, pool: pool)
            classifier = (fp32, try LabelledExamples(tsv: data.tsv!, labelNames: fp32.labels))
        } else if report {
            let fp32 = try ModelRegistry.loadCausalLM(folder: model, pool: pool)
            let (ids, bos) = try data.tokens(modelPath: model)
            causal = (fp32, ids, bos, try data.scoringContext(for: fp32))
        }
        let t0 = Date()
        let summary = try ModelQuantizer.quantize(folder: model, to: out, overwrite: overwrite)
        printError(String(format: "wrote %@: %d tensors int8, %.1f MiB → %.1f MiB (%.1f %%) in %.1f s", out,
                          summary.quantizedTensors, Double(summary.inputBytes) / 1_048_576,
                          Double(summary.outputBytes) / 1_048_576, summary.sizeRatio * 100, Date().timeIntervalSince(t0)))
        var result: [String: Any] = ["size_ratio": summary.sizeRatio, "input_bytes": summary.inputBytes,
                                     "output_bytes": summary.outputBytes]
        if let classifier {
            let int8 = try BertTextPipeline(folder: out, classifier: true, pool: pool)
            let bar = ProgressBar(total: classifier.data.count, label: "scoring", unit: "sentences")
            let (c, run) = try ClassifierEvaluation.compare(reference: classifier.fp32, candidate: int8, on: classifier.data,
                                                            batch: data.batch) { bar.update($0, fields: [], force: $0 == classifier.data.count) }
            bar.finish()
            QuantizeCommand.printReport(c, fp32Bytes: summary.inputBytes, int8Bytes: summary.outputBytes)
            printError(String(format: "scored %d sentences with both models in %.1f s", classifier.data.count, run.seconds)
                       + (run.truncated > 0 ? " (\(run.truncated) truncated to \(classifier.fp32.maxLength) tokens)" : ""))
            QuantizeCommand.add(c, to: &result)
        } else if let causal {
            let int8 = try ModelRegistry.loadCausalLM(folder: out, pool: pool)
            let c = try QuantizeCommand.score(causal.fp32, int8, causal.ids, context: causal.context, bos: causal.bos, maxChunks: data.maxChunks)
            QuantizeCommand.printReport(c, fp32Bytes: summary.inputBytes, int8Bytes: summary.outputBytes, context: causal.context)
            QuantizeCommand.add(c, to: &result)
        }
        if json { print(jsonLine(result)) }
    }

    /// fp32 vs int8 of a random model on random tokens (seeded).
    func compareRandom(_ name: String, pool: ThreadPool) throws {
        let config = GPT2Config.presets[name]!
        printError("building \(name) with random weights, float and int8…")
        let fp32 = try GPT2Model(randomWith: config, seed: 0, pool: pool)
        let int8 = try GPT2Model(randomWith: config, seed: 0, pool: pool, convertTo: .q8)
        let context = data.context ?? min(config.nPositions, 512)
        let windows = data.maxChunks ?? 4
        var rng = SeededRNG(seed: 7)
        let ids = (0..<(context * windows)).map { _ in rng.nextInt(below: config.vocabSize) }
        let c = try QuantizeCommand.score(fp32, int8, ids, context: context, bos: nil, maxChunks: windows)
        QuantizeCommand.printReport(c, fp32Bytes: fp32.weightBytes, int8Bytes: int8.weightBytes, context: context)
        var result: [String: Any] = ["size_ratio": Double(int8.weightBytes) / Double(fp32.weightBytes)]
        QuantizeCommand.add(c, to: &result)
        if json { print(jsonLine(result)) }
    }

    static func score(_ a: any CausalLanguageModel, _ b: any CausalLanguageModel, _ ids: [Int], context: Int,
                      bos: Int?, maxChunks: Int?) throws -> Perplexity.Comparison {
        let bar = ProgressBar(total: 1, label: "scoring", unit: "windows")
        let c = try Perplexity.compare(reference: a, candidate: b, tokens: ids, context: context, bos: bos,
                                       maxChunks: maxChunks) { done, total in
            bar.total = total
            bar.update(done, fields: [], force: done == total)
        }
        bar.finish()
        return c
    }

    static func printReport(_ c: Perplexity.Comparison, fp32Bytes: Int, int8Bytes: Int, context: Int) {
        print("| model | size | perplexity | Δ perplexity | mean KL | top-1 agreement |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        print(String(format: "| fp32 | %.1f MiB | %.4f | | | |", Double(fp32Bytes) / 1_048_576, c.reference.perplexity))
        print(String(format: "| int8 | %.1f MiB (%.1f %%) | %.4f | %+.3f %% | %.6f | %.2f %% |", Double(int8Bytes) / 1_048_576,
                     Double(int8Bytes) / Double(fp32Bytes) * 100, c.candidate.perplexity, c.changePercent, c.meanKLD,
                     c.top1Agreement * 100))
        printError("scored \(c.reference.scoredTokens) tokens in \(c.reference.chunks) windows of \(context)")
    }

    static func add(_ c: Perplexity.Comparison, to result: inout [String: Any]) {
        result["ppl_fp32"] = c.reference.perplexity
        result["ppl_int8"] = c.candidate.perplexity
        result["ppl_change_percent"] = c.changePercent
        result["mean_kld"] = c.meanKLD
        result["top1_agreement"] = c.top1Agreement
        result["scored_tokens"] = c.reference.scoredTokens
    }

    static func printReport(_ c: ClassifierComparison, fp32Bytes: Int, int8Bytes: Int) {
        let a = c.reference.metrics, b = c.candidate.metrics
        print("| model | size | accuracy | Δ accuracy | F1 | mean KL | top-1 agreement |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        print(String(format: "| fp32 | %.1f MiB | %.2f %% | | %.4f | | |", Double(fp32Bytes) / 1_048_576, 100 * a.accuracy, a.f1))
        print(String(format: "| int8 | %.1f MiB (%.1f %%) | %.2f %% | %+.2f points | %.4f | %.3g | %.2f %% |", Double(int8Bytes) / 1_048_576,
                     Double(int8Bytes) / Double(fp32Bytes) * 100, 100 * b.accuracy, c.accuracyChangePoints, b.f1, c.meanKLD,
                     c.top1Agreement * 100))
    }

    static func add(_ c: ClassifierComparison, to result: inout [String: Any]) {
        result["accuracy_fp32"] = c.reference.metrics.accuracy
        result["accuracy_int8"] = c.candidate.metrics.accuracy
        result["accuracy_change_points"] = c.accuracyChangePoints
        result["f1_fp32"] = c.reference.metrics.f1
        result["f1_int8"] = c.candidate.metrics.f1
        result["mean_kld"] = c.meanKLD
        result["top1_agreement"] = c.top1Agreement
        result["examples"] = c.reference.metrics.total
    }
}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score a model: perplexity on a text (causal LMs) or classification metrics on a labelled TSV (BERT classifiers).",
        discussion: reflow("""
        --corpus: perplexity like llama.cpp's perplexity tool: the tokens are cut into windows of
        the model's context, each window runs from an empty cache and its second half is scored.
        --tsv (a sentence<TAB>label header, labels as names or indices): accuracy, precision,
        recall, F1 and the confusion matrix of a classifier. Float and int8 models alike; without
        --model, the bundled Shakespeare model (--corpus) or sentiment model (--tsv).

        Examples:
          lm eval --model models/shakespeare --corpus ../shared/data/tinyshakespeare/input.txt --split-from 0.9
          lm eval --model gemma-3-270m-q4_k_m.gguf --corpus ../shared/data/wikitext-2/valid.txt --context 512 --max-chunks 20
          lm eval --model models/sentiment --tsv ../shared/data/sst2/dev.tsv --json
        """)
    )

    @Option(help: "Model folder or .gguf file.")
    var model: String?
    @OptionGroup var data: HeldOutOptions
    @Flag(help: "Print one JSON object as the last line.")
    var json = false
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        let pool = threads.apply()
        let folder = try model ?? BundledModels.path(data.tsv != nil ? BundledModels.defaultClassifier : BundledModels.defaultGenerator)
        if try data.scoresClassifier(folder) {
            try ClassifyCommand.printEvaluation(try BertTextPipeline(folder: folder, classifier: true, pool: pool), tsv: data.tsv!,
                                                batch: data.batch, json: json)
            return
        }
        let lm = try ModelRegistry.loadCausalLM(path: folder, pool: pool)
        let (ids, bos) = try data.tokens(modelPath: folder)
        let context = try data.scoringContext(for: lm)
        let bar = ProgressBar(total: 1, label: "scoring", unit: "windows")
        let t0 = Date()
        let r = try Perplexity.evaluate(lm, tokens: ids, context: context, bos: bos, maxChunks: data.maxChunks) { done, total in
            bar.total = total
            bar.update(done, fields: [], force: done == total)
        }
        bar.finish()
        let dt = Date().timeIntervalSince(t0)
        print(String(format: "perplexity %.4f (mean NLL %.4f nats) over %d tokens in %d windows of %d", r.perplexity, r.meanNLL, r.scoredTokens, r.chunks, context))
        printError(String(format: "%.1f s, %.0f tokens/s", dt, Double(r.chunks * context) / dt))
        if json {
            print(jsonLine(["perplexity": r.perplexity, "mean_nll": r.meanNLL, "scored_tokens": r.scoredTokens,
                            "windows": r.chunks, "context": context]))
        }
    }
}
