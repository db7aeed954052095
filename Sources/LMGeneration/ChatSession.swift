import Foundation
import LMCore
import LMModels
import LMTokenizers

/// The settings of a chat session: the sampler chain, the reply length, the system text and
/// the turn format. Saved with the session; `/set NAME VALUE` changes one of them.
///
/// ```swift
/// var settings = ChatSettings()
/// settings.system = "ROMEO:"
/// try settings.set("temperature", "0.7")
/// ```
public struct ChatSettings: Codable, Sendable, Equatable {
    public var sampler = SamplerSettings()
    /// Most tokens in one reply.
    public var maxTokens = 200
    /// Text put once at the start of the context (kept across context shifts when it takes at
    /// most half the context).
    public var system: String? = nil
    /// Pure continuation: the user's text is appended exactly as typed and a reply stops only
    /// at `maxTokens` or the end-of-text token (no paragraph format, no blank-line stop).
    public var raw = false

    public init() {}

    enum CodingKeys: String, CodingKey {
        case sampler, maxTokens = "max_tokens", system, raw
    }

    /// The names `set(_:_:)` accepts, in the order `/show` lists them.
    public static let settableNames = ["temperature", "top_k", "top_p", "min_p", "repeat_penalty",
                                       "repeat_last_n", "max_tokens", "seed"]

    /// Longest reply allowed.
    public static let maxTokensLimit = 1_000_000

    /// Throws a one-line error naming the bad value and its valid range.
    public func validate() throws {
        try sampler.validate()
        guard maxTokens >= 1, maxTokens <= Self.maxTokensLimit else {
            throw LMError(.invalidArgument, "max_tokens \(maxTokens) is out of range: use 1...\(Self.maxTokensLimit)")
        }
    }

    /// Sets one value by its name (`temperature`, `top_k`, …; `-` works for `_`), parsing and
    /// checking it; throws without changing anything when the name or the value is bad.
    public mutating func set(_ name: String, _ value: String) throws {
        let key = name.lowercased().replacingOccurrences(of: "-", with: "_")
        let v = value.trimmingCharacters(in: .whitespaces)
        func number() throws -> Float {
            guard let x = Float(v), x.isFinite else {
                throw LMError(.invalidArgument, "\(key): '\(v)' is not a number")
            }
            return x
        }
        func integer() throws -> Int {
            guard let x = Int(v) else { throw LMError(.invalidArgument, "\(key): '\(v)' is not an integer") }
            return x
        }
        func range(_ ok: Bool, _ shown: Any, _ valid: String) throws {
            if !ok { throw LMError(.invalidArgument, "\(key) \(shown) is out of range: use \(valid)") }
        }
        var s = self
        switch key {
        case "temperature", "temp":
            let x = try number(); try range(x >= 0, x, "a value ≥ 0 (0 = greedy)"); s.sampler.temperature = x
        case "top_k":
            let x = try integer(); try range(x >= 0, x, "an integer ≥ 0 (0 = off)"); s.sampler.topK = x
        case "top_p":
            let x = try number(); try range(x > 0 && x <= 1, x, "a value in (0, 1] (1 = off)"); s.sampler.topP = x
        case "min_p":
            let x = try number(); try range(x >= 0 && x <= 1, x, "a value in [0, 1] (0 = off)"); s.sampler.minP = x
        case "repeat_penalty":
            let x = try number(); try range(x > 0, x, "a value > 0 (1 = off)"); s.sampler.repeatPenalty = x
        case "repeat_last_n":
            let x = try integer(); let most = SamplerSettings.maxRepeatLastN
            try range(x >= 0 && x <= most, x, "an integer in 0...\(most)"); s.sampler.repeatLastN = x
        case "max_tokens":
            let x = try integer(); try range(x >= 1 && x <= Self.maxTokensLimit, x, "1...\(Self.maxTokensLimit)"); s.maxTokens = x
        case "seed":
            guard let x = UInt64(v) else {
                throw LMError(.invalidArgument, "seed: '\(v)' is not a non-negative integer below 2^64")
            }
            s.sampler.seed = x
        default:
            throw LMError(.invalidArgument, "unknown setting '\(name)' — settable: \(Self.settableNames.joined(separator: ", "))")
        }
        try s.validate()
        self = s
    }

    /// Each settable value as `(name, value)`, for `/show`.
    public var listed: [(String, String)] {
        [("temperature", "\(sampler.temperature)"), ("top_k", "\(sampler.topK)"), ("top_p", "\(sampler.topP)"),
         ("min_p", "\(sampler.minP)"), ("repeat_penalty", "\(sampler.repeatPenalty)"),
         ("repeat_last_n", "\(sampler.repeatLastN)"), ("max_tokens", "\(maxTokens)"), ("seed", "\(sampler.seed)")]
    }
}

