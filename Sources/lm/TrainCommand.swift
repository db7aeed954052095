import ArgumentParser
import Foundation
import LMCore
import LMModels
import LMTraining

/// Flags shared by `lm train` and `lm finetune`: each overrides the preset's value.
struct TrainingFlags: ParsableArguments {
    @Option(help: "Training text (UTF-8).")
    var corpus: String?
    @Option(help: "Run folder: the best model, checkpoint.safetensors, log.jsonl and loss.svg go here.")
    var out: String
    @Flag(help: "Continue the run in --out from its last checkpoint (with its options; --steps may extend it).")
    var resume = false
    @Flag(help: "Start a new run in an --out that holds a model or another run, replacing them.")
    var overwrite = false

    @Option(help: "Transformer blocks.") var layers: Int?
    @Option(help: "Attention heads.") var heads: Int?
    @Option(help: "Model width (channels).") var dim: Int?
    @Option(help: "Context length in tokens.") var context: Int?
    @Option(help: "Sequences per step.") var batch: Int?
    @Option(name: .customLong("grad-accum"), help: "Micro-batches accumulated per step.") var gradAccum: Int?
    @Option(help: "Optimizer steps.") var steps: Int?
    @Option(help: "Peak learning rate.") var lr: Float?
    /// --corpus, which every causal-LM run needs.
    func requiredCorpus() throws -> String {
        guard let corpus else { throw LMError(.invalidArgument, "give --corpus FILE: the training text") }
        return corpus
    }
    @Option(name: .customLong("min-lr"), help: "Final learning rate of the cosine decay.") var minLR: Float?
    @Option(help: "Linear warm-up steps.") var warmup: Int?
    @Option(help: "Learning-rate schedule: cosine, linear or constant.") var schedule: String?
    @Option(help: "Optimizer: adamw, adam, sgd, adagrad, rmsprop.") var optimizer: String?
    @Option(name: .customLong("weight-decay"), help: "Weight decay (2-D weights only).") var weightDecay: Float?
    @Option(help: "Adam β2.") var beta2: Float?
    @Option(help: "Clip the gradient's global norm to this (0 = off).") var clip: Float?
    @Option(help: "Dropout probability during training.") var dropout: Float?
    @Option(name: .customLong("eval-interval"), help: "Evaluate validation loss every K steps.") var evalInterval: Int?
    @Option(name: .customLong("eval-batches"), help: "Batches per evaluation.") var evalBatches: Int?
    @Option(help: "Stop after this many evaluations without improvement (0 = never).") var patience: Int?
    @Option(name: .customLong("checkpoint-interval"), help: "Write a checkpoint every K steps.") var checkpointInterval: Int?
    @Option(name: .customLong("log-interval"), help: "Log every K steps.") var logInterval: Int?
    @Option(help: "Seed for initialisation, batches and dropout.") var seed: UInt64?
    @Flag(help: "Print one JSON summary at the end.") var json = false
    @OptionGroup var threads: ThreadOptions

