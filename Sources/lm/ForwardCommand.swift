import ArgumentParser
import LMCore
import LMModels

struct ForwardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Run one full forward pass and save the logits of every position.",
        discussion: reflow("""
        Writes a safetensors file with one float32 tensor named "logits" of shape [T, V], for
        parity checks against PyTorch or any other runtime.

        Example:
          lm forward --model models/gpt2-tiny --ids 440,12,7 --out logits.safetensors
        """)
    )

    @Option(help: "Model folder (config.json + model.safetensors).")
    var model: String
    @Option(help: "Input token ids, comma-separated.")
    var ids: String
    @Option(help: "Output .safetensors file.")
    var out: String
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        let pool = threads.apply()
        let tokens = try parseIDs(ids, flag: "--ids")
        let lm = try ModelRegistry.loadCausalLM(folder: model, pool: pool)
        let cache = lm.makeCache()
        let logits = try lm.forward(tokens: tokens, cache: cache, allLogits: true)
        let tensor = try Tensor(shape: [tokens.count, lm.vocabularySize], values: logits)
        try SafeTensorsWriter.write([("logits", tensor)], to: out)
        printError("wrote logits [\(tokens.count), \(lm.vocabularySize)] to \(out)")
    }
}
