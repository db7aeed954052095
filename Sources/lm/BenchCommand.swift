import ArgumentParser
import Foundation
import LMCore
import LMGeneration
import LMModels

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure prompt processing and generation speed, like llama-bench.",
        discussion: reflow("""
        ppN: N random tokens in one batched prefill from an empty cache, tokens/s.
        tgN: N single-token decode steps from an empty cache (logits computed, no sampling).
        Each test runs once to warm up, then --reps times; mean ± standard deviation.

        Examples:
          lm bench --random gpt2-124m
          lm bench --model ~/.cache/swift-lm/gemma-3-270m-q4_k_m.gguf
          lm bench --model models/gpt2-tiny --threads 1 --json
        """)
    )

    @Option(help: "Model folder or .gguf file to measure.")
    var model: String?
    @Option(help: "Build a model of this shape with random weights in memory (gpt2-124m, gpt2-355m).")
    var random: String?
    @Option(help: "Prompt length of the pp test.")
    var pp: Int = 512
    @Option(help: "Generated tokens of the tg test.")
    var tg: Int = 128
    @Option(help: "Measured runs per test (after one warm-up).")
    var reps: Int = 5
    @Option(help: "Weights: fp32 (default: as the file holds them) or int8 (float weights quantized to Q8 blocks as they load).")
    var quant: String = "fp32"
    @Option(name: [.customShort("c"), .customLong("ctx-size")], help: "KV cache size in positions (default: the model's context, at most \(defaultContextSize)).")
    var ctxSize: Int?
    @Flag(help: "Print one JSON object.")
    var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if (model == nil) == (random == nil) { throw LMError(.invalidArgument, "give --model DIR or --random NAME (one of them)") }
        if let random, GPT2Config.presets[random] == nil {
            throw LMError(.invalidArgument, "--random \(random) is not a known shape (known: \(GPT2Config.presets.keys.sorted().joined(separator: ", ")))")
        }
        if pp < 1 || tg < 1 || reps < 1 { throw LMError(.invalidArgument, "--pp, --tg and --reps must be ≥ 1") }
        if quant != "fp32" && quant != "int8" { throw LMError(.invalidArgument, "--quant \(quant): use fp32 or int8") }
    }

    func run() throws {
        let pool = threads.apply()
        let lm: any CausalLanguageModel
        let name: String
        if let random {
            printError("building \(random) with random weights…")
            lm = try GPT2Model(randomWith: GPT2Config.presets[random]!, seed: 0, pool: pool, convertTo: quant == "int8" ? .q8 : nil)
            name = "\(random) (random\(quant == "int8" ? ", int8" : ""))"
        } else {
            lm = try ModelRegistry.loadCausalLM(path: model!, pool: pool, convertTo: quant == "int8" ? .q8 : nil)
            name = (model! as NSString).lastPathComponent + (quant == "int8" ? " (int8)" : "")
        }
        let context = try contextSize(ctxSize, model: lm)
        guard pp <= context, tg <= context else {
            throw LMError(.invalidArgument, "--pp \(pp) / --tg \(tg) exceed the context of \(context)")
        }
        let cache = lm.makeCache(capacity: context)
        var rng = SeededRNG(seed: 1)
        let V = lm.vocabularySize
        let prompt = (0..<pp).map { _ in Int32(rng.nextInt(below: V)) }
        let step = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        defer { step.deallocate() }

        func measure(_ label: String, tokens: Int, _ body: () throws -> Void) rethrows -> [Double] {
            var rates: [Double] = []
            for rep in 0...reps {
                cache.reset()
                let t0 = monotonicSeconds()
                try body()
                let dt = monotonicSeconds() - t0
                if rep > 0 { rates.append(Double(tokens) / dt) }
                if !json { printError("\r\(label): run \(rep)/\(reps)", terminator: "") }
            }
            if !json { printError("") }
            return rates
        }
        let ppRates = try measure("pp\(pp)", tokens: pp) {
            _ = try prompt.withUnsafeBufferPointer { try lm.forward(tokens: $0, cache: cache, allLogits: false) }
        }
        let tgRates = try measure("tg\(tg)", tokens: tg) {
            for i in 0..<tg {
                step[0] = prompt[i % pp]
                _ = try lm.forward(tokens: UnsafeBufferPointer(start: step, count: 1), cache: cache, allLogits: false)
            }
        }
        let weightsMiB = Double(lm.weightBytes) / 1_048_576
        let kvMiB = Double(cache.bytes) / 1_048_576
        let rssMiB = Double(peakRSSBytes()) / 1_048_576
        func summary(_ r: [Double]) -> [String: Any] {
            let mean = r.reduce(0, +) / Double(r.count)
            let sd = r.count > 1 ? (r.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(r.count - 1)).squareRoot() : 0
            return ["mean": mean, "stddev": sd, "runs": r]
        }
        let ppS = summary(ppRates), tgS = summary(tgRates)
        if json {
            print(jsonLine([
                "model": name, "params": lm.parameterCount, "threads": pool.threadCount, "kernels": kernelISA,
                "cpu": SystemInfo.cpuName, "cpu_features": SystemInfo.features, "blas_core": BLAS.core.used,
                "blas_core_detected": BLAS.core.detected,
                "weight_types": lm.weightTypes, "context": context,
                "weights_mib": weightsMiB, "kv_cache_mib": kvMiB, "peak_rss_mib": rssMiB,
                "pp\(pp)": ppS, "tg\(tg)": tgS,
            ] as [String: Any]))
        } else {
            let params = String(format: "%.1fM", Double(lm.parameterCount) / 1e6)
            let size = String(format: "%.1f MiB", weightsMiB)
            print("| model | params | size | threads | test | t/s |")
            print("| --- | ---: | ---: | ---: | ---: | ---: |")
            for (label, s) in [("pp\(pp)", ppS), ("tg\(tg)", tgS)] {
                let m = s["mean"] as! Double, sd = s["stddev"] as! Double
                print("| \(name) | \(params) | \(size) | \(pool.threadCount) | \(label) | \(String(format: "%.2f ± %.2f", m, sd)) |")
            }
            printError(String(format: "peak RSS %.1f MiB (weights %.1f MiB + KV cache %.1f MiB for %d positions)", rssMiB, weightsMiB,
                              kvMiB, context))
            for line in SystemInfo.lines { printError(line) }
        }
    }
}
