import ArgumentParser
import Foundation
import LMCore
import LMTraining

struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Sentence embeddings from a BERT encoder (mean pooling, L2-normalised).",
        discussion: reflow("""
        Computes what sentence-transformers returns for a mean-pooling model such as
        all-MiniLM-L6-v2: the mean of the last hidden states over the tokens, divided by its L2
        norm. Without TEXT, reads one text per line from --file or stdin, in batches.
        Output: one line per text with the values separated by spaces; --json prints one object
        per line, {"text": ..., "embedding": [...]}. Texts longer than --max-length tokens
        (default 256, as sentence-transformers) are truncated with a note on stderr.

        Examples:
          lm embed --model ../shared/models/minilm-l6-v2 "A cat sits on the mat."
          cat sentences.txt | lm embed --model ../shared/models/minilm-l6-v2 --json > embeddings.jsonl
        """)
    )

    @Option(help: "A BERT model folder with its tokenizer.")
    var model: String
    @Option(help: "Read one text per line from this file (default without TEXT: stdin).")
    var file: String?
    @Flag(help: "One JSON object per line: {\"text\", \"embedding\"}.")
    var json = false
    @Option(help: "Texts per batch.")
    var batch = 32
    @Option(name: .customLong("max-length"), help: "Truncate inputs to this many tokens.")
    var maxLength = 256
    @OptionGroup var threads: ThreadOptions
    @Argument(help: "Texts to embed (default: --file or stdin lines).")
    var texts: [String] = []

    func validate() throws {
        guard batch >= 1 else { throw LMError(.invalidArgument, "--batch must be ≥ 1") }
        try TextInput(arguments: texts, file: file).validate()
    }

    func run() throws {
        let pool = threads.apply()
        let pipeline = try BertTextPipeline(folder: model, pool: pool)
        let p = try BertTextPipeline(model: pipeline.model, tokenizer: pipeline.tokenizer,
                                     maxLength: min(maxLength, pipeline.model.config.maxPositionEmbeddings))
        let start = DispatchTime.now()
        var count = 0
        try TextInput(arguments: texts, file: file).forEachBatch(batch) { items in
            try runBatch(items, with: p, action: "embed", verb: "embedded", json: json,
                         results: { try p.embeddings(ids: $0) }) { item, v in
                print(json ? jsonLine(["text": item.text, "embedding": v.map(Double.init)]) : v.map { "\($0)" }.joined(separator: " "))
            }
            count += items.count
        }
        if texts.isEmpty { printThroughput(count: count, since: start) }
    }
}
