import Foundation
import LMCore
import LMTraining

/// Texts for `lm classify` and `lm embed`: the TEXT arguments, else the lines of `--file`,
/// else the lines of stdin — read and handed out in batches, so results stream. Lines end in
/// "\n" or "\r\n" and must be UTF-8 (the rules of `TextFile`, as everywhere).
struct TextInput {
    let arguments: [String]
    let file: String?

    /// One input: its text and where it came from ("TEXT 2", "line 7").
    struct Item { let text: String; let origin: String }

    /// TEXT and --file are two sources: giving both would silently drop one.
    func validate() throws {
        if file != nil && !arguments.isEmpty {
            throw LMError(.invalidArgument, "give TEXT arguments or --file, not both (--file would be ignored)")
        }
    }

    /// Calls `body` with consecutive batches of at most `batch` items, in input order.
    func forEachBatch(_ batch: Int, _ body: ([Item]) throws -> Void) throws {
        try validate()
        var pending: [Item] = []
        func add(_ item: Item) throws {
            pending.append(item)
            if pending.count == batch { try body(pending); pending.removeAll(keepingCapacity: true) }
        }
        if !arguments.isEmpty {
            for (i, t) in arguments.enumerated() where t.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                throw LMError(.invalidInput, "TEXT \(i + 1) is empty — give some text to read")
            }
            for (i, t) in arguments.enumerated() { try add(Item(text: t, origin: "TEXT \(i + 1)")) }
        } else if let file {
            let lines = try TextFile.readLines(file, what: "--file", expecting: "a text file with one input per line")
            for (i, line) in lines.enumerated() { try add(Item(text: line, origin: "line \(i + 1)")) }
        } else {
            var reader = LineReader()
            while let line = try reader.next() { try add(Item(text: line, origin: "line \(reader.lineNumber)")) }
        }
        if !pending.isEmpty { try body(pending) }
    }
}

/// Runs one batch through a BERT pipeline: encodes the items, computes `results` for the ones
/// that have text (none at all for a batch of blank lines), and hands each item its result —
/// or, for a blank line, writes an error line in its place — in input order.
func runBatch<Result>(_ items: [TextInput.Item], with pipeline: BertTextPipeline, action: String, verb: String, json: Bool,
                      results: ([[Int]]) throws -> [Result], each: (TextInput.Item, Result) -> Void) throws {
    let ids = try encodeBatch(items, with: pipeline, verb: verb)
    let present = ids.compactMap { $0 }
    let out = present.isEmpty ? [] : try results(present)
    var next = 0
    for (item, seq) in zip(items, ids) {
        guard seq != nil else { reportSkipped(item, "empty line — nothing to \(action)", json: json); continue }
        each(item, out[next])
        next += 1
    }
    StandardOutput.flush()
}

/// Token ids for a batch of inputs: nil for an empty line (reported in its place later), and a
/// note on stderr for a text longer than the pipeline's --max-length (its first tokens are used;
/// `verb` says what was done with them: "classified", "embedded").
func encodeBatch(_ items: [TextInput.Item], with pipeline: BertTextPipeline, verb: String) throws -> [[Int]?] {
    try items.map { item in
        if item.text.trimmingCharacters(in: .whitespaces).isEmpty { return nil }
        let e = try pipeline.encode(item.text)
        if e.fullLength > e.ids.count {
            printError("note: \(item.origin) has \(e.fullLength) tokens; \(verb) its first \(e.ids.count) (--max-length \(pipeline.maxLength))")
        }
        return e.ids
    }
}

/// Prints `{"error": ..., "line": N}` (JSON) or a message for an input that cannot be read,
/// keeping one output line per input line.
func reportSkipped(_ item: TextInput.Item, _ reason: String, json: Bool) {
    printError("\(item.origin): \(reason)")
    print(json ? jsonLine(["error": "\(item.origin): \(reason)"]) : "error\t\(item.origin): \(reason)")
}

/// "3 texts in 0.02 s: 150.2 sentences/s" on stderr, the throughput line of classify and embed.
func printThroughput(count: Int, since start: DispatchTime) {
    let s = secondsSince(start)
    printError(String(format: "%d %@ in %.2f s: %.1f sentences/s", count, count == 1 ? "text" : "texts", s, Double(count) / max(s, 1e-9)))
}

/// Elapsed seconds since `start` on the monotonic clock.
func secondsSince(_ start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
}