/// Why a reply ended.
public enum ChatStopReason: String, Codable, Sendable {
    /// The reply had some text and then an empty line (the paragraph format's stop rule).
    case blankLine = "blank_line"
    /// `max_tokens` tokens were generated.
    case maxTokens = "max_tokens"
    /// The model produced its end-of-text token.
    case endOfText = "end_of_text"
    /// The caller interrupted it (Ctrl-C).
    case interrupted
}

/// Timings and token counts of one reply.
public struct ChatTurnStats: Codable, Sendable, Equatable {
    /// Tokens run through the model before the first sample: the turn's text (for `/regen`,
    /// the last token of it).
    public var promptTokens = 0
    public var promptSeconds = 0.0
    /// Tokens of older text encoded again because the context was full (at any of the shifts).
    public var reencodedTokens = 0
    public var generatedTokens = 0
    /// From the first sampled token to the last.
    public var generationSeconds = 0.0
    /// From the call (tokenizing included) to the first sampled token.
    public var firstTokenSeconds = 0.0
    /// Times the window moved (before the prefill, while generating or while closing).
    public var contextShifts = 0
    /// Tokens run after the reply so that the next turn prefills only its own text: the
    /// reply's last token and the paragraph break after it.
    public var closingTokens = 0
    public var closingSeconds = 0.0

    public init() {}

    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptTokens) / promptSeconds : 0 }
    public var tokensPerSecond: Double { generationSeconds > 0 ? Double(generatedTokens) / generationSeconds : 0 }

    mutating func add(_ o: ChatTurnStats) {
        promptTokens += o.promptTokens; promptSeconds += o.promptSeconds
        reencodedTokens += o.reencodedTokens; generatedTokens += o.generatedTokens
        generationSeconds += o.generationSeconds; firstTokenSeconds += o.firstTokenSeconds
        contextShifts += o.contextShifts
        closingTokens += o.closingTokens; closingSeconds += o.closingSeconds
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", promptSeconds = "prompt_seconds", reencodedTokens = "reencoded_tokens"
        case generatedTokens = "generated_tokens", generationSeconds = "generation_seconds"
        case firstTokenSeconds = "first_token_seconds", contextShifts = "context_shifts"
        case closingTokens = "closing_tokens", closingSeconds = "closing_seconds"
    }
}

/// One exchange: what the user typed and what the model answered, with where its tokens sit
/// in `ChatSession.tokens`.
public struct ChatTurn: Codable, Sendable, Equatable {
    /// The user's text as typed.
    public var user: String
    /// The text appended to the context for it (the text and a newline, or the raw text).
    public var prompt: String
    /// The reply's text as generated (with the newlines that ended it).
    public var reply: String
    /// What was shown of the reply: without leading newlines and the blank line that stopped it.
    public var shown: String
    /// The paragraph break appended after the reply so that the text ends in an empty line
    /// (`""`, `"\n"` or `"\n\n"`; always `""` in the raw format).
    public var closing: String
    public var stop: ChatStopReason
    /// Token offsets in `ChatSession.tokens`: the prompt is `start..<replyStart`, the reply
    /// `replyStart..<replyEnd`, the closing paragraph break `replyEnd..<end`.
    public var start: Int
    public var replyStart: Int
    public var replyEnd: Int
    public var end: Int

    enum CodingKeys: String, CodingKey {
        case user, prompt, reply, shown, closing, stop, start, replyStart = "reply_start", replyEnd = "reply_end", end
    }
}

/// A conversation with a plain (template-less) causal language model, keeping its KV cache
/// between turns so that each turn runs only its new tokens through the model.
///
/// **Turn format** (the default, for plain language models such as the bundled character-level
/// Shakespeare model): the conversation is a sequence of paragraphs. The system text and every
/// reply are closed by newlines until the text ends in an empty line; a user turn is its text
/// and one newline; the model's reply follows. **Stop rule**: a reply ends when it has produced
/// some text followed by an empty line (`"\n\n"`; newlines before any text do not count), at
/// the end-of-text token, or after `maxTokens` tokens. With `raw`, the text is appended as typed,
/// nothing closes a reply, and only the last two rules apply.
///
/// **Closing a reply**: its last sampled token and the paragraph break after it run through the
/// model as soon as the reply ends, so the cache always holds the whole conversation between
/// turns and a turn prefills exactly its own text — the same tokens whether it is the first
/// turn or the fiftieth.
///
/// **Context shift**: when a turn or a reply does not fit, the system text stays in place (when
/// it takes at most half the context) and only the newest half of the rest is kept: its cached
/// keys move down (models with rotary embeddings, `canShiftCache`; nothing is encoded again), or
/// it is encoded again after the system text (learned absolute positions, or a sliding-window
/// layer that no longer holds what the moved text needs).
///
/// **Undo / regenerate / save** truncate or restore the cache; the sampler's random stream
/// always continues, and its repetition window is always the last `repeat_last_n` tokens of
/// the conversation, so a saved session resumed in a new process samples exactly what the
/// uninterrupted one would.
///
/// ```swift
/// let session = try ChatSession(model: model, tokenizer: tokenizer)
/// let turn = try session.respond(to: "ROMEO:") { text in print(text, terminator: "") }
/// try session.save(to: "chat.json")
/// ```
public final class ChatSession {
    public let model: any CausalLanguageModel
    public let tokenizer: any Tokenizer
    public private(set) var settings: ChatSettings
    public private(set) var generator: TokenGenerator
    /// Every token of the conversation (system text and turns), oldest first.
    public private(set) var tokens: [Int] = []
    public private(set) var turns: [ChatTurn] = []
    /// Tokens of the system text (and the paragraph break closing it) at the start of `tokens`.
    public private(set) var systemTokenCount = 0
    /// Positions a context shift keeps in place (the system text, if it takes at most half the context).
    public private(set) var keep = 0
    /// The cache holds `tokens[0..<keep] + tokens[cacheTailStart..<cacheEnd]`. Between calls
    /// `cacheEnd == tokens.count`: the whole conversation has been run.
    public private(set) var cacheEnd = 0
    public private(set) var lastStats: ChatTurnStats?
    public private(set) var totals = ChatTurnStats()

