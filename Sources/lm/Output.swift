import Foundation

/// Standard output, checked. Every write of every command goes through here — `print` below
/// shadows the standard library's inside this module — so a failed write (a full disk, a
/// broken file system) stops the command with one line and exit status 1 instead of losing
/// the rest of its output behind exit 0, and a closed pipe (`lm … | head`) ends it quietly,
/// as it ends `cat`.
enum StandardOutput {
    /// Exit status after a closed pipe: what a shell reports for a process killed by SIGPIPE.
    static let brokenPipeStatus: Int32 = 128 + SIGPIPE

    /// Stops on a failed write; the SIGPIPE signal is ignored (in `LM.main`) so a closed pipe
    /// is the EPIPE error seen here.
    static func check(_ failed: Bool) {
        guard failed || ferror(stdout) != 0 else { return }
        let code = errno
        if code == EPIPE { Foundation.exit(brokenPipeStatus) }
        let reason = code == 0 ? "write error" : String(cString: strerror(code))
        FileHandle.standardError.write(Data("error: cannot write the output: \(reason) — free some disk space or write elsewhere\n".utf8))
        Foundation.exit(1)
    }

    static func write(_ s: String) {
        check(fputs(s, stdout) == EOF)
    }

    /// Pushes buffered output out now (after each batch of results, a streamed token, and at exit).
    static func flush() {
        check(fflush(stdout) != 0)
    }
}

/// `Swift.print` for this module, through the checked standard output.
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    StandardOutput.write(items.map { "\($0)" }.joined(separator: separator) + terminator)
}

/// Writes to stdout without buffering (streamed tokens).
func writeOut(_ s: String) {
    StandardOutput.write(s)
    StandardOutput.flush()
}
