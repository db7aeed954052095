import Foundation
import LMTestSupport
import XCTest

/// A terminal for the real `lm` binary: a detached tmux session on a private socket, driven
/// with `send-keys` and read with `capture-pane`.
final class Terminal {
    let socket: String
    private static let tmuxPath = ["/usr/bin/tmux", "/bin/tmux", "/usr/local/bin/tmux"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Starts `lm arguments…` in a 200 × 60 terminal; `environment` is added to (or, with a nil
    /// value, removed from) the command's environment. The pane prints `EXIT=<status>` when lm ends.
    init(_ arguments: [String], environment: [String: String?], in dir: String) throws {
        guard Terminal.tmuxPath != nil else {
            throw TerminalError("tmux is not installed — apt-get install tmux (make test installs it)")
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        socket = dir + "/tmux.sock"
        func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        // env takes its -u options before the NAME=VALUE assignments.
        let sorted = environment.sorted { $0.key < $1.key }
        let env = ["env"] + sorted.filter { $0.value == nil }.flatMap { ["-u", $0.key] }
            + sorted.compactMap { k, v in v.map { "\(k)=\($0)" } }
        let command = (env + [TestPaths.lmBinary] + arguments).map(quote).joined(separator: " ")
            + "; echo EXIT=$?; sleep 120"
        let r = try tmux(["new-session", "-d", "-s", "lm-chat-test", "-x", "200", "-y", "60", command])
        XCTAssertEqual(r.status, 0, r.output)
        // A watchdog in its own process group: should this test process die before deinit, the
        // server (and lm) go too, after 5 minutes.
        let tmuxCommand = ([Terminal.tmuxPath ?? "tmux", "-S", socket, "-f", "/dev/null", "kill-server"]).map(quote)
        watchdog = try Terminal.spawn(["/bin/sh", "-c", "sleep 300; exec " + tmuxCommand.joined(separator: " ")],
                                      output: "/dev/null", newGroup: true)
    }

    private var watchdog: pid_t = 0

    deinit {
        _ = try? tmux(["kill-server"])
        if watchdog > 0 {
            kill(-watchdog, SIGKILL)
            var status: Int32 = 0
            while waitpid(watchdog, &status, 0) < 0 && errno == EINTR {}
        }
    }

    /// Starts `argv` with stdin from /dev/null and stdout and stderr into `output`.
    private static func spawn(_ argv: [String], output: String, newGroup: Bool = false) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        if newGroup {
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        let cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, environ)
        guard rc == 0 else { throw TerminalError("cannot start \(argv[0]): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// Runs tmux with posix_spawn and waitpid, its output in a file: tmux forks its server
    /// from the first client, and Foundation's `Process` has hung waiting for such a client.
    @discardableResult
    func tmux(_ args: [String]) throws -> (status: Int32, output: String) {
        let out = socket + ".out"
        let pid = try Terminal.spawn([Terminal.tmuxPath ?? "/usr/bin/tmux", "-S", socket, "-f", "/dev/null"] + args, output: out)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, text)
    }

    /// Types text literally, then presses Enter.
    func enter(_ text: String) throws {
        try tmux(["send-keys", "-l", text])
        try tmux(["send-keys", "Enter"])
    }

    /// Presses keys by tmux name: Enter, C-c, Up, C-a, …
    func press(_ keys: String...) throws { try tmux(["send-keys"] + keys) }

    /// The whole pane, wrapped lines joined, trailing spaces dropped; `colours` keeps the SGR escapes.
    func screen(colours: Bool = false) throws -> String {
        let r = try tmux(["capture-pane", "-p", "-J", "-S", "-", "-E", "-"] + (colours ? ["-e"] : []))
        return r.output.split(separator: "\n", omittingEmptySubsequences: false)
            .map { String($0.reversed().drop { $0 == " " }.reversed()) }
            .joined(separator: "\n")
    }

    var lines: [String] { ((try? screen()) ?? "").split(separator: "\n").map(String.init) }

    /// Polls the screen until `condition` holds; fails with the screen after `timeout` seconds.
    @discardableResult
    func wait(_ what: String, timeout: Double = 30, file: StaticString = #filePath, line: UInt = #line,
              _ condition: (String) -> Bool) throws -> String {
        let end = Date().addingTimeInterval(timeout)
        while true {
            let s = try screen()
            if condition(s) { return s }
            if Date() > end {
                XCTFail("timed out waiting for \(what); the screen:\n\(s)", file: file, line: line)
                throw TerminalError("timed out waiting for \(what)")
            }
            usleep(50_000)
        }
    }

    /// Lines that are prompts (`> ` and what was typed after it).
    static func prompts(_ screen: String) -> [String] {
        screen.split(separator: "\n").map(String.init).filter { $0 == ">" || $0.hasPrefix("> ") }
    }

    /// Prompts waited for so far.
    private(set) var promptCount = 0

    /// Waits until the next prompt is on screen, waiting for input (the last line).
    func nextPrompt(file: StaticString = #filePath, line: UInt = #line) throws {
        promptCount += 1
        let n = promptCount
        try wait("prompt \(n)", file: file, line: line) { s in
            Terminal.prompts(s).count >= n && s.split(separator: "\n").last.map(String.init) == ">"
        }
    }

    /// Types `text`, presses Enter, waits for the next prompt and returns what was printed
    /// in between (a reply or a command's output).
    @discardableResult
    func submit(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        try enter(text)
        try nextPrompt(file: file, line: line)
        return reply(after: text)
    }

    /// The reply printed after the last prompt line equal to `"> " + input`, up to the next
    /// prompt, without the session's notes (stderr shares the screen).
    func reply(after input: String) -> String { reply(afterLine: "> " + input) }

    /// The reply printed after the last screen line equal to `line`, up to the next prompt.
    func reply(afterLine line: String) -> String {
        let ls = lines
        guard let i = ls.lastIndex(of: line) else { return "" }
        var out: [String] = []
        for l in ls[(i + 1)...] {
            if l == ">" || l.hasPrefix("> ") { break }
            if !l.hasPrefix("note: ") { out.append(l) }
        }
        return out.joined(separator: "\n")
    }
}

struct TerminalError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `lm chat` end to end: through a pseudo-terminal (tmux) and through pipes.
final class ChatCLITests: XCTestCase {
    var lm: String { TestPaths.lmBinary }
    var dir = ""

    override func setUpWithError() throws {
        dir = try TestPaths.temporaryDirectory("chat-cli")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func env(colour: Bool = false) -> [String: String?] {
        ["LM_HISTORY": dir + "/history", "NO_COLOR": colour ? nil : "1"]
    }

    // MARK: Terminal

    func testAReplyStreamsInColourAndCtrlCStopsItWithoutEndingTheSession() throws {
        let t = try Terminal(["chat", "--raw", "--max-tokens", "100000", "--seed", "1"], environment: env(colour: true), in: dir)
        try t.nextPrompt()
        try t.enter("ROMEO:")
        // The reply grows on screen while it is being generated (no prompt back yet).
        try t.wait("the reply to start") { _ in t.reply(after: "ROMEO:").count >= 20 }
        let early = t.reply(after: "ROMEO:").count
        try t.wait("the reply to grow") { _ in t.reply(after: "ROMEO:").count >= early + 40 }
        XCTAssertEqual(Terminal.prompts(try t.screen()).count, 1, "still generating")
        XCTAssertTrue(try t.screen(colours: true).contains("\u{1B}[36m"), "the reply is coloured")

        try t.press("C-c")
        try t.nextPrompt()
        XCTAssertTrue(try t.screen().contains("(stopped)"))
        // Ctrl-C at the prompt drops the typed line.
        try t.tmux(["send-keys", "-l", "garbage"])
        try t.wait("the typed text") { $0.contains("> garbage") }
        try t.press("C-c")
        try t.nextPrompt()
        XCTAssertEqual(try t.submit("/set max_tokens 20"), "max_tokens = 20")
        XCTAssertFalse(try t.submit("JULIET:").isEmpty, "the next prompt gets a reply")
        try t.enter("/quit")
        try t.wait("lm to exit") { $0.contains("EXIT=0") }
    }

    func testSetRegenUndoInATerminal() throws {
        let t = try Terminal(["chat", "--seed", "1", "--max-tokens", "30"], environment: env(), in: dir)
        try t.nextPrompt()
        XCTAssertEqual(try t.submit("/set temperature 0"), "temperature = 0.0")
        let first = try t.submit("ROMEO:")
        XCTAssertFalse(first.isEmpty)
        // Greedy: the same context gives the same reply again.
        XCTAssertEqual(try t.submit("/regen"), first)
        XCTAssertEqual(try t.submit("/undo"), "dropped the last turn: \"ROMEO:\"")
        XCTAssertTrue(try t.submit("/stats").contains("context: 0 of 64 positions used"))
        XCTAssertEqual(try t.submit("ROMEO:"), first, "after /undo the context is empty again")
        // Multi-line turns: a trailing backslash, and a """ block; "... " prompts the next line.
        try t.enter("KING:\\")
        try t.wait("a continuation prompt") { _ in t.lines.last == "..." }
        try t.submit("Speak.")
        XCTAssertTrue(t.lines.contains("... Speak."))
        try t.enter("\"\"\"")
        try t.wait("a continuation prompt") { _ in t.lines.last == "..." }
        try t.enter("QUEEN:")
        try t.submit("Nay.\"\"\"")
        XCTAssertFalse(t.reply(afterLine: "... Nay.\"\"\"").isEmpty, "the block got a reply")
        XCTAssertTrue(try t.submit("/stats").contains("session: 3 turns"))
        XCTAssertFalse(try t.screen(colours: true).contains("\u{1B}[36m"), "NO_COLOR: no colours")
        try t.enter("/quit")
        try t.wait("lm to exit") { $0.contains("EXIT=0") }
    }

    func testTwoSessionsAtOnceBothKeepTheirLinesInTheHistoryFile() throws {
        let a = try Terminal(["chat"], environment: env(), in: dir + "/a")
        let b = try Terminal(["chat"], environment: env(), in: dir + "/b")
        try a.nextPrompt()
        try b.nextPrompt()
        XCTAssertFalse(try a.submit("/show").isEmpty)
        XCTAssertFalse(try b.submit("/model").isEmpty)
        XCTAssertFalse(try a.submit("/stats").isEmpty)
        for t in [a, b] {
            try t.enter("/quit")
            try t.wait("lm to exit") { $0.contains("EXIT=0") }
        }
        let history = try String(contentsOfFile: dir + "/history", encoding: .utf8)
        for line in ["/show", "/model", "/stats"] {
            XCTAssertTrue(history.contains(line), "\(line) is in the history file:\n\(history)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }, [],
                       "no temporary history files are left")
    }

    func testSaveThenLoadInANewProcessContinuesTheSameContextPastTheContextLength() throws {
        let file = dir + "/session.json"
        let a = try Terminal(["chat", "--seed", "7", "--max-tokens", "40"], environment: env(), in: dir + "/a")
        try a.nextPrompt()
        for line in ["ROMEO:", "What news?", "Speak again."] {
            XCTAssertFalse(try a.submit(line).isEmpty, "a reply to \(line)")
        }
        XCTAssertTrue(try a.submit("/save \(file)").contains("saved 3 turns"))
        let expected = try a.submit("JULIET:")
        XCTAssertFalse(expected.isEmpty)
        XCTAssertEqual(try a.screen().components(separatedBy: "the context (64 tokens) is full").count - 1, 1,
                       "a session longer than the context says so once and keeps answering")
        try a.enter("/quit")
        try a.wait("lm to exit") { $0.contains("EXIT=0") }

        // A new process with another seed: /load restores the context, the settings and the
        // random state; the history file brings back the last session's lines (arrow up).
        let b = try Terminal(["chat", "--seed", "99"], environment: env(), in: dir + "/b")
        try b.nextPrompt()
        XCTAssertTrue(try b.submit("/load \(file)").contains("loaded 3 turns"))
        try b.press("Up", "Up", "Up")  // /load, /quit, JULIET:
        try b.wait("the history") { _ in b.lines.last == "> JULIET:" }
        try b.press("Enter")
        try b.nextPrompt()
        XCTAssertEqual(b.reply(after: "JULIET:"), expected)
        try b.press("C-d")
        try b.wait("lm to exit") { $0.contains("EXIT=0") }
    }

    // MARK: Pipes

    /// `lm chat` with stdin and stdout on pipes (NO_COLOR empty counts as unset).
    func chat(_ args: [String], _ stdin: String) throws -> ProcessResult {
        try runProcess(lm, ["chat"] + args, stdin: stdin, environment: ["NO_COLOR": ""])
    }

    func jsonLines(_ r: ProcessResult) throws -> [[String: Any]] {
        try r.stdout.split(separator: "\n").map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], String($0))
        }
    }

    func testPipeModePrintsEachReplyAndExitsZero() throws {
        let r = try chat(["--seed", "1"], "hello\nhow are you\n")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(r.stderr.contains("error"), r.stderr)
        XCTAssertFalse(r.stdout.contains("\u{1B}") || r.stderr.contains("\u{1B}"), "no colour when stdout is not a terminal")
        let json = try chat(["--seed", "1", "--json"], "hello\nhow are you\n")
        XCTAssertEqual(json.status, 0, json.stderr)
        let replies = try jsonLines(json)
        XCTAssertEqual(replies.count, 2)
        let texts = replies.compactMap { $0["reply"] as? String }
        XCTAssertEqual(texts.count, 2)
        XCTAssertTrue(texts.allSatisfy { !$0.isEmpty })
        XCTAssertEqual(r.stdout, texts.map { $0 + "\n" }.joined(), "two replies, each ending with a newline")
        for reply in replies {
            XCTAssertGreaterThan(try XCTUnwrap(reply["prompt_tokens"] as? Int), 0)
            XCTAssertNotNil(reply["first_token_ms"] as? Double)
        }
    }

    func testPipeModeHelpListsEveryCommand() throws {
        let r = try chat([], "/help\n")
        XCTAssertEqual(r.status, 0, r.stderr)
        for command in ["/help", "/set", "/show", "/reset", "/undo", "/regen", "/save", "/load", "/stats", "/model", "/quit"] {
            XCTAssertTrue(r.stdout.contains(command), "\(command) in:\n\(r.stdout)")
        }
        for name in ["temperature", "top_k", "top_p", "min_p", "repeat_penalty", "max_tokens", "seed"] {
            XCTAssertTrue(r.stdout.contains(name), name)
        }
    }

    func testBadInputGetsAMessageAndTheSessionGoesOn() throws {
        let corrupt = dir + "/corrupt.json"
        try "{\"format\": \"swift-lm-chat\", \"tokens\": [1, 2".write(toFile: corrupt, atomically: true, encoding: .utf8)
        let input = ["/frobnicate", "/set temperature hot", "/set top_p 7", "/set", "/load \(dir)/missing.json",
                     "/load \(corrupt)", "/load \(dir)", "/save \(dir)/no/such/s.json", "/undo", "/regen", "snow ☃", "ROMEO:", "/show"].joined(separator: "\n") + "\n"
        let r = try chat(["--seed", "2", "--max-tokens", "20", "--json"], input)
        // Every line was handled; the status says that 11 of them failed (a script must notice).
        XCTAssertEqual(r.status, 1, r.stderr)
        let err = r.stderr
        XCTAssertTrue(err.contains("11 of the piped lines failed"), err)
        XCTAssertTrue(err.contains("unknown command '/frobnicate'"), err)
        for command in ["/help", "/set", "/show", "/reset", "/undo", "/regen", "/save", "/load", "/stats", "/model", "/quit"] {
            XCTAssertTrue(err.contains(command), "the hint lists \(command)")
        }
        XCTAssertTrue(err.contains("temperature: 'hot' is not a number"), err)
        XCTAssertTrue(err.contains("top_p 7.0 is out of range"), err)
        XCTAssertTrue(err.contains("usage: /set NAME VALUE"), err)
        XCTAssertTrue(err.contains("no such file '\(dir)/missing.json'"), err)
        XCTAssertTrue(err.contains("is not a swift-lm chat session"), err)
        XCTAssertTrue(err.contains("'\(dir)' is a folder"), err)
        XCTAssertTrue(err.contains("the folder '\(dir)/no/such/' does not exist"), err)
        XCTAssertTrue(err.contains("nothing to undo"), err)
        XCTAssertTrue(err.contains("no reply to sample again"), err)
        XCTAssertTrue(err.contains("is not in this model's"), err)
        XCTAssertEqual(try jsonLines(r).count, 1, "the session went on and answered ROMEO:")
        XCTAssertTrue(err.contains("temperature 0.8"), "the bad values changed nothing:\n\(err)")
    }

    func testMultiLineInputAndSettingsAreSavedAsJSON() throws {
        let file = dir + "/multi.json"
        let input = "ROMEO:\\\nO my love\n\"\"\"\nJULIET:\nAh me\n\"\"\"\n/set top_k 7\n/save \(file)\n"
        let r = try chat(["--seed", "3", "--max-tokens", "10", "--json", "--system", "KING:"], input)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try jsonLines(r).count, 2)
        let saved = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any])
        let turns = try XCTUnwrap(saved["turns"] as? [[String: Any]])
        XCTAssertEqual(turns.compactMap { $0["user"] as? String }, ["ROMEO:\nO my love", "JULIET:\nAh me"])
        let settings = try XCTUnwrap(saved["settings"] as? [String: Any])
        XCTAssertEqual(settings["system"] as? String, "KING:")
        XCTAssertEqual((settings["sampler"] as? [String: Any])?["top_k"] as? Int, 7)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/multi.kv.safetensors"))
    }

    func testAModelWithoutATokenizerIsRefused() throws {
        let r = try chat(["--model", TestPaths.model("gpt2-tiny")], "hello\n")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("has no tokenizer"), r.stderr)
    }
}
