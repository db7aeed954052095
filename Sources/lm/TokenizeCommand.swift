import ArgumentParser

// Placeholder until the tokenizer layer lands.
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize", abstract: "Turn text into token ids.")
}

struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenizer", abstract: "Train tokenizers.")
}
