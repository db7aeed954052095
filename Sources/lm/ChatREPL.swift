import Foundation
import LMCore
import LMGeneration
import LMModels
import LMTokenizers

/// The loop of `lm chat`: reads turns and commands, streams replies, reports problems and
/// carries on. Terminal or pipe, the same code; only the prompt, the colours and Ctrl-C differ.
final class ChatREPL {
    let session: ChatSession
    let modelPath: String
    let input: LineSource
    let interactive: Bool
    let colour: Bool
    let json: Bool
    private var shiftAnnounced = false
    /// Lines that failed (errors, not notes): piped input ends with a non-zero status if any did.
    private(set) var failures = 0

    /// Every command, with its arguments and what it does (the `/help` list).
    static let commands: [(String, String)] = [
        ("/help", "this list"),
        ("/set NAME VALUE", "change a setting: " + ChatSettings.settableNames.joined(separator: ", ")),
        ("/show", "the settings"),
        ("/reset", "clear the conversation (the system text stays)"),
        ("/undo", "drop the last turn and its reply"),
        ("/regen", "sample the last reply again"),
        ("/save FILE", "save the transcript and settings as JSON, and the KV cache beside it (.kv.safetensors)"),
        ("/load FILE", "resume a saved session"),
        ("/stats", "speed of the last reply, time to first token, context used"),
        ("/model", "what is loaded"),
        ("/quit", "end the session (also /exit, Ctrl-D)"),
    ]

    static var commandNames: String {
        commands.map { String($0.0.split(separator: " ")[0]) }.joined(separator: " ")
    }

    init(session: ChatSession, modelPath: String, input: LineSource, interactive: Bool, colour: Bool, json: Bool) {
        self.session = session
        self.modelPath = modelPath
        self.input = input
        self.interactive = interactive
        self.colour = colour
        self.json = json
    }

    // MARK: Output

    private func style(_ code: String, _ text: String) -> String {
        colour ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
    }

    /// Command output: stdout (stderr with --json, which keeps stdout for replies).
    private func say(_ text: String) {
        if json { printError(text) } else { writeOut(text + "\n") }
    }

    /// A line that failed: reported, counted, and the session goes on.
    private func fail(_ text: String) {
        failures += 1
        complain(text.hasPrefix("error:") ? text : "error: " + text)
    }

    /// A problem: the session goes on.
    private func complain(_ text: String) {
        let stderrColour = colour && isatty(STDERR_FILENO) == 1
        printError(stderrColour ? "\u{1B}[33m\(text)\u{1B}[0m" : text)
    }

    private var prompt: String {
        guard interactive else { return "" }
        let e = LineEditor.promptEscape
        return colour ? "\(e)\u{1B}[1;32m\(e)>\(e)\u{1B}[0m\(e) " : "> "
    }

    private var continuationPrompt: String { interactive ? "... " : "" }

    // MARK: Loop

    func run() {
        if interactive {
            ChatInterrupt.install(restartingReads: true)
            let m = session.model
            say(style("2", "lm chat — \(modelName) (\(m.modelType), \(formatParameters(m.parameterCount)) parameters, context \(session.cache.capacity)). /help lists the commands; Ctrl-D quits."))
        }
        while true {
            switch readEntry() {
            case .end:
                if interactive { writeOut("\n") }
                return
            case .interrupted:
                writeOut("^C\n")
            case .unreadable(let problem):
                fail("error: \(problem) — the line is skipped")
            case .line(let text):
                if !handle(text) { return }
            }
        }
    }

    /// One turn's text: a line, a line continued by trailing backslashes, or a `"""` block.
    func readEntry() -> InputRead {
        let first = input.read(prompt: prompt)
        guard case .line(let line) = first else { return first }
        input.remember(line)
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("\"\"\"") {
            var rest = String(trimmed.dropFirst(3))
            if rest.count >= 3 && rest.hasSuffix("\"\"\"") { return .line(String(rest.dropLast(3))) }
            var lines: [String] = rest.isEmpty ? [] : [rest]
            while true {
                switch input.read(prompt: continuationPrompt) {
                case .interrupted: return .interrupted
                case .unreadable(let problem): return .unreadable(problem)
                case .end: return .line(lines.joined(separator: "\n"))
                case .line(let next):
                    input.remember(next)
                    if next.trimmingCharacters(in: .whitespaces).hasSuffix("\"\"\"") {
                        rest = next.trimmingCharacters(in: .whitespaces)
                        let body = next[..<(next.range(of: "\"\"\"", options: .backwards)?.lowerBound ?? next.endIndex)]
                        if !body.isEmpty { lines.append(String(body)) }
                        return .line(lines.joined(separator: "\n"))
                    }
                    lines.append(next)
                }
            }
        }
        var text = line
        while text.hasSuffix("\\") {
            text.removeLast()
            switch input.read(prompt: continuationPrompt) {
            case .interrupted: return .interrupted
            case .unreadable(let problem): return .unreadable(problem)
            case .end: return .line(text)
            case .line(let next):
                input.remember(next)
                text += "\n" + next
            }
        }
        return .line(text)
    }