    public var cache: KVCache { generator.cache }
    public var cacheTailStart: Int { cacheEnd - (generator.history.count - keep) }

    /// A session over a cache of `contextSize` positions (default: the model's context).
    public init(model: any CausalLanguageModel, tokenizer: any Tokenizer, settings: ChatSettings = ChatSettings(),
                contextSize: Int? = nil) throws {
        try settings.validate()
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        generator = try TokenGenerator(model: model, settings: settings.sampler, cache: model.makeCache(capacity: contextSize))
        try startContext()
    }

    private func configure(_ g: TokenGenerator) {
        for t in tokenizer.endOfGenerationTokens where t < model.vocabularySize { g.stopTokens.insert(t) }
        g.keepFirst = keep
    }

    /// Encodes the system text (closed by a paragraph break unless the format is raw) and runs
    /// it into an empty cache.
    private func startContext() throws {
        try generator.truncate(to: 0)
        tokens = []
        turns = []
        systemTokenCount = 0
        keep = 0
        cacheEnd = 0
        if let system = settings.system, !system.isEmpty {
            let ids = try encode(settings.raw ? system : system + Self.paragraphBreak(after: system), first: true)
            guard ids.count <= cache.capacity - 2 else {
                throw LMError(.invalidArgument, "the system text has \(ids.count) tokens but the context holds \(cache.capacity) — shorten it")
            }
            systemTokenCount = ids.count
            keep = ids.count <= cache.capacity / 2 ? ids.count : 0
            try generator.append(ids)
            tokens = ids
            cacheEnd = ids.count
        }
        configure(generator)
    }

    private func encode(_ text: String, first: Bool) throws -> [Int] {
        let ids = try tokenizer.encode(text, addSpecialTokens: first)
        for id in ids where id < 0 || id >= model.vocabularySize {
            throw LMError(.invalidInput, "the tokenizer gave id \(id), outside the model's vocabulary of \(model.vocabularySize) — the tokenizer does not match the model")
        }
        return ids
    }

    /// What is appended to the context for a user turn of `text` (the text before it always
    /// ends in an empty line, or is empty).
    public func format(_ text: String) -> String {
        settings.raw ? text : text + "\n"
    }

    /// The newlines that make `text` end in an empty line (none for empty text).
    static func paragraphBreak(after text: String) -> String {
        text.isEmpty || text.hasSuffix("\n\n") ? "" : text.hasSuffix("\n") ? "\n" : "\n\n"
    }

    // MARK: Turns

    /// Appends a user turn and generates the reply, calling `onText` with each piece of it to
    /// show (complete characters; leading newlines and the closing empty line held back).
    /// `isInterrupted` is checked before each token; when it returns true the reply ends there.
    @discardableResult
    public func respond(to text: String, isInterrupted: () -> Bool = { false },
                        onText: (String) -> Void) throws -> ChatTurn {
        let t0 = monotonicSeconds()
        guard !text.isEmpty else { throw LMError(.invalidInput, "the turn is empty — type some text") }
        let prompt = format(text)
        let ids = try encode(prompt, first: tokens.isEmpty)
        guard !ids.isEmpty else { throw LMError(.invalidInput, "the turn is empty after tokenization — type some text") }
        let start = tokens.count
        tokens += ids
        do {
            return try generateReply(user: text, prompt: prompt, start: start, t0: t0,
                                     isInterrupted: isInterrupted, onText: onText)
        } catch {
            try? recover(to: start)
            throw error
        }
    }

    /// Samples the last reply again: the cache is cut back to before it and the random stream
    /// continues, so the new reply may differ. Throws when there is no turn yet.
    @discardableResult
    public func regenerate(isInterrupted: () -> Bool = { false }, onText: (String) -> Void) throws -> ChatTurn {
        let t0 = monotonicSeconds()
        guard let last = turns.last else {
            throw LMError(.invalidInput, "there is no reply to sample again — say something first")
        }
        turns.removeLast()
        // The prompt's last token is fed again: its logits choose the reply's first token.
        try rewind(to: last.replyStart, cacheTo: last.replyStart - 1)
        do {
            return try generateReply(user: last.user, prompt: last.prompt, start: last.start, t0: t0,
                                     isInterrupted: isInterrupted, onText: onText)
        } catch {
            try? recover(to: last.start)
            throw error
        }
    }

