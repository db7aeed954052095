import ArgumentParser
import Foundation
import LMCore
import LMGeneration
import LMModels
import LMTokenizers

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Talk with a model: a REPL that keeps the KV cache between turns.",
        discussion: reflow("""
        Each line you type is a turn: it starts a new paragraph of the text (an
        empty line before it) and ends with a newline; the model continues. A
        reply stops once it has written some text and then an empty line, at
        the end-of-text token, or after --max-tokens tokens. --raw appends your
        text exactly as typed and stops only at --max-tokens or end of text.
        Only a turn's new text runs through the model; when the context is full,
        the oldest text is dropped, the newest half is encoded again (said once)
        and the session goes on; --system text stays in place if it takes at
        most half the context.

        In a terminal: line editing (arrows, Ctrl-A/E, …; history kept in
        ~/.lm_history or $LM_HISTORY), replies in colour (none with NO_COLOR),
        Ctrl-C stops a reply, Ctrl-D or /quit ends the session. A trailing \\
        continues a line; the lines between two lines of \"\"\" are one turn.
        /help lists the commands: /set, /show, /reset, /undo, /regen, /save,
        /load, /stats, /model, /quit.

        With stdin from a pipe, each line is a turn, each reply is printed on
        stdout ending with a newline (--json: one JSON object per reply), and
        lm exits 0 at the end of the input.

        Examples:
          lm chat
          lm chat --model ~/.cache/swift-lm/gemma-3-270m-q4_k_m.gguf
          lm chat --system "ROMEO:" --temperature 0.7 --seed 1
          printf 'hello\\nhow are you\\n' | lm chat --seed 1
        """)
    )

    @Option(help: "Model folder with a tokenizer, or a .gguf file. Default: the bundled model.")
    var model: String?
    @Option(name: [.customShort("c"), .customLong("ctx-size")], help: "Context size in tokens (default: the model's, at most \(defaultContextSize)).")
    var ctxSize: Int?
    @Option(help: "Text put once at the start of the context.")
    var system: String?
    @Flag(help: "Pure continuation: no turn format, no empty-line stop.")
    var raw = false
    @Option(help: "Most tokens in one reply.")
    var maxTokens: Int = ChatSettings().maxTokens
    @Flag(help: "Print each reply as one JSON object (reply, stop, tokens, timings).")
    var json = false
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if maxTokens < 1 || maxTokens > ChatSettings.maxTokensLimit {
            throw LMError(.invalidArgument, "--max-tokens \(maxTokens) is out of range: use 1...\(ChatSettings.maxTokensLimit)")
        }
    }

    func run() throws {
        let pool = threads.apply()
        let folder = try model ?? BundledModels.path(BundledModels.defaultGenerator)
        let loaded = try LoadedModel.load(folder, pool: pool)
        let lm = loaded.model
        let tokenizer = try loaded.requireTokenizer("text")
        let context = try contextSize(ctxSize, model: lm)
        var settings = ChatSettings()
        settings.sampler = sampling.settings
        settings.maxTokens = maxTokens
        settings.system = system
        settings.raw = raw
        let session = try ChatSession(model: lm, tokenizer: tokenizer, settings: settings, contextSize: context)
        let interactive = isatty(STDIN_FILENO) == 1
        let env = ProcessInfo.processInfo.environment
        let colour = isatty(STDOUT_FILENO) == 1 && (env["NO_COLOR"] ?? "").isEmpty
        let source: LineSource
        if interactive, let editor = LineEditor(historyPath: LineEditor.defaultHistoryPath,
                                                output: isatty(STDOUT_FILENO) == 1 ? stdout : stderr) {
            source = editor
        } else {
            source = PipeLineSource()
        }
        let repl = ChatREPL(session: session, modelPath: folder, input: source,
                            interactive: interactive, colour: colour, json: json)
        repl.run()
        if !interactive && repl.failures > 0 {
            throw LMError(.invalidInput, "\(repl.failures) of the piped lines failed (see the errors above)")
        }
    }
}