    /// `base` with every given flag applied. With --resume the base is the checkpoint's own
    /// options, so only flags given now can differ (and a different shape is refused).
    func apply(to preset: TrainingOptions) throws -> TrainingOptions {
        var o = preset
        let checkpoint = RunDirectory(path: out).checkpoint
        if resume, FileIO.exists(checkpoint) { o = try Checkpoint.load(from: checkpoint).options }
        if let layers { o.layers = layers }
        if let heads { o.heads = heads }
        if let dim { o.dim = dim }
        if let context { o.context = context }
        if let batch { o.batch = batch }
        if let gradAccum { o.gradientAccumulation = gradAccum }
        if let steps { o.steps = steps }
        if let lr { o.learningRate = lr; if minLR == nil { o.minLearningRate = min(o.minLearningRate, lr) } }
        if let minLR { o.minLearningRate = minLR }
        if let warmup { o.warmupSteps = warmup }
        if let schedule {
            guard let k = LearningRateSchedule.Kind(rawValue: schedule) else {
                throw LMError(.invalidArgument, "--schedule \(schedule): use cosine, linear or constant")
            }
            o.schedule = k
        }
        if let optimizer {
            guard let k = OptimizerKind(rawValue: optimizer) else {
                throw LMError(.invalidArgument, "--optimizer \(optimizer): use \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            o.optimizer.kind = k
        }
        if let weightDecay { o.optimizer.weightDecay = weightDecay }
        if let beta2 { o.optimizer.beta2 = beta2 }
        if let clip { o.gradientClip = clip }
        if let dropout { o.dropout = dropout }
        if let evalInterval { o.evalInterval = evalInterval }
        if let evalBatches { o.evalBatches = evalBatches }
        if let patience { o.patience = patience }
        if let checkpointInterval { o.checkpointInterval = checkpointInterval }
        if let logInterval { o.logInterval = logInterval }
        if let seed { o.seed = seed }
        try o.validate()
        return o
    }
}

/// Runs a trainer with a progress bar and a final report; shared by train and finetune.
func runTraining(_ trainer: () throws -> Trainer, json: Bool) throws {
    var bar: ProgressBar?
    func event(_ e: TrainerEvent) {
        switch e {
        case .info(let text):
            if let bar { bar.message(text) } else { printError(text) }
        case .plan:
            printMemoryPlan(e)
        case .started(let start, let total):
            bar = ProgressBar(total: total, start: start, label: "train")
        case .step(let r):
            var fields = [String(format: "loss %.4f", r.trainLoss)]
            if let v = r.valLoss { fields.append(String(format: "val %.4f", v)) }
            fields += [String(format: "%.0f tok/s", r.tokensPerSecond), String(format: "%.1f ms/step", r.msPerStep)]
            bar?.update(r.step, fields: fields, force: r.valLoss != nil)
        case .evaluation(let step, let val, let best):
            bar?.message(String(format: "step %d: val loss %.4f (perplexity %.2f)%@", step, val, exp(Double(val)), best ? " — new best, saved" : ""))
        case .checkpoint:
            break
        case .earlyStop(let step, let bestStep, let bestLoss):
            bar?.message(String(format: "stopping early at step %d: no improvement since step %d (val %.4f)", step, bestStep, bestLoss))
        }
    }
    let t = try trainer()
    let summary = try t.run(onEvent: event)
    bar?.finish()
    let best = summary.bestValidationLoss.map { String(format: "%.4f at step %d", $0, summary.bestStep ?? 0) } ?? "-"
    printError(String(format: "done: %d steps, final train loss %.4f, best val loss %@, median %.1f ms/step", summary.steps, summary.finalTrainLoss, best, summary.medianMsPerStep))
    let use = t.objective is MaskedLMObjective ? "lm embed --model \(t.run.path) TEXT" : "lm generate --model \(t.run.path) --prompt ..."
    printError("model: \(t.run.path)  (\(use))")
    printError("log: \(t.run.log)  plot: \(t.run.plot)")
    if json {
        var o: [String: Any] = ["steps": summary.steps, "final_train_loss": summary.finalTrainLoss,
                                "median_ms_per_step": summary.medianMsPerStep, "stopped_early": summary.stoppedEarly,
                                "run_dir": t.run.path]
        if let b = summary.bestValidationLoss { o["best_val_loss"] = b; o["best_step"] = summary.bestStep ?? 0 }
        print(jsonLine(o))
    }
}

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Pretrain a GPT (causal LM) or a BERT encoder (masked LM) on a text corpus.",
        discussion: reflow("""
        Prints a memory plan, then a progress bar with loss, tokens/s and ETA; evaluates the
        validation loss (last 10 % of the corpus) every --eval-interval steps and keeps the best
        model in --out, which is a model folder for lm generate. A killed run continues with
        --resume exactly where its last checkpoint left it.

        --arch bert --objective mlm pretrains a BERT encoder with BERT's masked-LM objective:
        each sequence is [CLS], a random window of context − 2 corpus tokens, [SEP]; 15 % of
        the window's tokens are chosen, 80 % of them become [MASK], 10 % a random token and 10 %
        stay; the loss is the cross-entropy at the chosen tokens. It needs a WordPiece tokenizer
        (--tokenizer with a BERT folder, its vocab.txt or tokenizer.json). The shape flags apply
        (intermediate size 4 × --dim, --context positions); --out becomes a Hugging Face
        BertForMaskedLM folder (config.json, model.safetensors, vocab.txt) for lm embed or
        transformers. Everything else (evaluation, best model, checkpoints, --resume, log, plot)
        is the same.

        Presets: nano (seconds, for tests), shakespeare-cpu (4 layers, 4 heads, 128 dim,
        context 64, batch 12, AdamW 1e-3 cosine to 1e-4, warm-up 100, weight decay 0.1,
        clip 1.0, AdamW β2 0.999, eval every 250 steps over 200 batches), baby (6 layers, 6 heads, 384 dim,
        context 256, batch 64, dropout 0.2). Flags override the preset.

        Examples:
          lm train --corpus ../shared/data/tinyshakespeare/input.txt --tokenizer char --preset shakespeare-cpu --out runs/shakespeare
          lm train --corpus wiki.txt --tokenizer spm:4000 --layers 6 --heads 6 --dim 384 --context 256 --batch 16 --steps 5000 --out runs/wiki
          lm train --out runs/shakespeare --corpus ../shared/data/tinyshakespeare/input.txt --resume
          lm train --arch bert --objective mlm --corpus ../shared/data/wikitext-2/train.txt --tokenizer ../shared/models/minilm-l6-v2 --preset nano --steps 1000 --out runs/bert-mlm
        """)
    )

