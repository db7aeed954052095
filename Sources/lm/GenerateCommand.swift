import ArgumentParser
import Foundation
import LMCore
import LMGeneration
import LMModels
import LMTokenizers

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a prompt, streaming tokens as they come.",
        discussion: reflow("""
        Prompt and generation speed (tokens/s) go to stderr; with --json the last stdout line is
        one JSON object with "ids", "text", "prompt_tokens_per_s" and "tokens_per_s".

        Examples:
          lm generate --prompt "ROMEO:" --max-tokens 100 --temperature 0.8 --seed 1
          lm generate --model gemma-3-270m-q4_k_m.gguf --prompt "The capital of France is" --temperature 0
          lm generate --model models/gpt2-tiny --prompt-ids 1,2,3 --temperature 0 --json
        """)
    )

    @Option(help: "Model folder (config.json + model.safetensors) or .gguf file. Default: the bundled model.")
    var model: String?
    @Option(name: [.customShort("c"), .customLong("ctx-size")], help: "Context size in tokens (default: the model's, at most \(defaultContextSize)).")
    var ctxSize: Int?
    @Option(help: "Prompt text (needs a tokenizer in the model folder).")
    var prompt: String?
    @Option(help: "Prompt as comma-separated token ids, e.g. 1,2,3.")
    var promptIds: String?
    @Option(help: "Maximum number of new tokens.")
    var maxTokens: Int = 128
    @Flag(help: "Keep going past the end-of-text token.")
    var ignoreEos = false
    @Flag(help: "Print one JSON object instead of streaming.")
    var json = false
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if prompt != nil && promptIds != nil { throw LMError(.invalidArgument, "give --prompt or --prompt-ids, not both") }
        if prompt == nil && promptIds == nil { throw LMError(.invalidArgument, "give a prompt: --prompt TEXT or --prompt-ids 1,2,3") }
        if maxTokens < 0 { throw LMError(.invalidArgument, "--max-tokens \(maxTokens) must be ≥ 0") }
    }

    func run() throws {
        let pool = threads.apply()
        let folder = try model ?? BundledModels.path(BundledModels.defaultGenerator)
        let loaded = try LoadedModel.load(folder, pool: pool)
        let lm = loaded.model, tokenizer = loaded.tokenizer
        let context = try contextSize(ctxSize, model: lm)
        let promptIDs: [Int]
        if let promptIds {
            promptIDs = try parseIDs(promptIds, flag: "--prompt-ids")
        } else if let tokenizer {
            // The tokenizer's own single-sequence specials: none for GPT-2, <s> for Llama.
            promptIDs = try tokenizer.encode(prompt ?? "", addSpecialTokens: true)
        } else {
            throw LMError(.invalidInput, "'\(folder)' has no tokenizer, so it cannot read --prompt text — pass --prompt-ids 1,2,3")
        }
        if promptIDs.isEmpty {
            throw LMError(.invalidInput, "the prompt is empty after tokenization — give some text")
        }
        if promptIDs.count >= context {
            throw LMError(.invalidInput, "the prompt has \(promptIDs.count) tokens but the context is \(context) — shorten the prompt\(context < lm.contextLength ? " or raise --ctx-size" : "")")
        }
        let generator = try TokenGenerator(model: lm, settings: sampling.settings, cache: lm.makeCache(capacity: context))
        if let tokenizer { generator.stopTokens.formUnion(tokenizer.endOfGenerationTokens.filter { $0 < lm.vocabularySize }) }
        if ignoreEos { generator.stopTokens = [] }
        // Only --json keeps the ids; sized by what one context holds, not by --max-tokens
        // (10^12 must simply run, sliding the window, until interrupted or the end of text).
        var ids: [Int] = []
        if json { ids.reserveCapacity(min(maxTokens, context)) }
        var stream = tokenizer?.makeStreamingDetokenizer()
        if !json, tokenizer != nil, let text = prompt { writeOut(text) }
        let stats = try generator.generate(prompt: promptIDs, maxTokens: maxTokens) { token in
            if json {
                ids.append(token)
            } else if stream != nil {
                writeOut(stream!.append(token))
            } else {
                writeOut("\(token) ")
            }
            return true
        }
        let tail = stream?.flush() ?? ""
        if !json {
            writeOut(tail + "\n")
        }
        printError(String(format: "prompt: %d tokens, %.2f tokens/s | generation: %d tokens, %.2f tokens/s%@",
                          stats.promptTokens, stats.promptTokensPerSecond, stats.generatedTokens,
                          stats.tokensPerSecond, stats.stoppedAtEOS ? " (end of text)" : ""))
        if json {
            var object: [String: Any] = [
                "ids": ids,
                "prompt_tokens": stats.promptTokens,
                "prompt_tokens_per_s": stats.promptTokensPerSecond,
                "generated_tokens": stats.generatedTokens,
                "tokens_per_s": stats.tokensPerSecond,
                "stopped_at_eos": stats.stoppedAtEOS,
            ]
            if let tokenizer { object["text"] = tokenizer.decode(ids) }
            print(jsonLine(object))
        }
    }
}
