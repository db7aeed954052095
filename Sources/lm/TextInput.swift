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

/// Prints `{"error": ..., "line": N}` (JSON) or a message for an input that cannot be read,
/// keeping one output line per input line.
func reportSkipped(_ item: TextInput.Item, _ reason: String, json: Bool) {
    printError("\(item.origin): \(reason)")
    print(json ? jsonLine(["error": "\(item.origin): \(reason)"]) : "error\t\(item.origin): \(reason)")
}

/// Elapsed seconds since `start` on the monotonic clock.
func secondsSince(_ start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
}