    /// Drops the last turn (its text and reply), truncating the cache to its length before the
    /// turn (or, when a context shift dropped that part, encoding a window ending there again).
    /// Returns the dropped turn, or nil when there is none.
    @discardableResult
    public func undo() throws -> ChatTurn? {
        guard let last = turns.popLast() else { return nil }
        try rewind(to: last.start, cacheTo: last.start)
        return last
    }

    /// Clears the conversation back to the system text. Settings and the random stream continue.
    public func reset() throws {
        turns = []
        try rewind(to: systemTokenCount, cacheTo: systemTokenCount)
    }

    /// Changes one setting by name (see `ChatSettings.set`). `seed` restarts the random stream
    /// from that seed; the others keep it going.
    public func set(_ name: String, _ value: String) throws {
        var s = settings
        try s.set(name, value)
        let key = name.lowercased().replacingOccurrences(of: "-", with: "_")
        try apply(s, reseed: key == "seed")
    }

    /// Replaces the settings (the system text and the format are fixed for a session: use a
    /// new session to change them).
    public func update(_ newSettings: ChatSettings, reseed: Bool = false) throws {
        try apply(newSettings, reseed: reseed)
    }

    private func apply(_ s: ChatSettings, reseed: Bool) throws {
        try s.validate()
        guard s.system == settings.system, s.raw == settings.raw else {
            throw LMError(.invalidArgument, "the system text and the raw format are fixed for a session — start a new one to change them")
        }
        if s.sampler.repeatLastN != generator.sampler.settings.repeatLastN {
            // The window's size is fixed in a sampler: make a new one over the same cache.
            let rng = generator.sampler.rngState
            let g = try TokenGenerator(model: model, settings: s.sampler, cache: generator.cache)
            try g.assumeCached(generator.history)
            try g.sampler.restoreRNG(rng)
            configure(g)
            generator = g
        } else {
            try generator.sampler.update(s.sampler)
        }
        if reseed { try generator.sampler.restoreRNG(SeededRNG(seed: s.sampler.seed).stateWords) }
        settings = s
    }

    /// Runs the tokens after `cacheEnd` and samples a reply, closes it, and records the turn.
    private func generateReply(user: String, prompt: String, start: Int, t0: Double,
                               isInterrupted: () -> Bool, onText: (String) -> Void) throws -> ChatTurn {
        var stats = ChatTurnStats()
        let replyStart = tokens.count
        let feed = try makeRoom(&stats)
        // The repetition window: the conversation's last tokens before the fed ones
        // (generate adds the fed ones).
        let sampler = generator.sampler
        sampler.resetHistory()
        let fedFrom = tokens.count - feed.count
        for t in tokens[max(0, fedFrom - sampler.settings.repeatLastN)..<fedFrom] { sampler.accept(t) }

        var detok = tokenizer.makeStreamingDetokenizer()
        var shownText = ChatReplyFilter(stopAtBlankLine: !settings.raw)
        var reply = "", shown = ""
        var first = true, interrupted = false, stopped = false
        tokens.reserveCapacity(tokens.count + min(settings.maxTokens, cache.capacity))
        let g = try generator.generate(prompt: feed, maxTokens: settings.maxTokens) { token in
            if first { stats.firstTokenSeconds = monotonicSeconds() - t0; first = false }
            if isInterrupted() { interrupted = true; return false }
            tokens.append(token)
            let piece = detok.append(token)
            reply += piece
            let (text, stop) = shownText.feed(piece)
            if !text.isEmpty { shown += text; onText(text) }
            if stop { stopped = true; return false }
            return true
        }
        if first { stats.firstTokenSeconds = monotonicSeconds() - t0 }
        let tail = detok.flush()
        if !tail.isEmpty {
            reply += tail
            let (text, _) = shownText.feed(tail)
            if !text.isEmpty { shown += text; onText(text) }
        }
        // generate feeds every emitted token back except the last one (unless it stopped at
        // the end-of-text token, which is not part of the conversation).
        let lastUnfed = g.generatedTokens > 0 && !interrupted && !g.stoppedAtEOS
        cacheEnd = tokens.count - (lastUnfed ? 1 : 0)
        try checkCache()
        stats.promptTokens = g.promptTokens
        stats.promptSeconds = g.promptSeconds
        stats.generatedTokens = g.generatedTokens - (interrupted ? 1 : 0)
        stats.generationSeconds = g.generationSeconds
        stats.contextShifts += g.contextShifts
        stats.reencodedTokens += g.reencodedTokens

        // Close the reply now rather than at the next turn: its last token and the paragraph
        // break run through the model, so the next turn prefills only its own text.
        let replyEnd = tokens.count
        let closing = settings.raw ? "" : Self.paragraphBreak(after: prompt + reply)
        if !closing.isEmpty { tokens += try encode(closing, first: false) }
        let tc = monotonicSeconds()
        stats.closingTokens = tokens.count - cacheEnd
        try runPending(&stats)
        stats.closingSeconds = monotonicSeconds() - tc

        lastStats = stats
        totals.add(stats)
        let reason: ChatStopReason = interrupted ? .interrupted : g.stoppedAtEOS ? .endOfText
            : stopped ? .blankLine : .maxTokens
        let turn = ChatTurn(user: user, prompt: prompt, reply: reply, shown: shown, closing: closing, stop: reason,
                            start: start, replyStart: replyStart, replyEnd: replyEnd, end: tokens.count)
        turns.append(turn)
        return turn
    }

