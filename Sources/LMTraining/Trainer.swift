import Foundation
import LMCore
import LMModels
import LMTokenizers

/// How the corpus becomes tokens: `char`, an existing tokenizer (`PATH`: a model folder or a
/// SentencePiece `.model`), or a new SentencePiece BPE model trained on the corpus (`spm:VOCAB`).
public enum TokenizerSpec: Equatable, Sendable, CustomStringConvertible {
    case characters
    case existing(String)
    case sentencePiece(vocabularySize: Int)

    public init(parsing text: String) throws {
        if text == "char" {
            self = .characters
        } else if text.hasPrefix("spm:") {
            guard let n = Int(text.dropFirst(4)), n > 0 else {
                throw LMError(.invalidArgument, "--tokenizer \(text): write spm:VOCAB with a vocabulary size, e.g. spm:4000")
            }
            self = .sentencePiece(vocabularySize: n)
        } else {
            self = .existing(text)
        }
    }

    /// `char` and `spm:VOCAB` build a tokenizer from the corpus (no `[CLS]`, `[SEP]`, `[MASK]`).
    public var trainsANewTokenizer: Bool {
        if case .existing = self { return false }
        return true
    }

    public var description: String {
        switch self {
        case .characters: return "char"
        case .existing(let p): return p
        case .sentencePiece(let n): return "spm:\(n)"
        }
    }
}

/// Memory a run needs, printed before it starts.
public struct MemoryPlan: Sendable {
    public var parameters: Int, gradients: Int, optimizerState: Int, activations: Int
    public var available: Int?
    public var total: Int { parameters + gradients + optimizerState + activations }
}

/// What the trainer reports while it runs (the CLI draws progress from these).
public enum TrainerEvent {
    case info(String)
    case plan(MemoryPlan)
    case started(startStep: Int, totalSteps: Int)
    case step(StepRecord)
    case evaluation(step: Int, valLoss: Float, isBest: Bool)
    case checkpoint(step: Int)
    case earlyStop(step: Int, bestStep: Int, bestLoss: Float)
}

/// The result of a run.
public struct TrainingSummary: Sendable {
    public var steps: Int
    public var finalTrainLoss: Float
    public var bestValidationLoss: Float?
    public var bestStep: Int?
    public var medianMsPerStep: Double
    public var stoppedEarly: Bool
}

/// Trains (or fine-tunes) a model on a corpus, writing a run directory that is a model folder:
/// a GPT (next-token prediction) or, with `options.maskedLM`, a BERT encoder (masked LM). The
/// model and its batches are a `TrainingObjective`; this is the loop around it.
///
/// ```swift
/// let trainer = try Trainer(corpus: "input.txt", tokenizer: .characters, options: .preset("nano"),
///                           runDirectory: "runs/nano", resume: false)
/// let summary = try trainer.run { event in print(event) }
/// ```
public final class Trainer {
    public let options: TrainingOptions
    public let run: RunDirectory
    public let objective: any TrainingObjective
    public let optimizer: Optimizer
    public let dataset: TokenDataset
    public let tokenizer: any Tokenizer
    let pool: ThreadPool
    private var state: TrainerState
    private let tokenizerDescription: String
    let memoryPlan: MemoryPlan
    private let baseModel: String?
    /// The run folder is this process's alone while the trainer lives.
    private let lock: FolderLock

