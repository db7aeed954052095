import ArgumentParser
import Foundation
import LMCore

/// `lm`: the swift-lm command-line tool. Each subcommand lives in its own file and only parses
/// arguments and calls the libraries.
@main
struct LM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lm",
        abstract: "Run, train and quantize transformer language models on the CPU.",
        discussion: reflow("""
        Examples:
          lm generate --prompt "ROMEO:" --max-tokens 100
          lm chat --model gemma-3-270m-q4_k_m.gguf
          lm forward --model DIR --ids 1,2,3 --out logits.safetensors
          lm inspect gemma-3-270m-q4_k_m.gguf
          lm bench --random gpt2-124m
          lm tokenize --tokenizer DIR "Hello world"
          lm train --corpus input.txt --tokenizer char --preset shakespeare-cpu --out runs/shakespeare
          lm classify "what a wonderful film"
          lm embed --model ../shared/models/minilm-l6-v2 "A cat sits on the mat."
        """),
        version: "0.1.0",
        subcommands: [
            GenerateCommand.self,
            ChatCommand.self,
            ForwardCommand.self,
            BenchCommand.self,
            TrainCommand.self,
            FinetuneCommand.self,
            QuantizeCommand.self,
            EvalCommand.self,
            InspectCommand.self,
            EmbedCommand.self,
            ClassifyCommand.self,
            TokenizeCommand.self,
            TokenizerCommand.self,
        ]
    )

    static func main() {
        // A write past a file-size limit must fail with an error (reported, the previous
        // checkpoint kept), not kill the process.
        signal(SIGXFSZ, SIG_IGN)
        if let isa = ProcessInfo.processInfo.environment["LM_KERNELS"] {
            do { try setKernelISA(isa) } catch {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                Foundation.exit(2)
            }
        }
        main(nil)
    }
}
