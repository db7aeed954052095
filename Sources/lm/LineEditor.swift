import CLibEdit
import Foundation
import LMCore
import Synchronization

/// One read from the user.
enum InputRead: Equatable {
    case line(String)
    /// Ctrl-C at the prompt: the line is dropped.
    case interrupted
    /// Ctrl-D on an empty line, or the end of piped input.
    case end
    /// A line that could not be read (invalid UTF-8): why.
    case unreadable(String)
}

/// Where `lm chat` reads its lines from.
protocol LineSource: AnyObject {
    func read(prompt: String) -> InputRead
    /// Remembers a line for the history (arrow up), when the source keeps one.
    func remember(_ line: String)
}

/// Lines from a pipe or a file: no prompt, no editing.
final class PipeLineSource: LineSource {
    private var reader = LineReader()

    func read(prompt: String) -> InputRead {
        do {
            guard let line = try reader.next() else { return .end }
            return .line(line)
        } catch {
            return .unreadable("\(error)")
        }
    }

    func remember(_ line: String) {}
}

/// Lines from a terminal through libedit: emacs key bindings (arrows, Ctrl-A/E, Ctrl-K, …,
/// and whatever `~/.editrc` adds), and a history kept in a file across sessions.
///
/// ```swift
/// let editor = LineEditor(historyPath: LineEditor.defaultHistoryPath)
/// if case .line(let text) = editor?.read(prompt: "> ") { print(text) }
/// ```
final class LineEditor: LineSource {
    private let el: OpaquePointer
    private let history: OpaquePointer
    private let historyPath: String?
    /// The prompt handed to libedit; it keeps the pointer until the next `read`.
    private var promptBytes: UnsafeMutablePointer<CChar>?

    /// Non-printing bytes in prompts are bracketed by this character.
    static let promptEscape: Character = "\u{1}"

    /// `$LM_HISTORY` (empty: no history file), else `~/.lm_history`.
    static var defaultHistoryPath: String? {
        let env = ProcessInfo.processInfo.environment
        if let p = env["LM_HISTORY"] { return p.isEmpty ? nil : p }
        guard let home = env["HOME"], !home.isEmpty else { return nil }
        return home + "/.lm_history"
    }

    /// Fails when libedit cannot start (then lines are read without editing). The prompt and
    /// the echo go to `output` (stderr when stdout is redirected).
    init?(historyPath: String?, output: UnsafeMutablePointer<FILE>) {
        LineEditor.useUTF8Locale()
        guard let el = el_init("lm", stdin, output, stderr) else { return nil }
        guard let h = history_init() else { el_end(el); return nil }
        self.el = el
        history = h
        self.historyPath = historyPath
        _ = lm_history_setsize(h, 1000)
        _ = lm_history_setunique(h, 1)
        _ = lm_el_set_editor(el, "emacs")
        _ = lm_el_set_history(el, h)
        _ = el_source(el, nil)  // ~/.editrc, like every libedit program
        if let historyPath { _ = lm_history_load(h, historyPath) }
    }

    deinit {
        history_end(history)
        el_end(el)
        free(promptBytes)
    }

    func read(prompt: String) -> InputRead {
        free(promptBytes)
        promptBytes = strdup(prompt)
        _ = lm_el_set_prompt(el, promptBytes, CChar(LineEditor.promptEscape.asciiValue ?? 1))
        ChatInterrupt.clear()
        ChatInterrupt.install(restartingReads: false)
        defer { ChatInterrupt.install(restartingReads: true) }
        el_resize(el)  // the terminal may have changed size since the last line (no EL_SIGNAL handlers)
        var count: Int32 = 0
        guard let text = el_gets(el, &count) else {
            return count < 0 || ChatInterrupt.isSet ? .interrupted : .end
        }
        if ChatInterrupt.isSet { return .interrupted }
        var line = String(cString: text)
        while line.hasSuffix("\n") || line.hasSuffix("\r") { line.removeLast() }
        return .line(line)
    }

    func remember(_ line: String) {
        guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { return }
        _ = lm_history_enter(history, line)  // this session's arrow-up history
        if let historyPath { LineEditor.append(line, toHistoryFile: historyPath) }
    }

    /// Adds a line to the history file as other sessions have left it (read again, the line
    /// entered, written to a temporary file and renamed into place), so two sessions at once
    /// both keep their lines and a reader never sees a half-written file.
    private static func append(_ line: String, toHistoryFile path: String) {
        guard let file = history_init() else { return }
        defer { history_end(file) }
        _ = lm_history_setsize(file, 1000)
        _ = lm_history_setunique(file, 1)
        _ = lm_history_load(file, path)
        _ = lm_history_enter(file, line)
        let temporary = path + ".tmp-\(getpid())"
        if lm_history_save(file, temporary) >= 0 {
            if rename(temporary, path) != 0 { unlink(temporary) }
        } else {
            unlink(temporary)
        }
    }

    /// libedit decodes multi-byte characters with the C library's locale.
    private static func useUTF8Locale() {
        if setlocale(LC_CTYPE, "") == nil || String(cString: nl_langinfo(nl_item(CODESET))) != "UTF-8" {
            _ = setlocale(LC_CTYPE, "C.UTF-8")
        }
    }
}

/// Ctrl-C in `lm chat`: a SIGINT handler that only sets a flag, checked between tokens (a reply
/// stops) and after a read (the line is dropped). The session never ends on Ctrl-C.
enum ChatInterrupt {
    private static let flag = Atomic<Bool>(false)

    static var isSet: Bool { flag.load(ordering: .relaxed) }
    static func clear() { flag.store(false, ordering: .relaxed) }

    /// Installs the handler. Without `restartingReads`, a blocked read returns EINTR, so
    /// libedit gives the line back at once; with it, writes and reads simply carry on.
    static func install(restartingReads: Bool) {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in ChatInterrupt.flag.store(true, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = restartingReads ? SA_RESTART : 0
        sigaction(SIGINT, &action, nil)
    }
}