    @Option(help: "char, spm:VOCAB (train a SentencePiece BPE on the corpus), a bundled tokenizer name (tokenizers/: gpt2, bert-base-uncased, wikitext2-spm, char-shakespeare) or a tokenizer path (a WordPiece one for --arch bert). Default: char for a GPT.")
    var tokenizer: String?
    @Option(help: "Starting values: nano, shakespeare-cpu or baby.")
    var preset: String = "shakespeare-cpu"
    @Option(help: "gpt (a causal LM, the default) or bert (an encoder, trained with --objective mlm).")
    var arch: String?
    @Option(help: "clm (next-token prediction: gpt) or mlm (masked-LM: bert).")
    var objective: String?
    @OptionGroup var flags: TrainingFlags

    /// Whether the run is a BERT masked LM; with neither flag, what the resumed run was (else a GPT).
    func maskedLM() throws -> Bool? {
        guard arch != nil || objective != nil else { return nil }
        switch (arch ?? (objective == "mlm" ? "bert" : "gpt"), objective ?? (arch == "bert" ? "mlm" : "clm")) {
        case ("gpt", "clm"): return false
        case ("bert", "mlm"): return true
        case ("gpt", "mlm"): throw LMError(.invalidArgument, "--objective mlm trains BERT encoders: use --arch bert --objective mlm")
        case ("bert", "clm"): throw LMError(.invalidArgument, "a BERT encoder trains with --objective mlm (for a causal LM use --arch gpt)")
        case (let a, let o):
            throw LMError(.invalidArgument, ["gpt", "bert"].contains(a) ? "--objective \(o): use clm or mlm" : "--arch \(a): use gpt or bert")
        }
    }

