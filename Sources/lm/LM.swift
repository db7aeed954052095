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
        version: versionText,
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

    /// `lm --version`: the version and the system info (CPU, features, kernels, BLAS core).
    static var versionText: String {
        (["lm 0.1.0"] + SystemInfo.lines).joined(separator: "\n")
    }

    static func main() {
        // A write past a file-size limit must fail with an error (reported, the previous
        // checkpoint kept), not kill the process; a closed stdout pipe is an EPIPE that
        // StandardOutput turns into a quiet exit.
        signal(SIGXFSZ, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        if let isa = ProcessInfo.processInfo.environment["LM_KERNELS"] {
            do { try setKernelISA(isa) } catch {
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
                Foundation.exit(2)
            }
        }
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            // Swift repairs invalid UTF-8 in arguments with U+FFFD; every command refuses it instead.
            try UTF8Text.validateArguments()
            try checkHelpTopic(arguments)
            var command = try parseWithNegativeValues(arguments)
            try command.run()
        } catch {
            report(error)
        }
        StandardOutput.flush()
    }

    /// Help and --version go to stdout through the checked writer (a full disk or a closed
    /// pipe is noticed there too); an error is its one line on stderr — ArgumentParser's usage
    /// block after it is left out: `lm CMD --help` has it.
    static func report(_ error: Error) -> Never {
        let code = exitCode(for: error)
        let text = fullMessage(for: error)
        if code == .success {
            if !text.isEmpty { print(text) }
            StandardOutput.flush()
            Foundation.exit(0)
        }
        StandardOutput.flush()
        let first = text.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? "\(error)"
        printError(first.hasPrefix("Error:") || first.hasPrefix("error:") ? first : "Error: " + first)
        Foundation.exit(code.rawValue)
    }

    /// Parses `arguments`, reading a negative number after an option as its value
    /// (`--temperature -1` is `--temperature=-1`, `-c -1` is `-c=-1`, which ArgumentParser would otherwise take for
    /// an unknown flag and answer "Missing value"), so range checks can name the valid range.
    /// When that reading fails but the literal one parses (a negative number that is a TEXT
    /// after a flag), the literal one is used.
    static func parseWithNegativeValues(_ arguments: [String]) throws -> ParsableCommand {
        var joined: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" { joined += arguments[i...]; break }
            if a.hasPrefix("-"), a.count > 1, !isNegativeNumber(a), !a.contains("="), i + 1 < arguments.count,
               isNegativeNumber(arguments[i + 1]) {
                joined.append(a + "=" + arguments[i + 1])
                i += 2
            } else {
                joined.append(a)
                i += 1
            }
        }
        if joined == arguments { return try parseAsRoot(arguments) }
        do { return try parseAsRoot(joined) } catch {
            if let literal = try? parseAsRoot(arguments) { return literal }
            throw error
        }
    }

    static func isNegativeNumber(_ s: String) -> Bool {
        s.count > 1 && s.hasPrefix("-") && Double(s.dropFirst()) != nil && s.dropFirst().first.map { $0.isNumber || $0 == "." } == true
    }

    /// `lm help NAME…` for a command that does not exist is an error (ArgumentParser would print
    /// the top-level help and exit 0).
    static func checkHelpTopic(_ arguments: [String]) throws {
        guard arguments.first == "help", arguments.count > 1 else { return }
        var command: ParsableCommand.Type = LM.self
        for name in arguments.dropFirst() where !name.hasPrefix("-") {
            let subcommands = command.configuration.subcommands
            let parent = command == LM.self ? "lm" : "lm " + (command.configuration.commandName ?? "")
            if subcommands.isEmpty {
                throw LMError(.invalidArgument, "'\(parent)' has no subcommand '\(name)' — see 'lm help \(parent.dropFirst(3))'")
            }
            guard let next = subcommands.first(where: { $0.configuration.commandName == name }) else {
                throw LMError(.invalidArgument, "'\(name)' is not a command of '\(parent)' — the commands are: \(subcommands.compactMap { $0.configuration.commandName }.joined(separator: ", "))")
            }
            command = next
        }
    }
}