    /// Runs the tokens after `cacheEnd` into the cache (shifting the context if they do not fit).
    private func runPending(_ stats: inout ChatTurnStats) throws {
        guard cacheEnd < tokens.count else { return }
        try generator.append(try makeRoom(&stats))
        cacheEnd = tokens.count
        try checkCache()
    }

    /// Makes room in the cache for the tokens after `cacheEnd` (shifting the context when they
    /// do not fit) and returns the ones to run.
    private func makeRoom(_ stats: inout ChatTurnStats) throws -> [Int] {
        let n = tokens.count
        // A reply needs at least one token to run: its logits choose the first token.
        if cacheEnd >= n { try cutCache(to: n - 1) }
        let m = n - cacheEnd
        if m <= cache.remaining { return Array(tokens[cacheEnd..<n]) }
        let budget = cache.capacity - keep
        stats.contextShifts += 1
        if m >= budget {
            // The new text alone fills the context: only its newest part is read.
            try generator.truncate(to: keep)
            cacheEnd = n - budget
            return Array(tokens[cacheEnd..<n])
        }
        // Keep the newest half of the context (more when the new text is longer): moved in the
        // cache when the model can (rotary embeddings), else encoded again after the kept part.
        let from = n - min(n - keep, max(m, budget / 2))
        let s = cacheTailStart
        if from > s, generator.discard(keep..<(keep + min(from, cacheEnd) - s)) {
            return Array(tokens[cacheEnd..<n])
        }
        try generator.truncate(to: keep)
        if from < cacheEnd {
            try generator.append(Array(tokens[from..<cacheEnd]))
            stats.reencodedTokens += cacheEnd - from
        }
        return Array(tokens[cacheEnd..<n])
    }

    /// Cuts the conversation to `tokens[..<p]` and the cache to end at `q` (≤ p) or earlier;
    /// when the cache no longer holds position `q`, re-encodes a window ending there.
    private func rewind(to p: Int, cacheTo q: Int) throws {
        tokens.removeSubrange(min(p, tokens.count)...)
        try cutCache(to: min(q, p))
    }

    private func cutCache(to q: Int) throws {
        if q >= cacheEnd { return }
        let s = cacheTailStart
        if q >= s {
            try generator.truncate(to: keep + (q - s))
            cacheEnd = q
            return
        }
        try rebuild(endingAt: q)
    }

    /// After a failed reply: drops the tokens from `start` on and rebuilds the cache from the
    /// tokens alone (the generator's state is not trusted).
    private func recover(to start: Int) throws {
        tokens.removeSubrange(min(start, tokens.count)...)
        try rebuild(endingAt: tokens.count)
    }

    /// Re-encodes the kept tokens' successors: the newest half of `tokens[keep..<q]` (all of it
    /// when it fits in half the context or is the system text).
    private func rebuild(endingAt q: Int) throws {
        let budget = cache.capacity - keep
        let span = q - keep
        let tailLength = max(0, span <= budget / 2 || q <= systemTokenCount ? min(span, budget) : budget / 2)
        try generator.truncate(to: keep)
        try generator.append(Array(tokens[(q - tailLength)..<q]))
        cacheEnd = q
    }

    /// Verifies the cache holds `tokens[0..<keep] + tokens[tailStart..<cacheEnd]`; rebuilds it
    /// from the tokens if not (never expected; a safety net).
    private func checkCache() throws {
        let h = generator.history
        let s = cacheTailStart
        let ok = h.count >= keep && s >= keep && s <= cacheEnd && cacheEnd <= tokens.count
            && h.count == cache.length
            && h[0..<keep].elementsEqual(tokens[0..<keep])
            && h[keep...].elementsEqual(tokens[s..<cacheEnd])
        if !ok { try rebuild(endingAt: cacheEnd) }
    }

    // MARK: Save and load

    /// The KV-cache file written beside a session file: `chat.json` → `chat.kv.safetensors`.
    public static func cacheFilePath(for path: String) -> String {
        (path.hasSuffix(".json") ? String(path.dropLast(5)) : path) + ".kv.safetensors"
    }

