import Foundation
import LMCore

/// A classifier's output on labelled examples: the class log-probabilities of every example
/// (Double), the predicted class (the most likely, the lowest index on ties) and the metrics.
public struct ClassifierScores: Sendable {
    public let logProbabilities: [[Double]]
    public let predicted: [Int]
    public let metrics: ClassificationMetrics

    /// From the logits (one row per example) and the true classes.
    public init(logits: [[Float]], truth: [Int], labels: [String]) {
        var logP: [[Double]] = [], predicted: [Int] = []
        for row in logits {
            var out = [Double](repeating: 0, count: row.count)
            predicted.append(row.withUnsafeBufferPointer { logSoftmaxDouble($0.baseAddress!, count: row.count, into: &out) })
            logP.append(out)
        }
        logProbabilities = logP
        self.predicted = predicted
        metrics = ClassificationMetrics(labels: labels, truth: truth, predicted: predicted)
    }
}

/// Two classifiers (a float model and its int8 form) on the same labelled examples: each one's
/// metrics, how often they predict the same class, and the mean KL divergence of their class
/// distributions, KL(reference ‖ candidate), in nats.
public struct ClassifierComparison: Sendable {
    public let reference: ClassifierScores
    public let candidate: ClassifierScores
    public let meanKLD: Double
    /// Fraction of examples where both predict the same class.
    public let top1Agreement: Double
    /// Candidate accuracy minus reference accuracy, in percentage points.
    public var accuracyChangePoints: Double { 100 * (candidate.metrics.accuracy - reference.metrics.accuracy) }

    public init(reference: ClassifierScores, candidate: ClassifierScores) {
        precondition(reference.predicted.count == candidate.predicted.count, "the two classifiers scored different examples")
        self.reference = reference
        self.candidate = candidate
        let n = reference.predicted.count
        var kld = 0.0, agree = 0
        for i in 0..<n {
            kld += klDivergence(logP: reference.logProbabilities[i], logQ: candidate.logProbabilities[i],
                                count: reference.logProbabilities[i].count)
            if reference.predicted[i] == candidate.predicted[i] { agree += 1 }
        }
        meanKLD = n == 0 ? 0 : kld / Double(n)
        top1Agreement = n == 0 ? 0 : Double(agree) / Double(n)
    }
}

/// Runs BERT classifiers over labelled examples in batches: `lm classify --eval`, `lm eval --tsv`,
/// `lm quantize --report --tsv` and the fine-tuning trainer's dev evaluation.
///
/// ```swift
/// let data = try LabelledExamples(tsv: "dev.tsv", labelNames: pipeline.labels)
/// let run = try ClassifierEvaluation.evaluate(pipeline, on: data)
/// print(run.scores.metrics.report)
/// ```
public enum ClassifierEvaluation {
    /// One or more classifiers' scores on the same examples.
    public struct Run: Sendable {
        /// One per classifier, in the order given.
        public var scores: [ClassifierScores]
        /// Examples longer than a classifier's `maxLength` (cut to it).
        public var truncated: Int
        public var seconds: Double
    }

    /// Every classifier over the examples, batch by batch (each batch goes through all of
    /// them before the next: one pass over the data). `progress(done)` after each batch.
    public static func run(_ pipelines: [BertTextPipeline], on data: LabelledExamples, batch: Int = 32,
                           progress: (Int) -> Void = { _ in }) throws -> Run {
        guard batch >= 1 else { throw LMError(.invalidArgument, "--batch must be ≥ 1") }
        guard let first = pipelines.first else { return Run(scores: [], truncated: 0, seconds: 0) }
        for p in pipelines where p.labels != first.labels {
            throw LMError(.invalidConfig, "the classifiers have different labels (\(first.labels.joined(separator: ",")) and \(p.labels.joined(separator: ","))) — compare models with the same head")
        }
        let start = DispatchTime.now()
        var logits = Array(repeating: [[Float]](), count: pipelines.count)
        var truncated = 0
        for s in stride(from: 0, to: data.count, by: batch) {
            let sentences = data.sentences[s..<min(data.count, s + batch)]
            for (i, p) in pipelines.enumerated() {
                let ids = try sentences.map { text -> [Int] in
                    let e = try p.encode(text)
                    if i == 0 && e.fullLength > e.ids.count { truncated += 1 }
                    return e.ids
                }
                logits[i] += try p.logits(ids: ids)
            }
            progress(s + sentences.count)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        return Run(scores: logits.map { ClassifierScores(logits: $0, truth: data.labels, labels: first.labels) },
                   truncated: truncated, seconds: seconds)
    }

    /// One classifier's metrics on the examples.
    public static func evaluate(_ pipeline: BertTextPipeline, on data: LabelledExamples, batch: Int = 32,
                                progress: (Int) -> Void = { _ in }) throws -> (scores: ClassifierScores, run: Run) {
        let r = try run([pipeline], on: data, batch: batch, progress: progress)
        return (r.scores[0], r)
    }

    /// A reference classifier (float) and a candidate (int8) on the same examples in one pass.
    public static func compare(reference: BertTextPipeline, candidate: BertTextPipeline, on data: LabelledExamples,
                               batch: Int = 32, progress: (Int) -> Void = { _ in }) throws -> (comparison: ClassifierComparison, run: Run) {
        let r = try run([reference, candidate], on: data, batch: batch, progress: progress)
        return (ClassifierComparison(reference: r.scores[0], candidate: r.scores[1]), r)
    }
}