    /// Prepares a run: tokenizes the corpus (once), builds or restores the model and optimizer.
    /// - Parameters:
    ///   - baseModel: a model folder to start from (fine-tuning) instead of random weights.
    ///   - resume: continue the run in `runDirectory` from its checkpoint.
    ///   - extendSteps: with `resume`, train to this many steps instead of the checkpoint's.
    ///   - overwrite: start a new run in a folder that holds a model or a run (replacing them).
    public init(corpus: String, tokenizer spec: TokenizerSpec, options requested: TrainingOptions,
                runDirectory: String, resume: Bool, baseModel: String? = nil, extendSteps: Int? = nil,
                overwrite: Bool = false, pool: ThreadPool = Threads.shared,
                onEvent: (TrainerEvent) -> Void = { _ in }) throws {
        self.pool = pool
        self.baseModel = baseModel
        let run = RunDirectory(path: runDirectory)
        self.run = run
        let command = baseModel == nil ? "lm train" : "lm finetune"
        lock = try FolderLock(folder: runDirectory)
        try OutputFolder.check(runDirectory, input: baseModel, overwrite: overwrite, command: command,
                               isOwn: { FileIO.exists(RunDirectory(path: $0).checkpoint) })
        if overwrite && !resume { unlink(run.checkpoint) }
        var options = requested
        var loaded: Checkpoint.Loaded?
        if resume {
            guard FileIO.exists(run.checkpoint) else {
                throw LMError(.fileNotFound, "--resume: '\(run.checkpoint)' does not exist — start the run without --resume")
            }
            let ckpt = try Checkpoint.load(from: run.checkpoint)
            try Trainer.checkSameArchitecture(checkpoint: ckpt.options, requested: requested, path: run.checkpoint)
            if let trained = ckpt.state.corpus, FileIO.exists(corpus), !FileIO.isDirectory(corpus),
               try CorpusIdentity(path: corpus) != trained.withPath(corpus) {
                throw LMError(.invalidArgument, "--resume: '\(corpus)' is not the corpus this run trained on ('\(trained.path)', \(trained.bytes) bytes) — resume with that --corpus, or start a new run")
            }
            if ckpt.state.corpus == nil {
                onEvent(.info("note: this checkpoint does not record its corpus; the run continues on the tokens it saved (tokens.bin), whatever --corpus names"))
            }
            options = ckpt.options
            if let extendSteps {
                guard extendSteps >= ckpt.state.step else {
                    throw LMError(.invalidArgument, "--steps \(extendSteps) is below the \(ckpt.state.step) steps the run has already done")
                }
                options.steps = extendSteps
            }
            loaded = ckpt
        } else if FileIO.exists(run.checkpoint) {
            throw LMError(.invalidArgument, "'\(runDirectory)' already holds a run — pass --resume to continue it, choose another --out, or pass --overwrite to start it over")
        }
        try options.validate()
        self.options = options
        if options.maskedLM != nil, !resume, spec.trainsANewTokenizer {
            throw LMError(.invalidArgument, "masked-LM pretraining needs a WordPiece tokenizer with [CLS], [SEP] and [MASK], not --tokenizer \(spec) — pass a BERT folder or its vocab.txt / tokenizer.json, e.g. --tokenizer ../shared/models/minilm-l6-v2")
        }
        try FileIO.makeDirectory(runDirectory)

        // Corpus → tokenizer → tokens (kept in the run directory).
        if !FileIO.exists(corpus) || FileIO.isDirectory(corpus) {
            _ = try Trainer.readCorpus(corpus)  // throws the one-line error that names the problem
        }
        let tok: any Tokenizer
        if resume {
            guard let t = try TokenizerLoader.find(inModelFolder: runDirectory) else {
                throw LMError(.fileNotFound, "'\(runDirectory)' has no tokenizer to resume with — start a new run")
            }
            tok = t
        } else {
            tok = try Trainer.prepareTokenizer(spec, baseModel: baseModel, corpus: corpus, runDirectory: runDirectory, onEvent: onEvent)
        }
        self.tokenizer = tok
        if options.maskedLM != nil {
            _ = try MaskedLMTokens(tokenizer: tok)
            try Trainer.writeVocabulary(tok, to: runDirectory)
        }
        tokenizerDescription = baseModel.map { "from \($0)" } ?? spec.description
        if !resume || !FileIO.exists(run.tokens) {
            onEvent(.info("tokenizing \(corpus) (\(tok.summary))"))
            let text = try Trainer.readCorpus(corpus)
            let ids = try tok.encode(text).map { Int32($0) }
            try TokenFile.write(ids, vocabularySize: tok.vocabularySize, to: run.tokens)
        }
        let tokens = try TokenFile(path: run.tokens)
        dataset = try TokenDataset(tokens: tokens, context: options.context)
        onEvent(.info("corpus: \(tokens.count) tokens (\(dataset.train.count) train, \(dataset.validation.count) validation), vocabulary \(tok.vocabularySize)"))

        // Model: the memory plan comes from its config, before anything is allocated.
        let spec = try Trainer.modelSpec(options, tokenizer: tok, baseModel: baseModel, checkpoint: loaded)
        let P = spec.parameterCount
        let moments = [OptimizerKind.adam, .adamw].contains(options.optimizer.kind) ? 2 : 1
        memoryPlan = MemoryPlan(parameters: P * 4, gradients: P * 4, optimizerState: moments * P * 4,
                                activations: spec.activationBytes(options, threads: pool.threadCount),
                                available: Trainer.availableMemory())
        onEvent(.plan(memoryPlan))
        if let available = memoryPlan.available, memoryPlan.total > available {
            throw LMError(.invalidArgument, "this run needs \(memoryPlan.total >> 20) MiB but only \(available >> 20) MiB are free — lower --batch or --context")
        }
        objective = try spec.build(options, pool: pool)
        if let baseModel {
            let folder = try ModelFolder(path: baseModel)
            try objective.params.load(from: SafeTensorsWeightSource(file: try folder.openWeights(), optionalPrefixes: ["transformer."]))
        } else {
            objective.initializeWeights(seed: options.seed)
        }
        // Freezing reads the tensor table: a tensor's layer, or -1 for the embeddings.
        let frozen = Set(options.frozenLayers)
        let table = Dictionary(spec.tensorTable.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let groups = objective.params.optimizerGroups { name in
            guard let t = table[name] else { return false }
            if let layer = t.layer { return frozen.contains(layer) }
            return frozen.contains(-1) && (t.role == .tokenEmbedding || t.role == .positionEmbedding)
        }
        optimizer = try Optimizer(config: options.optimizer, parameterCount: P, groups: groups)
        if let loaded {
            try loaded.restore(into: objective, optimizer: optimizer)
            state = loaded.state
            onEvent(.info("resuming from step \(state.step) of \(options.steps)"))
        } else {
            state = TrainerState(step: 0, optimizerStep: 0, rng: objective.rngState, bestValidationLoss: nil, bestStep: nil,
                                 evaluationsWithoutImprovement: 0, logBytes: 0, elapsedSeconds: 0,
                                 corpus: try CorpusIdentity(path: corpus))
        }
    }

    /// The model a run trains, before it is built.
    enum ModelSpec {
        case gpt(GPT2Config)
        case maskedLM(BertConfig, MaskedLMTokens, MaskedLMOptions)

        var parameterCount: Int {
            let layout: [(name: String, shape: [Int])]
            switch self {
            case .gpt(let c): layout = c.parameterLayout
            case .maskedLM(let c, _, _): layout = BertTrainingModel.layout(config: c, head: .maskedLM)
            }
            return layout.reduce(0) { $0 + $1.shape.reduce(1, *) }
        }

        /// The tensors with their roles and layers (freezing reads it).
        var tensorTable: [TensorSpec] {
            switch self {
            case .gpt(let c): return c.tensorTable
            case .maskedLM(let c, _, _):
                return BertTrainingModel.layout(config: c, head: .maskedLM).map {
                    TensorSpec($0.name, $0.shape, BertConfig.role(of: $0.name, rank: $0.shape.count), layer: BertConfig.layer(of: $0.name))
                }
            }
        }

        func activationBytes(_ o: TrainingOptions, threads: Int) -> Int {
            switch self {
            case .gpt(let c):
                let a = GPTTrainingModel.activationFloats(config: c, B: o.batch, T: o.context, threads: threads)
                return a.acts * 4 + a.maskBytes
            case .maskedLM(let c, _, _):
                let a = BertTrainingModel.activationFloats(config: c, head: .maskedLM, maxTokens: o.batch * o.context,
                                                           maxLength: o.context, threads: threads)
                return a.floats * 4 + a.maskBytes
            }
        }

        /// The model with its batches (weights not set yet).
        func build(_ o: TrainingOptions, pool: ThreadPool) throws -> any TrainingObjective {
            switch self {
            case .gpt(let c):
                let model = try GPTTrainingModel(config: c, batch: o.batch, time: o.context, seed: o.seed, pool: pool)
                model.dropout = o.dropout
                return CausalLMObjective(model: model, batch: o.batch, context: o.context)
            case .maskedLM(let c, let tokens, let mlm):
                return try MaskedLMObjective(config: c, batch: o.batch, context: o.context, tokens: tokens, options: mlm,
                                             seed: o.seed, pool: pool)
            }
        }
    }

    /// A run's model: a GPT (of the options' shape, of `baseModel`, or the checkpoint's) or,
    /// for a masked-LM run, a BERT encoder with the masked-LM head.
    static func modelSpec(_ options: TrainingOptions, tokenizer tok: any Tokenizer, baseModel: String?,
                          checkpoint: Checkpoint.Loaded?) throws -> ModelSpec {
        if let mlm = options.maskedLM {
            guard baseModel == nil else {
                throw LMError(.invalidArgument, "masked-LM runs start from random weights; continuing a BERT folder is not supported")
            }
            let config = try checkpoint?.config(BertConfig.self)
                ?? options.bertConfig(vocabularySize: tok.vocabularySize, pad: tok.specialTokens.pad)
            return .maskedLM(config, try MaskedLMTokens(tokenizer: tok), mlm)
        }
        if let checkpoint { return .gpt(try checkpoint.config(GPT2Config.self)) }
        guard let baseModel else {
            return .gpt(options.modelConfig(vocabularySize: tok.vocabularySize, bos: tok.specialTokens.bos, eos: tok.specialTokens.eos))
        }
        let folder = try ModelFolder(path: baseModel)
        try folder.requireFloatWeights(for: "lm finetune")
        guard folder.modelType == "gpt2" else {
            throw LMError(.invalidConfig, "'\(baseModel)' is a \(folder.modelType) model; lm finetune continues GPT-2-architecture models")
        }
        let config = try folder.decodeConfig(GPT2Config.self)
        guard config.vocabSize >= tok.vocabularySize else {
            throw LMError(.invalidConfig, "the tokenizer has \(tok.vocabularySize) ids but the model only \(config.vocabSize)")
        }
        guard options.context <= config.nPositions else {
            throw LMError(.invalidArgument, "--context \(options.context) exceeds the model's \(config.nPositions) positions")
        }
        return .gpt(config)
    }

    static func checkSameArchitecture(checkpoint c: TrainingOptions, requested r: TrainingOptions, path: String) throws {
        let a = c.shapeDescription, b = r.shapeDescription
        if a != b {
            throw LMError(.invalidArgument, "--resume: '\(path)' holds a model with \(a), but this run asks for \(b) — use the same shape, or a new --out")
        }
    }

    static func readCorpus(_ path: String) throws -> String {
        let text = try TextFile.readText(path, what: "corpus", expecting: "a UTF-8 text file to train on (--corpus)")
        guard !text.isEmpty else {
            throw LMError(.invalidInput, "corpus '\(path)' is empty — give a text file with some content")
        }
        return text
    }

    /// Builds the tokenizer and saves it into the run directory.
    static func prepareTokenizer(_ spec: TokenizerSpec, baseModel: String?, corpus: String, runDirectory: String,
                                 onEvent: (TrainerEvent) -> Void) throws -> any Tokenizer {
        if let baseModel {
            guard let tok = try TokenizerLoader.find(inModelFolder: baseModel) else {
                throw LMError(.fileNotFound, "'\(baseModel)' has no tokenizer — fine-tuning needs the model's tokenizer files")
            }
            try copyTokenizerFiles(from: baseModel, to: runDirectory)
            return tok
        }
        switch spec {
        case .characters:
            let tok = CharacterTokenizer(corpus: try readCorpus(corpus))
            try tok.save(to: runDirectory + "/tokenizer.json")
            return tok
        case .existing(let path):
            if FileIO.isDirectory(path) {
                try copyTokenizerFiles(from: path, to: runDirectory)
            } else if path.hasSuffix(".model") {
                _ = try TokenizerLoader.load(path: path)
                try copyFile(path, runDirectory + "/tokenizer.model")
            } else if path.hasSuffix("tokenizer.json") {
                try copyFile(path, runDirectory + "/tokenizer.json")
            } else if path.hasSuffix("vocab.txt") {
                try copyFile(path, runDirectory + "/vocab.txt")
            } else {
                throw LMError(.invalidArgument, "--tokenizer \(path): give char, spm:VOCAB, a model folder, a tokenizer.json, a vocab.txt or a SentencePiece .model")
            }
            guard let tok = try TokenizerLoader.find(inModelFolder: runDirectory) else {
                throw LMError(.fileNotFound, "no tokenizer found in '\(path)'")
            }
            return tok
        case .sentencePiece(let vocab):
            onEvent(.info("training a SentencePiece BPE tokenizer (vocabulary \(vocab)) on \(corpus)"))
            var o = SentencePieceTrainingOptions(input: corpus, vocabSize: vocab, modelType: .bpe, byteFallback: true)
            o.characterCoverage = 0.9995
            o.vocabSizeFlag = "--tokenizer spm:N"
            o.offersCoverageFlag = false
            let bytes = try SentencePieceTrainer.train(o)
            let path = runDirectory + "/tokenizer.model"
            try FileIO.writeAtomically(path) { fd in try bytes.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: path) } }
            return try TokenizerLoader.load(path: path)
        }
    }

    /// Writes `vocab.txt` (one piece per line, in id order: what `BertTokenizer` reads) into a
    /// masked-LM run folder that has none, such as one given only a WordPiece `tokenizer.json`.
    static func writeVocabulary(_ tok: any Tokenizer, to dir: String) throws {
        guard !FileIO.exists(dir + "/vocab.txt") else { return }
        let pieces = (0..<tok.vocabularySize).map { tok.piece(for: $0) ?? "[unused\($0)]" }
        try FileIO.writeString(pieces.joined(separator: "\n") + "\n", to: dir + "/vocab.txt")
    }

    static func copyTokenizerFiles(from dir: String, to dest: String) throws {
        try TokenizerLoader.copyTokenizerFiles(from: dir, to: dest)
    }

    static func copyFile(_ from: String, _ to: String) throws {
        try FileIO.copyAtomically(from, to)
    }

    /// MemAvailable from /proc/meminfo, in bytes.
    static func availableMemory() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let parts = line.split(separator: " ")
            if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
        }
        return nil
    }

    /// Mean validation loss over `evalBatches` fixed batches (the same batches every time).
    public func evaluate() throws -> Float {
        var rng = SeededRNG(seed: 42)
        objective.training = false
        defer { objective.training = true }
        var total = 0.0
        for _ in 0..<options.evalBatches {
            total += Double(try objective.loss(dataset, dataset.validation, rng: &rng))
        }
        return Float(total / Double(options.evalBatches))
    }

    /// Runs until `options.steps` (or early stopping, or `pauseAt` steps: a checkpoint is
    /// written there and the run can be resumed), checkpointing as it goes.
    @discardableResult
    public func run(pauseAt: Int? = nil, onEvent: (TrainerEvent) -> Void = { _ in }) throws -> TrainingSummary {
        let o = options
        let schedule = o.learningRateSchedule
        let log = try TrainingLog(path: run.log, keepBytes: state.logBytes)
        var records = (try? TrainingLog.read(run.log)) ?? []
        var stepTimes: [Double] = []
        var lastLoss: Float = .nan
        var stoppedEarly = false
        onEvent(.started(startStep: state.step, totalSteps: o.steps))
        let title = "\(objective.summary), batch \(o.batch) × \(o.context) — \((run.path as NSString).lastPathComponent)"

        while state.step < o.steps {
            let step = state.step
            let lr = schedule.learningRate(at: step)
            let t0 = monotonic()
            objective.zeroGradients()
            var loss: Double = 0
            for micro in 0..<o.gradientAccumulation {
                var rng = TokenDataset.stepRNG(seed: o.seed, step: step, micro: micro)
                loss += Double(try objective.loss(dataset, dataset.train, rng: &rng))
                try objective.backward(lossScale: 1 / Float(o.gradientAccumulation))
            }
            let meanLoss = Float(loss / Double(o.gradientAccumulation))
            let norm = o.gradientClip > 0
                ? clipGradientNorm(objective.grads.storage.base, count: objective.grads.count, maxNorm: o.gradientClip, pool: pool)
                : gradientNorm(objective.grads.storage.base, count: objective.grads.count, pool: pool)
            guard meanLoss.isFinite, norm.isFinite else {
                let kept = FileIO.exists(run.checkpoint) ? "the last good checkpoint (step \(lastCheckpointStep())) is kept in \(run.path)" : "no checkpoint was written yet"
                throw LMError(.invalidInput, "training diverged: the loss became \(meanLoss.isNaN || norm.isNaN ? "NaN" : "infinite") at step \(step + 1) — lower --lr (now \(o.learningRate)) or raise --warmup; \(kept)")
            }
            optimizer.step(params: objective.params.storage.base, grads: objective.grads.storage.base, lr: lr, pool: pool)
            let dt = monotonic() - t0
            stepTimes.append(dt)
            state.step += 1
            state.optimizerStep = optimizer.stepCount
            state.elapsedSeconds += dt
            lastLoss = meanLoss

            let done = state.step == o.steps
            let evalNow = state.step % o.evalInterval == 0 || done
            var record = StepRecord(step: state.step, trainLoss: meanLoss, lr: lr, msPerStep: dt * 1000,
                                    tokensPerSecond: Double(objective.tokensPerBatch * o.gradientAccumulation) / dt, gradNorm: norm)
            var improved = false
            if evalNow {
                let val = try evaluate()
                record.valLoss = val
                record.valPerplexity = Float(exp(Double(val)))
                improved = state.bestValidationLoss.map { val < $0 } ?? true
                if improved {
                    state.bestValidationLoss = val
                    state.bestStep = state.step
                    state.evaluationsWithoutImprovement = 0
                    try objective.export(to: run.path)
                } else {
                    state.evaluationsWithoutImprovement += 1
                }
                onEvent(.evaluation(step: state.step, valLoss: val, isBest: improved))
            }
            if evalNow || state.step % o.logInterval == 0 || state.step == 1 {
                try log.append(record)
                records.append(record)
                onEvent(.step(record))
            }
            if evalNow { try LossPlot.write(records, title: title, to: run.plot) }
            let stopEarly = o.patience > 0 && state.evaluationsWithoutImprovement >= o.patience
            let pause = state.step == pauseAt
            if done || stopEarly || pause || state.step % o.checkpointInterval == 0 {
                state.rng = objective.rngState
                state.logBytes = log.size
                try Checkpoint.save(to: run.checkpoint, objective: objective, optimizer: optimizer, options: o,
                                    tokenizer: tokenizerDescription, state: state)
                onEvent(.checkpoint(step: state.step))
            }
            if stopEarly {
                stoppedEarly = true
                onEvent(.earlyStop(step: state.step, bestStep: state.bestStep ?? 0, bestLoss: state.bestValidationLoss ?? .nan))
                break
            }
            if pause { break }
        }
        if !records.isEmpty { try LossPlot.write(records, title: title, to: run.plot) }
        let sorted = stepTimes.sorted()
        return TrainingSummary(steps: state.step, finalTrainLoss: lastLoss, bestValidationLoss: state.bestValidationLoss,
                               bestStep: state.bestStep, medianMsPerStep: sorted.isEmpty ? 0 : sorted[sorted.count / 2] * 1000,
                               stoppedEarly: stoppedEarly)
    }

    private func lastCheckpointStep() -> Int {
        (try? Checkpoint.load(from: run.checkpoint).state.step) ?? 0
    }

    private func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}