    /// Writes the transcript, the settings, the tokens and the sampler's random state as JSON to
    /// `path`, and the cached keys and values to `cacheFilePath(for: path)` (both atomically;
    /// the JSON holds a checksum of the keys and values and the tokens they encode).
    public func save(to path: String, modelPath: String? = nil) throws {
        let folder = path.lastIndex(of: "/").map { String(path[...$0]) } ?? ""
        guard folder.isEmpty || FileIO.isDirectory(folder) else {
            throw LMError(.fileNotFound, "cannot save to '\(path)': the folder '\(folder)' does not exist — create it or give another path")
        }
        guard !FileIO.isDirectory(path) else {
            throw LMError(.invalidArgument, "'\(path)' is a folder — give a file name, e.g. \(path)/chat.json")
        }
        let id = UUID().uuidString
        let kvPath = Self.cacheFilePath(for: path)
        let L = cache.length, W = cache.width
        var items: [(String, SafeTensorsWriter.Item)] = []
        // The checksum covers the window's tokens and then each tensor, in the order load reads them.
        var sum = KVChecksum()
        sum.add(tokens: Array(tokens[0..<keep]) + Array(tokens[cacheTailStart..<cacheEnd]))
        for l in 0..<cache.layers {
            // The positions the layer holds (the newest ones for a sliding-window layer).
            let h = L - cache.base(l)
            for (name, base) in [("keys", cache.keys(l)), ("values", cache.values(l))] {
                let bytes = [UInt8](UnsafeRawBufferPointer(start: base, count: h * W * 4))
                bytes.withUnsafeBytes { sum.add($0) }
                items.append(("\(name).\(l)", .raw(dtype: .f32, shape: [h, W], bytes: bytes)))
            }
        }
        let file = ChatSessionFile(
            model: .init(model, cache, path: modelPath), settings: settings, turns: turns, tokens: tokens,
            systemTokens: systemTokenCount,
            cache: .init(file: (kvPath as NSString).lastPathComponent, id: id, keep: keep,
                         tailStart: cacheTailStart, end: cacheEnd, checksum: sum.hex),
            rng: generator.sampler.rngState.map { String($0, radix: 16) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = try encoder.encode(file)
        try SafeTensorsWriter.write(items: items, metadata: ["format": "swift-lm-chat-kv", "session": id], to: kvPath)
        try FileIO.writeAtomically(path) { fd in
            try json.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: path) }
        }
    }

