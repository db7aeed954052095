import ArgumentParser
import Foundation
import LMCore
import LMGeneration

/// `--threads`, shared by every command that computes.
struct ThreadOptions: ParsableArguments {
    @Option(help: "Threads for OpenBLAS and swift-lm's own loops (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 || threads > 256 {
            throw LMError(.invalidArgument, "--threads \(threads) is out of range: use 1...256")
        }
    }

    /// Applies the setting process-wide and returns the pool to use.
    func apply() -> ThreadPool {
        Threads.configure(threads ?? Threads.available)
        return Threads.shared
    }
}

/// Sampling flags (llama.cpp names and defaults).
struct SamplingOptions: ParsableArguments {
    @Option(help: "Sampling temperature; 0 = greedy.")
    var temperature: Float = SamplerSettings().temperature
    @Option(help: "Keep only the K most likely tokens; 0 = off.")
    var topK: Int = SamplerSettings().topK
    @Option(help: "Keep the most likely tokens up to this probability mass; 1 = off.")
    var topP: Float = SamplerSettings().topP
    @Option(help: "Drop tokens less likely than this fraction of the best one; 0 = off.")
    var minP: Float = SamplerSettings().minP
    @Option(help: "Penalise tokens seen in the last --repeat-last-n tokens; 1 = off.")
    var repeatPenalty: Float = SamplerSettings().repeatPenalty
    @Option(help: "Window of the repetition penalty, in tokens.")
    var repeatLastN: Int = SamplerSettings().repeatLastN
    @Option(help: "Random seed: the same seed gives the same tokens.")
    var seed: UInt64 = 0

    var settings: SamplerSettings {
        var s = SamplerSettings()
        s.temperature = temperature; s.topK = topK; s.topP = topP; s.minP = minP
        s.repeatPenalty = repeatPenalty; s.repeatLastN = repeatLastN; s.seed = seed
        return s
    }

    func validate() throws {
        do { try settings.validate() } catch let e as LMError { throw e }
    }
}

/// Finds bundled models: `$LM_MODELS`, then `models/` in the working directory, then a
/// `models/` folder above the executable (the repository checkout that built it).
enum BundledModels {
    static let defaultGenerator = "shakespeare"
    static let defaultClassifier = "sentiment"

    static func path(_ name: String) throws -> String {
        var roots: [String] = []
        if let env = ProcessInfo.processInfo.environment["LM_MODELS"] { roots.append(env) }
        roots.append(FileManager.default.currentDirectoryPath + "/models")
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            roots.append(dir.appendingPathComponent("models").path)
            dir = dir.deletingLastPathComponent()
        }
        for root in roots where FileIO.isDirectory(root + "/" + name) {
            return root + "/" + name
        }
        throw LMError(.fileNotFound, "the bundled model '\(name)' was not found (looked in $LM_MODELS and models/) — pass --model DIR")
    }
}

/// Parses "1,2,3" (spaces allowed) into ids.
func parseIDs(_ text: String, flag: String) throws -> [Int] {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    guard !trimmed.isEmpty else { throw LMError(.invalidArgument, "\(flag) is empty: give ids like 1,2,3") }
    // Commas separate (with spaces around them allowed); spaces alone separate too ("1 2 3").
    let parts = trimmed.contains(",")
        ? trimmed.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        : trimmed.split(separator: " ").map(String.init)
    return try parts.enumerated().map { k, p in
        guard !p.isEmpty else {
            throw LMError(.invalidArgument, "\(flag): id \(k + 1) of '\(text)' is empty — separate ids with single commas, e.g. 1,2,3")
        }
        guard let v = Int(p), v >= 0 else { throw LMError(.invalidArgument, "\(flag): '\(p)' is not a token id (a non-negative integer)") }
        guard v <= Int(Int32.max) else { throw LMError(.invalidArgument, "\(flag): \(p) is beyond any vocabulary (token ids are below 2^31)") }
        return v
    }
}

/// Writes to stderr.
func printError(_ s: String, terminator: String = "\n") {
    FileHandle.standardError.write((s + terminator).data(using: .utf8)!)
}

/// A JSON value written with sorted keys.
func jsonLine(_ object: Any) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    return String(decoding: data, as: UTF8.self)
}

/// Peak resident memory of this process, in bytes.
func peakRSSBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int(usage.ru_maxrss) * 1024
}

func formatRate(_ v: Double) -> String { String(format: "%.2f", v) }

/// Help text as written in the source, re-flowed for ArgumentParser: the lines of a paragraph
/// are joined (ArgumentParser wraps them to the terminal), while blank lines and indented lines
/// (examples) keep their breaks.
func reflow(_ text: String) -> String {
    var out: [String] = []
    for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
        if let last = out.last, !last.isEmpty, !last.hasPrefix(" "), !line.isEmpty, !line.hasPrefix(" ") {
            out[out.count - 1] = last + " " + line
        } else {
            out.append(line)
        }
    }
    return out.joined(separator: "\n")
}
