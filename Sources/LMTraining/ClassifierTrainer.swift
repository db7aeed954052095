import Foundation
import LMCore
import LMModels
import LMTokenizers

/// Options of `lm finetune --task classify`.
public struct ClassifierTrainingOptions: Codable, Sendable, Equatable {
    public var epochs = 3
    /// Stop after this many optimizer steps (nil: all epochs).
    public var maxSteps: Int? = nil
    public var batch = 32
    public var maxLength = 64
    public var learningRate: Float = 5e-5
    public var warmupSteps = 0
    public var weightDecay: Float = 0.01
    public var gradientClip: Float = 0
    /// Hidden dropout (nil: the model config's `hidden_dropout_prob`).
    public var dropout: Float? = nil
    /// Evaluate on the dev set every K steps as well as after every epoch (0: epochs only).
    public var evalInterval = 0
    /// Stop after this many evaluations without a better dev accuracy (0: never).
    public var patience = 0
    /// `mean` (the mean of the hidden states, no pooler) or `cls` (Hugging Face's pooled [CLS]).
    public var pooling = "mean"
    public var seed: UInt64 = 0
    public var logInterval = 10
    /// Write `checkpoint.safetensors` every K steps (and after every evaluation and at the end).
    public var checkpointInterval = 100

    public init() {}

    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw LMError(.invalidArgument, message) } }
        try check(epochs >= 1, "--epochs \(epochs) must be ≥ 1")
        try check(maxSteps.map { $0 >= 1 } ?? true, "--steps must be ≥ 1")
        try check(batch >= 1, "--batch \(batch) must be ≥ 1")
        try check(maxLength >= 3, "--max-length \(maxLength) must be ≥ 3 ([CLS], a token, [SEP])")
        try check(learningRate > 0 && learningRate.isFinite, "--lr \(learningRate) must be positive")
        try check(warmupSteps >= 0, "--warmup must be ≥ 0")
        try check(weightDecay >= 0, "--weight-decay must be ≥ 0")
        try check(gradientClip >= 0, "--clip must be ≥ 0 (0 = off)")
        try check(dropout.map { $0 >= 0 && $0 < 1 } ?? true, "--dropout must be in [0, 1)")
        try check(evalInterval >= 0 && patience >= 0, "--eval-interval and --patience must be ≥ 0")
        try check(logInterval >= 1 && checkpointInterval >= 1, "--log-interval and --checkpoint-interval must be ≥ 1")
        try check(["mean", "cls"].contains(pooling), "--pooling \(pooling): use mean or cls")
    }
}

/// What the classifier trainer reports while it runs.
public enum ClassifierTrainerEvent {
    case info(String)
    case plan(MemoryPlan)
    case started(totalSteps: Int)
    case step(step: Int, epoch: Int, loss: Float, lr: Float, examplesPerSecond: Double)
    case evaluation(step: Int, epoch: Double, metrics: ClassificationMetrics, isBest: Bool)
    case earlyStop(step: Int, bestStep: Int, bestAccuracy: Double)
}

public struct ClassifierTrainingSummary: Sendable {
    public var steps: Int
    public var bestStep: Int
    public var best: ClassificationMetrics
    public var medianExamplesPerSecond: Double
    public var trainSeconds: Double
    public var stoppedEarly: Bool
    /// (step, dev accuracy) of every evaluation.
    public var curve: [(step: Int, accuracy: Double)]
}

/// Fine-tunes a BERT encoder (a Hugging Face folder such as all-MiniLM-L6-v2) as a sequence
/// classifier on a GLUE-style TSV: dynamic padding (packed batches), AdamW with linear decay,
/// dev-set evaluation every epoch (and every `evalInterval` steps), early stopping, and the best
/// model kept in the output folder (a model folder for `lm classify`), with `log.jsonl` and a
/// `checkpoint.safetensors` a killed run resumes from exactly (`resume: true`).
public final class ClassifierTrainer {
    public let options: ClassifierTrainingOptions
    public let model: BertTrainingModel
    public let tokenizer: any Tokenizer
    public let labels: [String]
    public let outDirectory: String
    let optimizer: Optimizer
    let pool: ThreadPool
    let train: (ids: [[Int]], labels: [Int])
    let dev: LabelledExamples
    let baseModel: String
    /// The loop state a resumed run starts from.
    let resumed: ClassifierTrainerState?
    /// The --train file, as the checkpoint records it.
    let trainIdentity: CorpusIdentity
    /// The output folder is this process's alone while the trainer lives.
    private let lock: FolderLock

