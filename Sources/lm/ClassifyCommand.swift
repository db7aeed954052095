import ArgumentParser
import Foundation
import LMCore
import LMModels
import LMTraining

struct ClassifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classify",
        abstract: "Classify texts with a BERT sequence classifier (default: the bundled sentiment model).",
        discussion: reflow("""
        Prints the label and its probability for each text, one line per text (LABEL<TAB>SCORE<TAB>TEXT).
        Without TEXT, reads one text per line from --file or stdin in batches, streams the results
        and prints sentences/s on stderr at the end. Texts longer than --max-length tokens are
        truncated (with a note on stderr); an empty input line gives an error line in its place.
        --json prints the Hugging Face pipeline shape, one JSON value per input line:
        {"label": "positive", "score": 0.998}, or with --top-k a list of them for every class.
        --eval FILE.tsv (a sentence<TAB>label header, labels as names or indices) prints accuracy,
        precision, recall, F1 and the confusion matrix instead.

        Examples:
          lm classify "what a wonderful film"
          lm classify --top-k --json "a dull, lifeless mess"
          lm classify --model runs/sst2 --file reviews.txt --json
          lm classify --eval ../shared/data/sst2/dev.tsv
        """)
    )

    @Option(help: "A BERT folder with a classification head (default: the bundled models/sentiment).")
    var model: String?
    @Option(help: "Read one text per line from this file (default without TEXT: stdin).")
    var file: String?
    @Option(help: "Evaluate on a labelled TSV (sentence<TAB>label header) instead of printing labels.")
    var eval: String?
    @Flag(name: .customLong("top-k"), help: "Show every class with its probability, most likely first.")
    var topK = false
    @Flag(help: "One JSON value per input line.")
    var json = false
    @Option(help: "Texts per batch.")
    var batch = 32
    @Option(name: .customLong("max-length"), help: "Truncate inputs to this many tokens (default: the model's positions).")
    var maxLength: Int?
    @OptionGroup var threads: ThreadOptions
    @Argument(help: "Texts to classify (default: --file or stdin lines).")
    var texts: [String] = []

    func validate() throws {
        guard batch >= 1 else { throw LMError(.invalidArgument, "--batch must be ≥ 1") }
        if eval != nil && (file != nil || !texts.isEmpty) {
            throw LMError(.invalidArgument, "--eval scores a labelled TSV on its own: drop TEXT / --file (or drop --eval to classify them)")
        }
        try TextInput(arguments: texts, file: file).validate()
    }

    func run() throws {
        let pool = threads.apply()
        let path = try model ?? BundledModels.path(BundledModels.defaultClassifier)
        let pipeline = try BertTextPipeline(folder: path, maxLength: maxLength, classifier: true, pool: pool)
        let labels = pipeline.labels
        if let eval { return try evaluate(pipeline, eval) }
        let start = DispatchTime.now()
        var count = 0
        try TextInput(arguments: texts, file: file).forEachBatch(batch) { items in
            try runBatch(items, with: pipeline, action: "classify", verb: "classified", json: json,
                         results: { try pipeline.probabilities(ids: $0) }) { item, p in
                print(format(p, labels: labels, text: item.text))
            }
            count += items.count
        }
        if texts.isEmpty || count > 1 { printThroughput(count: count, since: start) }
    }

    func format(_ p: [Float], labels: [String], text: String) -> String {
        let order = p.indices.sorted { p[$0] > p[$1] }
        func object(_ k: Int) -> [String: Any] { ["label": labels[k], "score": Double(p[k])] }
        if json { return topK ? jsonLine(order.map(object)) : jsonLine(object(order[0])) }
        let shown = topK ? order.map { "\(labels[$0]) \(String(format: "%.4f", p[$0]))" }.joined(separator: ", ")
                         : "\(labels[order[0]])\t\(String(format: "%.4f", p[order[0]]))"
        return shown + "\t" + (text.count > 100 ? text.prefix(100) + "…" : text)
    }

    func evaluate(_ pipeline: BertTextPipeline, _ path: String) throws {
        try ClassifyCommand.printEvaluation(pipeline, tsv: path, batch: batch, json: json)
    }

    /// `lm classify --eval` and `lm eval --tsv`: accuracy, precision, recall, F1 and the
    /// confusion matrix of a classifier on a labelled TSV (with --json one object).
    static func printEvaluation(_ pipeline: BertTextPipeline, tsv path: String, batch: Int, json: Bool) throws {
        let data = try LabelledExamples(tsv: path, labelNames: pipeline.labels)
        let bar = ProgressBar(total: data.count, label: "eval", unit: "sentences")
        let (scores, run) = try ClassifierEvaluation.evaluate(pipeline, on: data, batch: batch) { bar.update($0, fields: [], force: $0 == data.count) }
        bar.finish()
        let m = scores.metrics
        let rate = Double(data.count) / max(run.seconds, 1e-9)
        if run.truncated > 0 { printError("note: \(run.truncated) texts were longer than \(pipeline.maxLength) tokens and were truncated") }
        if json {
            var o = m.json
            o["sentences_per_s"] = rate
            print(jsonLine(o))
        } else {
            print(m.report, terminator: "")
            print(String(format: "%d sentences in %.2f s: %.1f sentences/s", data.count, run.seconds, rate))
        }
    }
}
