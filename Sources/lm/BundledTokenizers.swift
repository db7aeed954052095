import Foundation
import LMCore

/// Finds bundled tokenizers, as `BundledModels` finds bundled models: a NAME is a folder
/// `tokenizers/NAME` under `$LM_TOKENIZERS`, then `tokenizers/` in the working directory, then a
/// `tokenizers/` folder above the executable (the repository checkout that built it).
///
/// ```
/// lm tokenize --tokenizer gpt2 "Hello world"          # tokenizers/gpt2 (vocab.json + merges.txt)
/// lm train --tokenizer wikitext2-spm --corpus ...      # tokenizers/wikitext2-spm/tokenizer.model
/// ```
enum BundledTokenizers {
    /// The folders searched for NAME, in order (they need not exist).
    static var roots: [String] {
        var roots: [String] = []
        if let env = ProcessInfo.processInfo.environment["LM_TOKENIZERS"], !env.isEmpty { roots.append(env) }
        roots.append(FileManager.default.currentDirectoryPath + "/tokenizers")
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            roots.append(dir.appendingPathComponent("tokenizers").path)
            dir = dir.deletingLastPathComponent()
        }
        return roots
    }

    /// Whether `text` can be a bundled name: one path component, not `.` or `..`.
    static func isName(_ text: String) -> Bool {
        !text.isEmpty && !text.contains("/") && text != "." && text != ".."
    }

    /// The folder of the bundled tokenizer `name`, or nil.
    static func path(_ name: String) -> String? {
        guard isName(name) else { return nil }
        for root in roots where FileIO.isDirectory(root + "/" + name) {
            return root + "/" + name
        }
        return nil
    }

    /// The names of the bundled tokenizers in every root that exists, sorted, without repeats.
    static var names: [String] {
        var found = Set<String>()
        for root in roots where FileIO.isDirectory(root) {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
            for e in entries where !e.hasPrefix(".") && FileIO.isDirectory(root + "/" + e) { found.insert(e) }
        }
        return found.sorted()
    }
}

/// A `--tokenizer` argument as a path: `char`, `spm:N` and an existing path come back unchanged;
/// a bundled name (`gpt2`, `bert-base-uncased`, ...) becomes the path of its folder under
/// `tokenizers/` (see `BundledTokenizers`). Anything else is a one-line `.fileNotFound` error
/// listing the bundled names.
func resolveTokenizerArgument(_ text: String) throws -> String {
    if text == "char" || text.hasPrefix("spm:") || FileIO.exists(text) { return text }
    if let path = BundledTokenizers.path(text) { return path }
    let names = BundledTokenizers.names
    let available = names.isEmpty
        ? "no bundled tokenizers were found (looked in $LM_TOKENIZERS, ./tokenizers and tokenizers/ above the lm executable)"
        : "bundled tokenizers: " + names.joined(separator: ", ")
    throw LMError(.fileNotFound, "tokenizer '\(text)' does not exist as a path and is not a bundled tokenizer name; \(available) — or pass a model folder, a tokenizer.model, a tokenizer.json or a .gguf file")
}