    func run() throws {
        let pool = flags.threads.apply()
        var options = try flags.apply(to: try TrainingOptions.preset(preset))
        if let mlm = try maskedLM() {
            options.maskedLM = mlm ? (options.maskedLM ?? MaskedLMOptions()) : nil
            try options.validate()
        }
        if options.maskedLM != nil && tokenizer == nil && !flags.resume {
            throw LMError(.invalidArgument, "masked-LM pretraining needs a WordPiece tokenizer: pass --tokenizer with a BERT folder or its vocab.txt, e.g. --tokenizer ../shared/models/minilm-l6-v2")
        }
        let spec = try TokenizerSpec(parsing: try resolveTokenizerArgument(tokenizer ?? "char"))
        try runTraining({
            try Trainer(corpus: try flags.requiredCorpus(), tokenizer: spec, options: options, runDirectory: flags.out,
                        resume: flags.resume, extendSteps: flags.steps, overwrite: flags.overwrite, pool: pool,
                        onEvent: printSetupEvent)
        }, json: flags.json)
    }
}

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Continue training a causal LM on a new corpus, or fine-tune a BERT encoder as a classifier.",
        discussion: reflow("""
        --task causal-lm (default): starts from a model folder (a Hugging Face GPT-2 or a run of
        lm train) with its own tokenizer, a lower learning rate by default (1e-4 → 1e-5), and
        optionally frozen layers. Same progress, evaluation, checkpoints and --resume as lm train.

        --task classify: fine-tunes a BERT folder (for example all-MiniLM-L6-v2) on a TSV with a
        sentence<TAB>label header (GLUE's layout; labels as indices or names). Batches are packed
        (dynamic padding without padding tokens); AdamW (weight decay 0.01 on matrices) with a
        linear decay to 0 (--lr 5e-5, --warmup 0 by default); the dev set is evaluated after every
        epoch and every --eval-interval steps (accuracy, precision, recall, F1, confusion matrix);
        the best model by dev accuracy is kept in --out (a folder for lm classify, with log.jsonl);
        --patience N stops after N evaluations without improvement. --steps N stops after N steps.
        A checkpoint (parameters, optimizer moments, loop state) is written every
        --checkpoint-interval steps (default 100) and after every evaluation: --resume continues a
        killed run exactly where it left off, with the options and labels it was started with.

        Examples:
          lm finetune --model runs/shakespeare --corpus sonnets.txt --steps 500 --out runs/sonnets
          lm finetune --model gpt2 --corpus notes.txt --freeze 0,1,2 --context 128 --batch 4 --out runs/notes
          lm finetune --task classify --model ../shared/models/minilm-l6-v2 --train ../shared/data/sst2/train.tsv \\
            --dev ../shared/data/sst2/dev.tsv --labels negative,positive --epochs 2 --lr 5e-5 --batch 32 --max-length 64 --out runs/sst2
          lm finetune --task classify --model ../shared/models/minilm-l6-v2 --train ../shared/data/sst2/train.tsv \\
            --dev ../shared/data/sst2/dev.tsv --out runs/sst2 --resume
        """)
    )

    @Option(help: "The model folder to start from.")
    var model: String
    @Option(parsing: .unconditional, help: "Comma-separated layer indices whose weights stay fixed (-1 = the embeddings).")
    var freeze: String?
    @Option(help: "causal-lm (continue a GPT on --corpus) or classify (a BERT sequence classifier on --train/--dev).")
    var task = "causal-lm"
    @Option(help: "classify: the training TSV (sentence<TAB>label header).") var train: String?
    @Option(help: "classify: the dev TSV, evaluated every epoch.") var dev: String?
    @Option(help: "classify: class names in index order (default: the model's id2label, else negative,positive).") var labels: String?
    @Option(help: "classify: passes over the training set.") var epochs = 3
    @Option(name: .customLong("max-length"), help: "classify: truncate training sentences to this many tokens.") var maxLength = 64
    @Option(help: "classify: mean (mean of the hidden states) or cls (the pooled [CLS] row, Hugging Face's head).") var pooling = "mean"
    @OptionGroup var flags: TrainingFlags

    func run() throws {
        switch task {
        case "causal-lm": try runCausalLM()
        case "classify": try runClassify()
        default: throw LMError(.invalidArgument, "--task \(task): use causal-lm or classify")
        }
    }

    func runClassify() throws {
        let pool = flags.threads.apply()
        guard let train, let dev else {
            throw LMError(.invalidArgument, "--task classify needs --train FILE.tsv and --dev FILE.tsv (sentence<TAB>label)")
        }
        var o = ClassifierTrainingOptions()
        o.epochs = epochs; o.maxLength = maxLength; o.pooling = pooling
        if let v = flags.batch { o.batch = v }
        if let v = flags.lr { o.learningRate = v }
        if let v = flags.warmup { o.warmupSteps = v }
        if let v = flags.weightDecay { o.weightDecay = v }
        if let v = flags.clip { o.gradientClip = v }
        if let v = flags.dropout { o.dropout = v }
        if let v = flags.evalInterval { o.evalInterval = v }
        if let v = flags.patience { o.patience = v }
        if let v = flags.seed { o.seed = v }
        if let v = flags.logInterval { o.logInterval = v }
        if let v = flags.checkpointInterval { o.checkpointInterval = v }
        o.maxSteps = flags.steps
        let names = labels.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        let trainer = try ClassifierTrainer(model: model, train: train, dev: dev, labels: names, options: o, out: flags.out,
                                            resume: flags.resume, overwrite: flags.overwrite, pool: pool) { e in
            switch e {
            case .info(let text): printError(text)
            case .plan(let p): printMemoryPlan(.plan(p))
            default: break
            }
        }
        var bar: ProgressBar?
        let summary = try trainer.run { e in
            switch e {
            case .info(let text): printError(text)
            case .started(let total): bar = ProgressBar(total: total, label: "finetune")
            case .step(let step, let epoch, let loss, let lr, let rate):
                bar?.update(step, fields: ["epoch \(epoch + 1)", String(format: "loss %.4f", loss), String(format: "lr %.2e", lr),
                                           String(format: "%.0f ex/s", rate)])
            case .evaluation(let step, let epoch, let m, let best):
                bar?.message(String(format: "step %d (epoch %.2f): dev accuracy %.2f %%, F1 %.4f%@", step, epoch, 100 * m.accuracy, m.f1,
                                    best ? " — new best, saved" : ""))
            case .earlyStop(let step, let bestStep, let acc):
                bar?.message(String(format: "stopping early at step %d: no better dev accuracy since step %d (%.2f %%)", step, bestStep, 100 * acc))
            default: break
            }
        }
        bar?.finish()
        printError("best dev result (step \(summary.bestStep) of \(summary.steps)):")
        printError(summary.best.report, terminator: "")
        printError(String(format: "training: %.1f s, median %.1f examples/s; model: %@ (lm classify --model %@ TEXT)",
                          summary.trainSeconds, summary.medianExamplesPerSecond, flags.out, flags.out))
        if flags.json {
            var o = summary.best.json
            o["best_step"] = summary.bestStep; o["steps"] = summary.steps; o["stopped_early"] = summary.stoppedEarly
            o["median_examples_per_s"] = summary.medianExamplesPerSecond; o["train_seconds"] = summary.trainSeconds
            o["curve"] = summary.curve.map { ["step": $0.step, "accuracy": $0.accuracy] }
            o["out"] = flags.out
            print(jsonLine(o))
        }
    }

    func runCausalLM() throws {
        let pool = flags.threads.apply()
        let folder = try finetunableConfig(model)
        var base = TrainingOptions()
        base.layers = folder.nLayer; base.heads = folder.nHead; base.dim = folder.nEmbd
        base.context = min(folder.nPositions, 256)
        base.learningRate = 1e-4; base.minLearningRate = 1e-5
        base.warmupSteps = 20; base.steps = 500; base.evalInterval = 100; base.evalBatches = 50
        base.checkpointInterval = 100; base.batch = 8
        var options = try flags.apply(to: base)
        if let freeze {
            options.frozenLayers = try freeze.split(separator: ",").map { part in
                guard let l = Int(part.trimmingCharacters(in: .whitespaces)), l >= -1, l < folder.nLayer else {
                    throw LMError(.invalidArgument, "--freeze: '\(part)' is not a layer index in -1..<\(folder.nLayer)")
                }
                return l
            }
        }
        guard options.layers == folder.nLayer, options.heads == folder.nHead, options.dim == folder.nEmbd else {
            throw LMError(.invalidArgument, "lm finetune keeps the model's shape (\(folder.nLayer) layers, \(folder.nHead) heads, \(folder.nEmbd) dim): drop --layers/--heads/--dim")
        }
        try runTraining({
            try Trainer(corpus: try flags.requiredCorpus(), tokenizer: .existing(model), options: options, runDirectory: flags.out,
                        resume: flags.resume, baseModel: model, extendSteps: flags.steps, overwrite: flags.overwrite,
                        pool: pool, onEvent: printSetupEvent)
        }, json: flags.json)
    }
}

