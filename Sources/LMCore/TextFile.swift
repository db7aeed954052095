import Foundation

/// Strict UTF-8 for text that comes from outside (files, stdin, arguments): an invalid byte is
/// an error naming its offset and line, never silently replaced. Every command reads text by
/// this one rule.
public enum UTF8Text {
    /// Decodes `bytes`, or throws "`source` is not valid UTF-8: byte 0xE9 at offset 3 (line 1); ...".
    public static func decode(_ bytes: [UInt8], source: String) throws -> String {
        try bytes.withUnsafeBytes { try decode($0, source: source) }
    }

    /// Decodes `bytes`; `firstLine` is the line number of the first byte (for a line of a stream).
    public static func decode(_ bytes: UnsafeRawBufferPointer, source: String, firstLine: Int = 1) throws -> String {
        if let bad = firstInvalidOffset(bytes) {
            var line = firstLine
            for k in 0..<bad where bytes[k] == 0x0A { line += 1 }
            let byte = String(bytes[bad], radix: 16, uppercase: true)
            throw LMError(.invalidInput, "\(source) is not valid UTF-8: byte 0x\(byte) at offset \(bad) (line \(line)); convert it to UTF-8 first (for example: iconv -f latin1 -t utf-8)")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The offset of the first byte that is not part of a valid UTF-8 sequence, or nil when all
    /// of `bytes` is valid UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
    public static func firstInvalidOffset(_ bytes: UnsafeRawBufferPointer) -> Int? {
        let n = bytes.count
        var i = 0
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 { i += 1; continue }
            let len: Int
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
            switch b0 {
            case 0xC2...0xDF: len = 2
            case 0xE0: len = 3; lo = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: len = 3
            case 0xED: len = 3; hi = 0x9F
            case 0xF0: len = 4; lo = 0x90
            case 0xF1...0xF3: len = 4
            case 0xF4: len = 4; hi = 0x8F
            default: return i
            }
            if i + len > n { return i }
            let b1 = bytes[i + 1]
            if b1 < lo || b1 > hi { return i }
            for k in 2..<len where bytes[i + k] & 0xC0 != 0x80 { return i }
            i += len
        }
        return nil
    }

    /// Checks the command-line arguments (Swift repairs invalid UTF-8 in them with U+FFFD).
    public static func validateArguments() throws {
        for k in 1..<Int(CommandLine.argc) {
            guard let arg = CommandLine.unsafeArgv[k] else { continue }
            _ = try decode(UnsafeRawBufferPointer(start: arg, count: strlen(arg)), source: "argument \(k)")
        }
    }
}

/// Text files and their lines, read one way everywhere: strict UTF-8, lines ending in "\n" or
/// "\r\n", and a last line with or without its newline (it never adds an empty line).
public enum TextFile {
    /// The text of `path`. `what` names it in errors ("--file", "corpus"), `expecting` says what
    /// to give instead ("a text file with one input per line").
    public static func read(_ path: String, what: String, expecting: String) throws -> String {
        let name = "\(what) '\(path)'"
        guard FileIO.exists(path) else { throw LMError(.fileNotFound, "\(name) does not exist — give \(expecting)") }
        guard !FileIO.isDirectory(path) else { throw LMError(.invalidArgument, "\(name) is a folder — give \(expecting)") }
        guard access(path, R_OK) == 0 else {
            throw LMError(.fileNotFound, "\(name) cannot be read: \(String(cString: strerror(errno))) — check its permissions")
        }
        let file = try MappedFile(path: path)
        return try UTF8Text.decode(file.bytes, source: name)
    }

    /// The text of `path` with its "\r\n" line ends read as "\n" (a corpus written on Windows is
    /// the same corpus): what training and perplexity read.
    public static func readText(_ path: String, what: String, expecting: String) throws -> String {
        let text = try read(path, what: what, expecting: expecting)
        guard text.utf8.contains(0x0D) else { return text }
        return lines(of: text).joined(separator: "\n") + (text.utf8.last == 0x0A ? "\n" : "")
    }

    /// The lines of `path` (see `lines(of:)`).
    public static func readLines(_ path: String, what: String, expecting: String) throws -> [String] {
        lines(of: try read(path, what: what, expecting: expecting))
    }

    /// The lines of `text`, split at "\n" with a "\r" before it removed; a final newline does
    /// not start another line. (Swift's `split(separator: "\n")` misses "\r\n": it is one Character.)
    public static func lines(of text: String) -> [String] {
        var out = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            var s = String.UnicodeScalarView(line)
            if s.last == "\r" { s.removeLast() }
            return String(s)
        }
        if out.last?.isEmpty == true { out.removeLast() }
        return out
    }
}

/// Lines read from a stream (stdin) as they arrive, by `TextFile`'s rules.
public struct LineReader {
    private let fd: Int32
    private let source: String
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEnd = false
    /// Lines returned so far (the next one's number minus one).
    public private(set) var lineNumber = 0

    public init(fd: Int32 = STDIN_FILENO, source: String = "stdin") {
        self.fd = fd
        self.source = source
    }

    /// The next line without its "\n" / "\r\n", or nil at the end of the stream.
    public mutating func next() throws -> String? {
        while true {
            if let nl = buffer[start...].firstIndex(of: 0x0A) {
                return try take(upTo: nl, next: nl + 1)
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                return try take(upTo: buffer.count, next: buffer.count)
            }
            if start > 0 { buffer.removeFirst(start); start = 0 }
            let old = buffer.count
            buffer.append(contentsOf: repeatElement(0, count: 65536))
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + old, 65536) }
            if n < 0 {
                if errno == EINTR { buffer.removeLast(65536); continue }
                throw LMError(.ioFailure, "cannot read \(source): \(String(cString: strerror(errno)))")
            }
            buffer.removeLast(65536 - n)
            if n == 0 { atEnd = true }
        }
    }

    /// The line in `start..<end` (a final "\r" dropped); reading goes on at `next` even when
    /// the line is not valid UTF-8 (the error names it, and the caller may skip it).
    private mutating func take(upTo end: Int, next: Int) throws -> String {
        var e = end
        if e > start, buffer[e - 1] == 0x0D { e -= 1 }
        lineNumber += 1
        let range = start..<e
        start = next
        return try buffer[range].withUnsafeBytes { try UTF8Text.decode($0, source: source, firstLine: lineNumber) }
    }
}