    /// With `resume`, the run in `out` continues from its checkpoint with the options and labels
    /// saved there (`options` and `labels` are then ignored).
    public init(model baseModel: String, train trainPath: String, dev devPath: String, labels requested: [String]?,
                options requestedOptions: ClassifierTrainingOptions, out: String, resume: Bool = false,
                overwrite: Bool = false, pool: ThreadPool = Threads.shared,
                onEvent: (ClassifierTrainerEvent) -> Void = { _ in }) throws {
        let checkpointPath = ClassifierCheckpoint.path(in: out)
        lock = try FolderLock(folder: out)
        try OutputFolder.check(out, input: baseModel, overwrite: overwrite, command: "lm finetune",
                               isOwn: { FileIO.exists(ClassifierCheckpoint.path(in: $0)) })
        if overwrite && !resume { unlink(checkpointPath) }
        var checkpoint: ClassifierCheckpoint.Loaded?
        if resume {
            guard FileIO.exists(checkpointPath) else {
                throw LMError(.fileNotFound, "--resume: '\(checkpointPath)' does not exist — start the run without --resume")
            }
            checkpoint = try ClassifierCheckpoint.load(from: checkpointPath)
        } else if FileIO.exists(checkpointPath) {
            throw LMError(.invalidArgument, "'\(out)' already holds a fine-tuning run — pass --resume to continue it, choose another --out, or pass --overwrite to start it over")
        }
        let options = checkpoint?.options ?? requestedOptions
        try options.validate()
        self.options = options
        self.pool = pool
        self.outDirectory = out
        self.baseModel = baseModel
        let folder = try ModelFolder(path: baseModel)
        try folder.requireFloatWeights(for: "lm finetune")
        guard folder.modelType == "bert" else {
            throw LMError(.invalidConfig, "'\(baseModel)' is a \(folder.modelType) model; --task classify fine-tunes BERT encoders (model_type bert)")
        }
        guard let tok = try TokenizerLoader.find(inModelFolder: baseModel) else {
            throw LMError(.fileNotFound, "'\(baseModel)' has no tokenizer (vocab.txt or tokenizer.json)")
        }
        tokenizer = tok
        var config = try folder.decodeConfig(BertConfig.self)
        try config.validate()
        labels = checkpoint?.labels ?? requested ?? config.id2label.map { map in (0..<map.count).map { map[String($0)] ?? "LABEL_\($0)" } } ?? ["negative", "positive"]
        guard labels.count >= 2, Set(labels).count == labels.count else {
            throw LMError(.invalidArgument, "--labels needs at least two different names, e.g. negative,positive")
        }
        guard options.maxLength <= config.maxPositionEmbeddings else {
            throw LMError(.invalidArgument, "--max-length \(options.maxLength) exceeds the model's \(config.maxPositionEmbeddings) positions")
        }
        config.classifierPooling = options.pooling
        if let d = options.dropout { config.hiddenDropoutProb = d }

        let trainData = try LabelledExamples(tsv: trainPath, labelNames: labels)
        trainIdentity = try CorpusIdentity(path: trainPath)
        dev = try LabelledExamples(tsv: devPath, labelNames: labels)
        onEvent(.info("train: \(trainData.count) examples (\(trainPath)); dev: \(dev.count) (\(devPath)); labels: \(labels.joined(separator: ", "))"))
        let truncation = Truncation(maxLength: options.maxLength)
        let ids = try trainData.sentences.map { try tok.encodePair($0, truncation: truncation).ids }
        train = (ids, trainData.labels)

        let maxTokens = options.batch * options.maxLength
        let model = try BertTrainingModel(config: config, head: .classification(labels: labels.count), maxTokens: maxTokens,
                                          maxLength: options.maxLength, seed: options.seed, pool: pool)
        self.model = model
        model.initializeWeights(seed: options.seed &+ 1)
        let file = try folder.openWeights()
        let source = SafeTensorsWeightSource(file: file, optionalPrefixes: ["bert."])
        // A classifier of the same shape (continued fine-tuning) keeps its head; otherwise it starts random.
        let fresh = try model.loadWeights(from: source) { name in
            guard let found = source.resolve(name), let e = file.entries[found] else { return false }
            return e.shape == (try? model.params.tensor(name).shape)
        }
        if !fresh.isEmpty && checkpoint == nil { onEvent(.info("new parameters (random init): \(fresh.joined(separator: ", "))")) }
        let P = model.params.count
        onEvent(.plan(MemoryPlan(parameters: P * 4, gradients: P * 4, optimizerState: 2 * P * 4,
                                 activations: model.activationBytes, available: Trainer.availableMemory())))
        var oc = OptimizerConfig.adamW(beta2: 0.999, weightDecay: options.weightDecay)
        oc.eps = 1e-8
        optimizer = try Optimizer(config: oc, parameterCount: P,
                                  groups: model.params.optimizerGroups())
        resumed = checkpoint?.state
        if let checkpoint {
            guard checkpoint.state.trainExamples == train.ids.count,
                  checkpoint.state.trainFile.map({ $0.withPath(trainPath) == trainIdentity }) ?? true else {
                throw LMError(.invalidArgument, "--resume: '\(trainPath)' is not the --train file the run in '\(out)' trained on (\(checkpoint.state.trainFile.map { "'\($0.path)', " } ?? "")\(checkpoint.state.trainExamples) examples) — resume with the same --train file")
            }
            try checkpoint.restore(into: model, optimizer: optimizer)
            onEvent(.info("resuming '\(out)' at step \(checkpoint.state.step) with its saved options and labels"))
        }
    }