    /// Replaces this session with the one saved at `path` (written by `save`). Everything is
    /// checked before anything changes, so a missing or corrupt file leaves the session as it
    /// was. When the KV-cache file beside it is missing, belongs to another save or does not fit
    /// this cache, the window is encoded again from the tokens (said in the returned notes); when
    /// it is damaged (unreadable, wrong tensors, or bytes that fail the saved checksum) the load
    /// is refused.
    @discardableResult
    public func load(from path: String) throws -> [String] {
        guard FileIO.exists(path) else {
            throw LMError(.fileNotFound, "no such file '\(path)' — give the path of a file written by /save")
        }
        guard !FileIO.isDirectory(path) else {
            throw LMError(.invalidArgument, "'\(path)' is a folder — give the path of a file written by /save")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LMError(.fileNotFound, "cannot read '\(path)' — check its permissions")
        }
        let f: ChatSessionFile
        do {
            f = try JSONDecoder().decode(ChatSessionFile.self, from: data)
        } catch {
            throw LMError(.corruptFile, "'\(path)' is not a swift-lm chat session (\(Self.describe(error))) — give a file written by /save")
        }
        func bad(_ what: String) -> LMError {
            LMError(.corruptFile, "'\(path)' is not a valid chat session: \(what) — give a file written by /save")
        }
        guard f.format == ChatSessionFile.formatName else { throw bad("format '\(f.format)'") }
        guard f.version == 1 else {
            throw LMError(.corruptFile, "'\(path)' is chat session version \(f.version); this lm reads version 1 — use the lm that wrote it")
        }
        let mine = ChatSessionFile.ModelInfo(model, cache, path: nil)
        guard f.model.vocabSize == mine.vocabSize, f.model.layers == mine.layers, f.model.kvWidth == mine.kvWidth,
              f.model.context == mine.context, f.model.modelType == mine.modelType else {
            throw LMError(.invalidInput, "'\(path)' was saved with another model (\(f.model.summary)); this one is \(mine.summary) — start lm chat --model \(f.model.path ?? "DIR") to load it")
        }
        do { try f.settings.validate() } catch let e as LMError { throw bad(e.message) }
        let n = f.tokens.count
        guard f.tokens.allSatisfy({ $0 >= 0 && $0 < model.vocabularySize }) else { throw bad("a token id outside the vocabulary") }
        guard f.systemTokens >= 0, f.systemTokens <= n else { throw bad("system_tokens \(f.systemTokens)") }
        var at = f.systemTokens
        for t in f.turns {
            guard t.start == at, t.start < t.replyStart, t.replyStart <= t.replyEnd, t.replyEnd <= t.end,
                  t.end <= n else { throw bad("turn offsets") }
            at = t.end
        }
        guard at == n else { throw bad("\(n - at) tokens after the last turn") }
        let cap = cache.capacity
        let k = f.systemTokens > 0 && f.systemTokens <= cap / 2 ? f.systemTokens : 0
        let c = f.cache
        guard c.keep == k, c.tailStart >= k, c.tailStart <= c.end, c.end == n,
              k + (c.end - c.tailStart) <= cap else { throw bad("cache offsets") }
        let words = f.rng.compactMap { UInt64($0, radix: 16) }
        guard words.count == 4, f.rng.count == 4, words.contains(where: { $0 != 0 }) else { throw bad("rng state") }
        let window = Array(f.tokens[0..<k]) + Array(f.tokens[c.tailStart..<c.end])

        // The keys and values: checked completely before the cache is touched. A missing file,
        // or one of another save (a stale pair), means encoding the window again; a damaged one
        // (unreadable, wrong tensors, or not the bytes saved) is refused.
        var notes: [String] = []
        let kvPath = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(c.file)
        var kv: SafeTensorsFile? = nil
        var held: [Int] = []
        func corrupt(_ why: String) -> LMError {
            LMError(.corruptFile, "'\(kvPath)' is not the KV cache saved with '\(path)' (\(why)) — delete it and load again to encode the context from the transcript")
        }
        if !FileIO.exists(kvPath) {
            notes.append("the KV-cache file '\(kvPath)' is missing: encoding the \(window.count) tokens of the context again")
        } else {
            let file: SafeTensorsFile
            do { file = try SafeTensorsFile(path: kvPath) } catch { throw corrupt(Self.brief(error)) }
            if file.metadata["session"] != c.id {
                notes.append("the KV-cache file '\(kvPath)' belongs to another save: encoding the \(window.count) tokens of the context again")
            } else {
                var sum = KVChecksum()
                sum.add(tokens: window)
                var counts: [Int] = []
                for l in 0..<cache.layers {
                    var rows: Int? = nil
                    for name in ["keys.\(l)", "values.\(l)"] {
                        guard let e = file.entries[name] else { throw corrupt("no tensor '\(name)'") }
                        let h = rows ?? e.shape.first ?? -1
                        guard e.dtype == .f32, e.shape.count == 2, e.shape[0] == h, e.shape[1] == cache.width,
                              h >= 0, h <= window.count else {
                            throw corrupt("'\(name)' is \(e.dtype.rawValue) \(e.shape); this cache needs f32 [rows ≤ \(window.count), \(cache.width)], keys and values alike")
                        }
                        let bytes: UnsafeRawBufferPointer
                        do { bytes = try file.rawBytes(name).bytes } catch { throw corrupt(Self.brief(error)) }
                        guard bytes.count == h * cache.width * 4 else { throw corrupt("'\(name)' holds \(bytes.count) bytes") }
                        sum.add(bytes)
                        rows = h
                    }
                    counts.append(rows ?? 0)
                }
                // Files saved before the checksum existed have none.
                if let saved = c.checksum, saved != sum.hex {
                    throw corrupt("checksum mismatch: its keys and values are not the ones saved for these tokens")
                }
                do {
                    // Intact, but a cache of other sliding-window slots may not hold it.
                    try cache.validateRestore(length: window.count, held: counts)
                    held = counts
                    kv = file
                } catch {
                    notes.append("the KV-cache file '\(kvPath)' does not fit this cache (\(Self.describe(error))): encoding the \(window.count) tokens of the context again")
                }
            }
        }

        // Everything checked: replace the session.
        let g = try TokenGenerator(model: model, settings: f.settings.sampler, cache: cache)
        try g.sampler.restoreRNG(words)
        settings = f.settings
        tokens = f.tokens
        turns = f.turns
        systemTokenCount = f.systemTokens
        keep = k
        configure(g)
        generator = g
        cache.reset()
        if let kv {
            let rowBytes = cache.width * 4
            for l in 0..<cache.layers {
                for (name, base) in [("keys.\(l)", cache.keys(l)), ("values.\(l)", cache.values(l))] {
                    let (_, bytes) = try kv.rawBytes(name)
                    if let src = bytes.baseAddress, held[l] > 0 {
                        UnsafeMutableRawPointer(base).copyMemory(from: src, byteCount: held[l] * rowBytes)
                    }
                }
            }
            try cache.restore(length: window.count, held: held)
            try g.assumeCached(window)
        } else {
            try g.append(window)
        }
        cacheEnd = c.end
        lastStats = nil
        return notes
    }

    /// An error's message without its fix (the part after " — "), to quote inside another one.
    private static func brief(_ error: Error) -> String {
        let m = describe(error)
        return m.range(of: " — ").map { String(m[..<$0.lowerBound]) } ?? m
    }

