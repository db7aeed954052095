import ArgumentParser
import LMCore
import LMModels

struct ForwardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Run one full forward pass and save the logits of every position.",
        discussion: reflow("""
        Writes a safetensors file with one float32 tensor named "logits" of shape [T, V], for
        parity checks against PyTorch or any other runtime. --batch 1 runs the tokens one at a
        time through the KV cache (as decoding does) instead of as one batch.

        Examples:
          lm forward --model models/gpt2-tiny --ids 440,12,7 --out logits.safetensors
          lm forward --model gemma-3-270m-q4_k_m.gguf --ids 2,818,5279,529,7001,563 --batch 1 --out decode.safetensors
        """)
    )

    @Option(help: "Model folder (config.json + model.safetensors) or .gguf file.")
    var model: String
    @Option(help: "Input token ids, comma-separated.")
    var ids: String
    @Option(help: "Output .safetensors file.")
    var out: String
    @Option(help: "Tokens per forward call (default: all at once; 1 = token by token).")
    var batch: Int?
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if let batch, batch < 1 { throw LMError(.invalidArgument, "--batch \(batch) must be ≥ 1") }
        if FileIO.isDirectory(out) {
            throw LMError(.invalidArgument, "--out '\(out)' is a folder — give a file name, e.g. \(out)/logits.safetensors")
        }
    }

    func run() throws {
        let pool = threads.apply()
        let tokens = try parseIDs(ids, flag: "--ids")
        let lm = try ModelRegistry.loadCausalLM(path: model, pool: pool)
        guard tokens.count <= lm.contextLength else {
            throw LMError(.invalidInput, "\(tokens.count) ids exceed the model's context of \(lm.contextLength)")
        }
        let cache = lm.makeCache(capacity: tokens.count)
        let V = lm.vocabularySize
        let tensor = Tensor(zeros: [tokens.count, V])
        let step = batch ?? tokens.count
        var done = 0
        while done < tokens.count {
            let chunk = Array(tokens[done..<min(tokens.count, done + step)])
            let logits = try lm.forward(tokens: chunk, cache: cache, allLogits: true)
            logits.withUnsafeBufferPointer { (tensor.data + done * V).update(from: $0.baseAddress!, count: $0.count) }
            done += chunk.count
        }
        try SafeTensorsWriter.write([("logits", tensor)], to: out)
        printError("wrote logits [\(tokens.count), \(V)] to \(out)")
    }
}