    /// Runs a command or a turn; false when the session ends.
    func handle(_ text: String) -> Bool {
        if text.hasPrefix("/") && !text.hasPrefix("//") {
            return command(text)
        }
        let turnText = text.hasPrefix("//") ? String(text.dropFirst()) : text
        if turnText.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return true }
        reply { onText, isInterrupted in
            try session.respond(to: turnText, isInterrupted: isInterrupted, onText: onText)
        }
        return true
    }

    /// Streams one reply (a turn or /regen) and reports its end.
    private func reply(_ run: (_ onText: (String) -> Void, _ isInterrupted: () -> Bool) throws -> ChatTurn) {
        ChatInterrupt.clear()
        let stream = !json
        if stream && colour { writeOut("\u{1B}[36m") }
        var wrote = false
        do {
            let turn = try run({ text in
                if stream { writeOut(text); wrote = true }
            }, { ChatInterrupt.isSet })
            if stream {
                writeOut((colour ? "\u{1B}[0m" : "") + "\n")
                if turn.stop == .interrupted && interactive { writeOut(style("2", "(stopped)") + "\n") }
            } else {
                print(jsonLine(replyJSON(turn)))
                StandardOutput.flush()
            }
            if let stats = session.lastStats, stats.contextShifts > 0, !shiftAnnounced {
                shiftAnnounced = true
                complain(session.model.canShiftCache
                    ? "note: the context (\(session.cache.capacity) tokens) is full — older text is dropped and the cached keys of the newer half moved (nothing encoded again); the session goes on"
                    : "note: the context (\(session.cache.capacity) tokens) is full — older text is dropped and the newest half encoded again; the session goes on")
            }
        } catch {
            if stream && colour { writeOut("\u{1B}[0m") }
            if stream && wrote { writeOut("\n") }
            fail("error: \(message(error))")
        }
    }

    private func replyJSON(_ turn: ChatTurn) -> [String: Any] {
        let s = session.lastStats ?? ChatTurnStats()
        return [
            "reply": turn.shown,
            "stop": turn.stop.rawValue,
            "prompt_tokens": s.promptTokens,
            "generated_tokens": s.generatedTokens,
            "first_token_ms": s.firstTokenSeconds * 1000,
            "prompt_tokens_per_s": s.promptTokensPerSecond,
            "tokens_per_s": s.tokensPerSecond,
            "closing_tokens": s.closingTokens,
            "closing_ms": s.closingSeconds * 1000,
            "context_used": session.cache.length,
            "context_shifts": s.contextShifts,
        ]
    }

    private func message(_ error: Error) -> String {
        (error as? LMError)?.message ?? "\(error)"
    }

    // MARK: Commands

    /// Runs a `/command`; false when the session ends.
    func command(_ line: String) -> Bool {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        let name = String(trimmed.prefix { $0 != " " && $0 != "\t" }).lowercased()
        let rest = trimmed.dropFirst(name.count).trimmingCharacters(in: .whitespaces)
        if !rest.isEmpty, let usage = Self.commands.first(where: { $0.0 == name }), !usage.0.contains(" ") {
            fail(name == "/model"
                 ? "/model shows what is loaded — to chat with '\(rest)', end this session and run lm chat --model \(rest)"
                 : "\(name) takes no arguments (\(usage.1))")
            return true
        }
        do {
            switch name {
            case "/help", "/?":
                help()
            case "/quit", "/exit", "/q":
                return false
            case "/set":
                let parts = rest.split(maxSplits: 1, whereSeparator: { $0 == " " || $0 == "=" }).map(String.init)
                guard parts.count == 2 else {
                    fail("usage: /set NAME VALUE, with NAME one of \(ChatSettings.settableNames.joined(separator: ", ")) — e.g. /set temperature 0.7")
                    return true
                }
                try session.set(parts[0], parts[1])
                let key = parts[0].lowercased().replacingOccurrences(of: "-", with: "_")
                let shown = session.settings.listed.first { $0.0 == key || (key == "temp" && $0.0 == "temperature") }
                say("\(shown?.0 ?? key) = \(shown?.1 ?? parts[1])")
            case "/show":
                show()
            case "/reset":
                try session.reset()
                say("the conversation is cleared\(session.settings.system == nil ? "" : " (the system text stays)")")
            case "/undo":
                if let turn = try session.undo() {
                    say("dropped the last turn: \(abbreviate(turn.user))")
                } else {
                    fail("nothing to undo — the conversation is empty")
                }
            case "/regen":
                if session.turns.isEmpty {
                    fail("there is no reply to sample again — say something first")
                } else {
                    reply { onText, isInterrupted in
                        try session.regenerate(isInterrupted: isInterrupted, onText: onText)
                    }
                }
            case "/save":
                guard !rest.isEmpty else { fail("usage: /save FILE — e.g. /save chat.json"); return true }
                let path = expandTilde(rest)
                try session.save(to: path, modelPath: modelPath)
                say("saved \(turnCount) to \(path) (KV cache: \(ChatSession.cacheFilePath(for: path)))")
            case "/load":
                guard !rest.isEmpty else { fail("usage: /load FILE — a file written by /save"); return true }
                let path = expandTilde(rest)
                let notes = try session.load(from: path)
                for note in notes { complain("note: \(note)") }
                shiftAnnounced = false
                say("loaded \(turnCount) from \(path) (\(session.cache.length) of \(session.cache.capacity) context positions)")
                if let last = session.turns.last, interactive {
                    say(style("2", "last reply: \(abbreviate(last.shown))"))
                }
            case "/stats":
                stats()
            case "/model":
                modelInfo()
            default:
                fail("unknown command '\(name)' — commands: \(Self.commandNames) (/help explains them; start a line with // to send a '/')")
            }
        } catch {
            fail("error: \(message(error))")
        }
        return true
    }

    private func help() {
        var lines = [
            "Type text and press Enter: it is added to the conversation and the model replies.",
            "A line ending with \\ continues on the next line; text between two lines of \"\"\" is one turn.",
            "Commands (start a line with // to send text beginning with /):",
        ]
        let width = Self.commands.map { $0.0.count }.max() ?? 0
        for (name, what) in Self.commands {
            lines.append("  " + name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + what)
        }
        lines.append("Ctrl-C stops a reply (at the prompt it clears the line); Ctrl-D ends the session.")
        say(lines.joined(separator: "\n"))
    }

    private func show() {
        let s = session.settings
        var lines = s.listed.map { "\($0.0) \($0.1)" }
        lines.append("system \(s.system.map { "\"\($0)\"" } ?? "(none)")")
        lines.append("format \(s.raw ? "raw (text as typed; replies stop at max_tokens or end of text)" : "paragraphs (a reply stops at an empty line, end of text or max_tokens)")")
        say(lines.joined(separator: "\n"))
    }

    private func stats() {
        let c = session.cache
        var lines: [String] = []
        if let s = session.lastStats {
            lines.append("last reply: prompt \(count(s.promptTokens, "token")), " + String(format: "%.1f tokens/s; first token after %.1f ms; ", s.promptTokensPerSecond, s.firstTokenSeconds * 1000)
                + "generation \(count(s.generatedTokens, "token")), " + String(format: "%.1f tokens/s; ", s.tokensPerSecond)
                + "then \(count(s.closingTokens, "token")) " + String(format: "in %.1f ms", s.closingSeconds * 1000) + " to close it")
            if s.contextShifts > 0 {
                lines.append("  \(count(s.contextShifts, "context shift")); \(count(s.reencodedTokens, "token")) of older text encoded again")
            }
        } else {
            lines.append("last reply: none yet")
        }
        let t = session.totals
        lines.append("session: \(count(session.turns.count, "turn")); prompt \(count(t.promptTokens, "token")), "
            + String(format: "%.1f tokens/s; ", t.promptTokensPerSecond)
            + "generation \(count(t.generatedTokens, "token")), " + String(format: "%.1f tokens/s; ", t.tokensPerSecond)
            + count(t.contextShifts, "context shift"))
        lines.append("context: \(c.length) of \(c.capacity) positions used; the conversation has \(count(session.tokens.count, "token"))")
        say(lines.joined(separator: "\n"))
    }

    /// "1 turn", "3 turns".
    private func count(_ n: Int, _ noun: String) -> String { n == 1 ? "1 \(noun)" : "\(n) \(noun)s" }

    private var turnCount: String { count(session.turns.count, "turn") }

    private var modelName: String { (modelPath as NSString).lastPathComponent }

    private func modelInfo() {
        let m = session.model
        say("""
            model: \(modelPath) (\(m.modelType), \(formatParameters(m.parameterCount)) parameters, \(session.cache.layers) layers, context \(session.cache.capacity) of \(m.contextLength), vocabulary \(m.vocabularySize))
            weights: \(m.weightTypes.sorted { $0.value > $1.value }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")), \(String(format: "%.1f", Double(m.weightBytes) / 1_048_576)) MiB; KV cache \(String(format: "%.1f", Double(session.cache.bytes) / 1_048_576)) MiB
            tokenizer: \(session.tokenizer.summary)
            """)
    }

    private func formatParameters(_ n: Int) -> String {
        n >= 1_000_000_000 ? String(format: "%.2f B", Double(n) / 1e9)
            : n >= 100_000 ? String(format: "%.2f M", Double(n) / 1e6) : String(format: "%.1f K", Double(n) / 1e3)
    }

    private func abbreviate(_ text: String) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return flat.count > 60 ? "\"" + flat.prefix(57) + "...\"" : "\"\(flat)\""
    }

    private func expandTilde(_ path: String) -> String {
        guard path.hasPrefix("~/"), let home = ProcessInfo.processInfo.environment["HOME"] else { return path }
        return home + path.dropFirst(1)
    }
}
