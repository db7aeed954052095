import Foundation
import LMCore
import LMTraining

/// Texts for `lm classify` and `lm embed`: the TEXT arguments, else the lines of `--file`,
/// else the lines of stdin — read and handed out in batches, so results stream.
struct TextInput {
    let arguments: [String]
    let file: String?

    /// One input: its text and where it came from ("TEXT 2", "line 7").
    struct Item { let text: String; let origin: String }

    /// Calls `body` with consecutive batches of at most `batch` items, in input order.
    func forEachBatch(_ batch: Int, _ body: ([Item]) throws -> Void) throws {
        if !arguments.isEmpty {
            for (i, t) in arguments.enumerated() where t.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                throw LMError(.invalidInput, "TEXT \(i + 1) is empty — give some text to read")
            }
            let items = arguments.enumerated().map { Item(text: $0.element, origin: "TEXT \($0.offset + 1)") }
            for start in stride(from: 0, to: items.count, by: batch) { try body(Array(items[start..<min(items.count, start + batch)])) }
            return
        }
        var pending: [Item] = []
        var number = 0
        func add(_ line: Substring) throws {
            number += 1
            let text = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
            pending.append(Item(text: text, origin: "line \(number)"))
            if pending.count == batch { try body(pending); pending.removeAll(keepingCapacity: true) }
        }
        if let file {
            guard FileIO.exists(file), !FileIO.isDirectory(file) else {
                throw LMError(.fileNotFound, "--file '\(file)' does not exist — give a text file with one input per line")
            }
            let text = try FileIO.readString(file)
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            if lines.last?.isEmpty == true { lines.removeLast() }
            for l in lines { try add(l) }
        } else {
            while let l = readLine(strippingNewline: true) { try add(Substring(l)) }
        }
        if !pending.isEmpty { try body(pending) }
    }
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