/// Messages while a trainer is being set up (tokenizing, the memory plan).
func printSetupEvent(_ e: TrainerEvent) {
    if case .info(let text) = e { printError(text) }
    printMemoryPlan(e)
}

func printMemoryPlan(_ e: TrainerEvent) {
    guard case .plan(let p) = e else { return }
    func mib(_ b: Int) -> String { String(format: "%9.1f MiB", Double(b) / 1_048_576) }
    printError("memory plan:")
    printError("  parameters      \(mib(p.parameters))")
    printError("  gradients       \(mib(p.gradients))")
    printError("  optimizer state \(mib(p.optimizerState))")
    printError("  activations     \(mib(p.activations))")
    printError("  total           \(mib(p.total))" + (p.available.map { "  (free: \(String(format: "%.1f MiB", Double($0) / 1_048_576)))" } ?? ""))
}

/// The GPT-2 config of a model folder that lm finetune can continue.
func finetunableConfig(_ path: String) throws -> GPT2Config {
    let folder = try ModelFolder(path: path)
    guard folder.modelType == "gpt2" else {
        throw LMError(.invalidConfig, "'\(path)' is a \(folder.modelType) model; lm finetune continues GPT-2-architecture models")
    }
    return try folder.decodeConfig(GPT2Config.self)
}