    private static func describe(_ error: Error) -> String {
        if let e = error as? LMError { return e.message }
        if let e = error as? DecodingError {
            switch e {
            case .keyNotFound(let key, _): return "missing '\(key.stringValue)'"
            case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx), .dataCorrupted(let ctx):
                let at = ctx.codingPath.map(\.stringValue).joined(separator: ".")
                return at.isEmpty ? "not JSON" : "bad '\(at)'"
            @unknown default: return "bad JSON"
            }
        }
        return "\(error)"
    }
}

/// What a reply shows, and the empty-line stop rule of the paragraph format: newlines before
/// any text are dropped, newlines after text are held back until more text comes, and a second
/// one in a row (an empty line) ends the reply. Without `stopAtBlankLine`, text passes as is.
///
/// ```swift
/// var filter = ChatReplyFilter(stopAtBlankLine: true)
/// filter.feed("\nHe")        // ("He", false)
/// filter.feed("llo.\n\nX")   // ("llo.", true)
/// ```
public struct ChatReplyFilter {
    public let stopAtBlankLine: Bool
    private var seenText = false
    private var heldNewlines = 0

    public init(stopAtBlankLine: Bool) { self.stopAtBlankLine = stopAtBlankLine }

    /// The part of `piece` to show now, and whether the reply ends here.
    public mutating func feed(_ piece: String) -> (shown: String, stop: Bool) {
        guard stopAtBlankLine else { return (piece, false) }
        var out = String.UnicodeScalarView()
        for u in piece.unicodeScalars {
            if u == "\n" {
                guard seenText else { continue }
                heldNewlines += 1
                if heldNewlines >= 2 { return (String(out), true) }
            } else {
                if heldNewlines > 0 { out.append("\n"); heldNewlines = 0 }
                out.append(u)
                seenText = true
            }
        }
        return (String(out), false)
    }
}

/// The JSON of a saved chat session (version 1).
struct ChatSessionFile: Codable {
    static let formatName = "swift-lm-chat"

    struct ModelInfo: Codable {
        var path: String?
        var modelType: String
        var vocabSize: Int
        var context: Int
        var layers: Int
        var kvWidth: Int

        init(_ m: any CausalLanguageModel, _ c: KVCache, path: String?) {
            self.path = path
            modelType = m.modelType; vocabSize = m.vocabularySize; context = m.contextLength
            layers = c.layers; kvWidth = c.width
        }

        var summary: String { "\(modelType), vocabulary \(vocabSize), \(layers) layers, key width \(kvWidth), context \(context)" }

        enum CodingKeys: String, CodingKey {
            case path, modelType = "model_type", vocabSize = "vocab_size", context, layers, kvWidth = "kv_width"
        }
    }

    struct CacheInfo: Codable {
        /// The safetensors file of keys and values, beside the JSON.
        var file: String
        /// Written into both files, so a stale pair is noticed.
        var id: String
        var keep: Int
        var tailStart: Int
        var end: Int
        /// `KVChecksum` of the window's tokens and the file's tensors, in hexadecimal (absent in
        /// files saved before it existed).
        var checksum: String?

        enum CodingKeys: String, CodingKey { case file, id, keep, tailStart = "tail_start", end, checksum }
    }

    var format = formatName
    var version = 1
    var model: ModelInfo
    var settings: ChatSettings
    var turns: [ChatTurn]
    var tokens: [Int]
    var systemTokens: Int
    var cache: CacheInfo
    /// The sampler's random state: four 64-bit words in hexadecimal.
    var rng: [String]

    init(model: ModelInfo, settings: ChatSettings, turns: [ChatTurn], tokens: [Int], systemTokens: Int,
         cache: CacheInfo, rng: [String]) {
        self.model = model; self.settings = settings; self.turns = turns; self.tokens = tokens
        self.systemTokens = systemTokens; self.cache = cache; self.rng = rng
    }

    enum CodingKeys: String, CodingKey {
        case format, version, model, settings, turns, tokens, systemTokens = "system_tokens", cache, rng
    }
}

/// FNV-1a over 64-bit words (then the length) of a saved KV cache: notices flipped, lost or
/// moved bytes — every step is a bijection of the state, so one changed word always changes the
/// sum. Not meant against an adversary.
struct KVChecksum {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    private static let prime: UInt64 = 0x0000_0100_0000_01b3

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var h = value
        let n = bytes.count
        if let p = bytes.baseAddress {
            var i = 0
            while i + 8 <= n {
                h = (h ^ UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self))) &* Self.prime
                i += 8
            }
            while i < n {
                h = (h ^ UInt64(p.load(fromByteOffset: i, as: UInt8.self))) &* Self.prime
                i += 1
            }
        }
        value = (h ^ UInt64(n)) &* Self.prime
    }

    mutating func add(tokens: [Int]) {
        tokens.map { Int64($0).littleEndian }.withUnsafeBytes { add($0) }
    }

    var hex: String { String(value, radix: 16) }
}