    public var stepsPerEpoch: Int { (train.ids.count + options.batch - 1) / options.batch }
    public var totalSteps: Int { min(options.maxSteps ?? Int.max, options.epochs * stepsPerEpoch) }

    /// The example order of `epoch`: a seeded shuffle.
    func order(epoch: Int) -> [Int] {
        var rng = SeededRNG(seed: options.seed &+ 0x5EED &+ UInt64(epoch))
        var idx = Array(0..<train.ids.count)
        for i in stride(from: idx.count - 1, to: 0, by: -1) { idx.swapAt(i, rng.nextInt(below: i + 1)) }
        return idx
    }

    /// Accuracy, precision, recall, F1 and the confusion matrix on the dev set.
    public func evaluate() throws -> ClassificationMetrics {
        let pipeline = try BertTextPipeline(model: try model.inferenceModel(labels: labels), tokenizer: tokenizer)
        return try ClassifierEvaluation.evaluate(pipeline, on: dev).scores.metrics
    }

    @discardableResult
    public func run(onEvent: (ClassifierTrainerEvent) -> Void = { _ in }) throws -> ClassifierTrainingSummary {
        let o = options, B = o.batch, total = totalSteps
        let schedule = LearningRateSchedule(kind: .linear, maxLR: o.learningRate, minLR: 0, warmupSteps: o.warmupSteps,
                                            decaySteps: max(total, o.warmupSteps))
        try FileIO.makeDirectory(outDirectory)
        var st = resumed ?? ClassifierTrainerState(
            step: 0, optimizerStep: 0, rng: [], best: nil, bestStep: 0, evaluationsWithoutImprovement: 0,
            curveSteps: [], curveAccuracies: [], recentLosses: [], examplesPerSecond: [], logBytes: 0, trainSeconds: 0,
            trainExamples: train.ids.count, finished: false, stoppedEarly: false, trainFile: trainIdentity)
        func summary() -> ClassifierTrainingSummary {
            let sorted = st.examplesPerSecond.dropFirst(min(5, st.examplesPerSecond.count / 2)).sorted()
            return ClassifierTrainingSummary(steps: st.step, bestStep: st.bestStep, best: st.best!,
                                             medianExamplesPerSecond: sorted.isEmpty ? 0 : sorted[sorted.count / 2],
                                             trainSeconds: st.trainSeconds, stoppedEarly: st.stoppedEarly,
                                             curve: zip(st.curveSteps, st.curveAccuracies).map { ($0, $1) })
        }
        if st.finished, st.best != nil {
            onEvent(.info("the run in '\(outDirectory)' already finished at step \(st.step); nothing left to train"))
            return summary()
        }
        // A resumed run drops what was logged after its checkpoint; a new one starts an empty log.
        let log = try TrainingLog(path: outDirectory + "/log.jsonl", keepBytes: st.logBytes)
        func checkpoint() throws {
            st.optimizerStep = optimizer.stepCount
            st.rng = model.rngState
            st.logBytes = log.size
            try ClassifierCheckpoint.save(to: ClassifierCheckpoint.path(in: outDirectory), model: model, optimizer: optimizer,
                                          options: o, labels: labels, state: st)
        }
        onEvent(.started(totalSteps: total))
        /// Evaluates on the dev set (keeping the best model); true when early stopping ends the run.
        func evaluateNow(epoch: Double) throws -> Bool {
            let m = try evaluate()
            let improved = st.best.map { m.accuracy > $0.accuracy } ?? true
            if improved {
                st.best = m; st.bestStep = st.step; st.evaluationsWithoutImprovement = 0
                try model.export(to: outDirectory, labels: labels)
                try TokenizerLoader.copyTokenizerFiles(from: baseModel, to: outDirectory)
            } else {
                st.evaluationsWithoutImprovement += 1
            }
            st.curveSteps.append(st.step)
            st.curveAccuracies.append(m.accuracy)
            var rec = m.json
            rec["step"] = st.step; rec["epoch"] = epoch; rec["best"] = improved
            try log.append(object: rec)
            onEvent(.evaluation(step: st.step, epoch: epoch, metrics: m, isBest: improved))
            if o.patience > 0 && st.evaluationsWithoutImprovement >= o.patience {
                st.stoppedEarly = true
                onEvent(.earlyStop(step: st.step, bestStep: st.bestStep, bestAccuracy: st.best?.accuracy ?? 0))
                return true
            }
            return false
        }
        let startEpoch = st.step / stepsPerEpoch, startOffset = (st.step % stepsPerEpoch) * B
        training: for epoch in startEpoch..<o.epochs {
            let idx = order(epoch: epoch)
            for start in stride(from: epoch == startEpoch ? startOffset : 0, to: idx.count, by: B) {
                if st.step >= total { break training }
                let t0 = DispatchTime.now()
                let members = idx[start..<min(idx.count, start + B)]
                let batch = BertBatch(sequences: members.map { train.ids[$0] })
                model.training = true
                let loss = try model.forward(batch, labels: members.map { train.labels[$0] })
                model.zeroGradients()
                try model.backward()
                let norm = o.gradientClip > 0
                    ? clipGradientNorm(model.grads.storage.base, count: model.grads.count, maxNorm: o.gradientClip, pool: pool)
                    : gradientNorm(model.grads.storage.base, count: model.grads.count, pool: pool)
                guard loss.isFinite, norm.isFinite else {
                    throw LMError(.invalidInput, "training diverged: the loss became \(loss) at step \(st.step + 1) — lower --lr (now \(o.learningRate)); \(st.best != nil ? "the best model so far is in \(outDirectory)" : "no model was saved yet")")
                }
                let lr = schedule.learningRate(at: st.step)
                optimizer.step(params: model.params.storage.base, grads: model.grads.storage.base, lr: lr, pool: pool)
                let dt = Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e9
                st.trainSeconds += dt
                st.step += 1
                st.examplesPerSecond.append(Double(members.count) / dt)
                st.recentLosses.append(loss)
                if st.recentLosses.count > o.logInterval { st.recentLosses.removeFirst(st.recentLosses.count - o.logInterval) }
                if st.step % o.logInterval == 0 || st.step == 1 {
                    try log.append(object: [
                        "step": st.step, "epoch": epoch,
                        "train_loss": Double(st.recentLosses.reduce(0, +)) / Double(st.recentLosses.count),
                        "lr": Double(lr), "ms_per_step": dt * 1000, "examples_per_s": Double(members.count) / dt,
                        "grad_norm": Double(norm)])
                }
                onEvent(.step(step: st.step, epoch: epoch, loss: loss, lr: lr, examplesPerSecond: Double(members.count) / dt))
                let endOfEpoch = start + B >= idx.count
                var evaluated = false, stop = false
                if !endOfEpoch && ((o.evalInterval > 0 && st.step % o.evalInterval == 0) || st.step == total) {
                    evaluated = true
                    stop = try evaluateNow(epoch: Double(st.step) / Double(stepsPerEpoch))
                } else if endOfEpoch {
                    evaluated = true
                    stop = try evaluateNow(epoch: Double(epoch + 1))
                }
                if stop || st.step == total { st.finished = true }
                if evaluated || st.finished || st.step % o.checkpointInterval == 0 { try checkpoint() }
                if stop { break training }
            }
        }
        return summary()
    }
}
