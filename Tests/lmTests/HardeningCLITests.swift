import Foundation
import LMTestSupport
import XCTest

/// What the hostile-input sweep found (the hardening issue), through the real binary: output
/// that cannot be written, folders two runs share, outputs over models, CRLF and blank lines,
/// negative option values, and the misleading messages.
final class HardeningCLITests: XCTestCase {
    var dir = ""
    var lm: String { TestPaths.lmBinary }
    var sentiment: String { TestPaths.model("sentiment") }
    var shakespeare: String { TestPaths.model("shakespeare") }

    override func setUpWithError() throws { dir = try TestPaths.temporaryDirectory("hardening-cli") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ name: String, _ text: String) throws -> String {
        let path = dir + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Runs `lm` with stdout sent to `stdoutPath` (such as /dev/full).
    func runWithStdout(_ args: [String], to stdoutPath: String, stdin: String = "") throws -> ProcessResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: lm)
        p.arguments = args
        let out = try XCTUnwrap(FileHandle(forWritingAtPath: stdoutPath))
        let err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        inp.fileHandleForWriting.write(Data(stdin.utf8))
        try inp.fileHandleForWriting.close()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return ProcessResult(status: p.terminationStatus, stdout: "", stderr: String(decoding: e, as: UTF8.self))
    }

    // MARK: 1. Writes to stdout are checked

    func testEveryCommandFailsWhenItsOutputCannotBeWritten() throws {
        let lines = try write("lines.txt", (1...100).map { "line \($0) is quite good" }.joined(separator: "\n") + "\n")
        let corpus = try write("corpus.txt", String(repeating: "To be, or not to be, that is the question.\n", count: 60))
        let tsv = try write("dev.tsv", "sentence\tlabel\n" + (1...20).map { "film \($0) was \($0 % 2 == 0 ? "great" : "awful")\t\($0 % 2)" }.joined(separator: "\n"))
        let cases: [([String], String)] = [
            (["classify", "--file", lines, "--batch", "8"], ""),
            (["classify", "--json", "a fine film"], ""),
            (["embed", "--model", sentiment, "--file", lines], ""),
            (["generate", "--prompt", "ROMEO:", "--max-tokens", "20", "--seed", "1"], ""),
            (["tokenize", "--tokenizer", shakespeare, "--lines"], "hello\nthere\n"),
            (["chat", "--max-tokens", "8", "--seed", "1"], "hello\n"),
            (["eval", "--model", shakespeare, "--corpus", corpus, "--context", "32"], ""),
            (["eval", "--model", sentiment, "--tsv", tsv], ""),
            (["inspect", shakespeare], ""),
        ]
        for (args, stdin) in cases {
            let r = try runWithStdout(args, to: "/dev/full", stdin: stdin)
            XCTAssertEqual(r.status, 1, "lm \(args.joined(separator: " ")) > /dev/full: \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("cannot write the output: No space left on device"), "\(args): \(r.stderr)")
        }
    }

    func testAClosedPipeEndsTheCommandQuietly() throws {
        signal(SIGPIPE, SIG_IGN)  // this test process writes into a pipe whose reader may be gone
        let p = Process()
        p.executableURL = URL(fileURLWithPath: lm)
        p.arguments = ["tokenize", "--tokenizer", shakespeare, "--lines"]
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        let input = Array(String(repeating: "the quick brown fox\n", count: 200_000).utf8)
        let writer = Thread {
            let fd = inp.fileHandleForWriting.fileDescriptor
            var done = 0
            while done < input.count {
                let n = input.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, input.count - done) }
                if n <= 0 { break }
                done += n
            }
            try? inp.fileHandleForWriting.close()
        }
        writer.start()
        // `lm … | head -c 10`: the reader takes a little and goes away.
        _ = out.fileHandleForReading.readData(ofLength: 10)
        try out.fileHandleForReading.close()
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 141, "128 + SIGPIPE, as a shell reports for `cat`; stderr: \(e)")
        XCTAssertEqual(e, "", "nothing to say about a reader that left")
    }

    // MARK: 2. One process per output folder

    func testTwoRunsNeverShareAnOutputFolder() throws {
        let corpus = try TestPaths.sharedFile("data/tinyshakespeare/input.txt")
        let out = dir + "/run"
        let first = Process()
        first.executableURL = URL(fileURLWithPath: lm)
        first.arguments = ["train", "--corpus", corpus, "--preset", "nano", "--steps", "100000", "--out", out, "--threads", "1"]
        first.standardOutput = FileHandle.nullDevice
        first.standardError = FileHandle.nullDevice
        try first.run()
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL); first.waitUntilExit() } }
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: out + "/checkpoint.safetensors") && Date() < deadline { usleep(50_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/checkpoint.safetensors"), "the first run wrote a checkpoint")

        for extra in [[], ["--resume"], ["--overwrite"]] {
            let second = try runProcess(lm, ["train", "--corpus", corpus, "--preset", "nano", "--steps", "10", "--out", out] + extra)
            XCTAssertNotEqual(second.status, 0, "\(extra)")
            XCTAssertTrue(second.stderr.contains("--out '\(out)' is in use by another lm process (pid \(first.processIdentifier))"), second.stderr)
        }
        let quantize = try runProcess(lm, ["quantize", "--model", shakespeare, "--out", out])
        XCTAssertTrue(quantize.stderr.contains("is in use by another lm process"), quantize.stderr)

        // kill -9 leaves no stale lock: the run resumes at once.
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let resumed = try runProcess(lm, ["train", "--corpus", corpus, "--out", out, "--resume", "--steps", "1"])
        XCTAssertTrue(resumed.status == 0 || resumed.stderr.contains("below the"), resumed.stderr)
        XCTAssertFalse(resumed.stderr.contains("in use"), resumed.stderr)
    }

    // MARK: 3. --out never overwrites a model the command did not make

    func testOutputNeverReplacesAModelUnlessAskedTo() throws {
        let model = dir + "/shakespeare"
        try FileManager.default.copyItem(atPath: shakespeare, toPath: model)
        let weights = try Data(contentsOf: URL(fileURLWithPath: model + "/model.safetensors"))
        let corpus = try TestPaths.sharedFile("data/tinyshakespeare/input.txt")
        let refused: [[String]] = [
            ["train", "--corpus", corpus, "--preset", "nano", "--steps", "2", "--out", model],
            ["finetune", "--model", model, "--corpus", corpus, "--steps", "2", "--out", model],
            ["finetune", "--model", model, "--corpus", corpus, "--steps", "2", "--out", model + "/../shakespeare", "--overwrite"],
            ["quantize", "--model", model, "--out", model],
            ["quantize", "--model", model, "--out", model, "--overwrite"],
            ["finetune", "--task", "classify", "--model", sentiment, "--train", "x.tsv", "--dev", "x.tsv", "--out", sentiment],
        ]
        for args in refused {
            let r = try runProcess(lm, args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.stderr.contains("did not make") || r.stderr.contains("is the model"), "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "one line: \(r.stderr)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: model + "/model.safetensors")), weights, "the model is untouched")

        // A quantized copy, then the same --out again: refused, then replaced with --overwrite.
        let q = dir + "/q"
        XCTAssertEqual(try runProcess(lm, ["quantize", "--model", model, "--out", q]).status, 0)
        let again = try runProcess(lm, ["quantize", "--model", model, "--out", q])
        XCTAssertTrue(again.stderr.contains("already holds a model that lm quantize did not make"), again.stderr)
        XCTAssertEqual(try runProcess(lm, ["quantize", "--model", model, "--out", q, "--overwrite"]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: q + "/.lm-lock"), "the lock file goes with the process")

        // --overwrite starts a new run over a model folder.
        let r = try runProcess(lm, ["train", "--corpus", corpus, "--preset", "nano", "--steps", "2", "--out", model, "--overwrite"])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    // MARK: 4 and 5. CRLF files, blank lines

    func testCRLFFilesReadLikeLFFiles() throws {
        let lf = try write("lf.txt", "a wonderful film\nan awful, boring mess\nfine")
        let crlf = try write("crlf.txt", "a wonderful film\r\nan awful, boring mess\r\nfine\r\n")
        for command in [["classify", "--json"], ["embed", "--model", sentiment, "--json"]] {
            let a = try runProcess(lm, command + ["--file", lf]), b = try runProcess(lm, command + ["--file", crlf])
            XCTAssertEqual(a.status, 0, a.stderr)
            XCTAssertEqual(b.status, 0, b.stderr)
            XCTAssertEqual(b.stdout.split(separator: "\n").count, 3, "three texts: \(b.stdout.prefix(300))")
            XCTAssertEqual(a.stdout, b.stdout)
            let viaStdin = try runProcess(lm, command, stdin: "a wonderful film\r\nan awful, boring mess\r\nfine\r\n")
            XCTAssertEqual(viaStdin.stdout, a.stdout)
        }
        let tsv = try write("dev.tsv", "sentence\tlabel\r\nwhat a great film\t1\r\na dull mess\t0\r\n")
        let e = try runProcess(lm, ["eval", "--model", sentiment, "--tsv", tsv, "--json"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertEqual(try lastJSON(e)["accuracy"] as? Double, 1.0, e.stdout)
        let t1 = try runProcess(lm, ["tokenize", "--tokenizer", shakespeare, "--lines"], stdin: "to be\r\nor not\r\n")
        let t2 = try runProcess(lm, ["tokenize", "--tokenizer", shakespeare, "--lines"], stdin: "to be\nor not")
        XCTAssertEqual(t1.status, 0, t1.stderr)
        XCTAssertEqual(t1.stdout, t2.stdout)
    }

    func testBlankLinesGiveOneErrorEachAndTheRestIsClassified() throws {
        let file = try write("blank.txt", "a wonderful film\n\n\n   \n\nawful\n\nfine\n")
        let r = try runProcess(lm, ["classify", "--json", "--batch", "2", "--file", file])
        XCTAssertEqual(r.status, 0, r.stderr)
        let objects = try r.stdout.split(separator: "\n").map { try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(objects.count, 8, "one JSON value per input line: \(r.stdout)")
        guard objects.count == 8 else { return }
        XCTAssertEqual(objects.map { $0["error"] == nil }, [true, false, false, false, false, true, false, true])
        XCTAssertEqual(objects[1]["error"] as? String, "line 2: empty line — nothing to classify")
        XCTAssertEqual(objects[5]["label"] as? String, "negative")
    }

    // MARK: 8. Negative option values

    func testNegativeNumbersReachTheRangeChecks() throws {
        for (args, expected) in [(["generate", "--temperature", "-1", "--max-tokens", "2"], "--temperature -1.0 is out of range"),
                                 (["generate", "--top-p", "-0.5", "--max-tokens", "2"], "--top-p"),
                                 (["classify", "--batch", "-3", "good"], "--batch must be ≥ 1"),
                                 (["generate", "--threads", "-2"], "--threads -2 is out of range")] {
            let r = try runProcess(lm, args)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains(expected), "\(args): \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("Missing value"), r.stderr)
        }
    }

    // MARK: 10. Messages that name the real problem

    func testMisleadingMessagesNameTheRealProblem() throws {
        let folder = dir + "/folder"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let cases: [([String], String)] = [
            (["classify", "--file", folder], "--file '\(folder)' is a folder — give a text file"),
            (["embed", "--model", sentiment, "--file", folder], "is a folder"),
            (["eval", "--model", sentiment, "--tsv", folder], "is a folder"),
            (["train", "--corpus", folder, "--preset", "nano", "--out", dir + "/r"], "corpus '\(folder)' is a folder"),
            (["help", "bogus"], "'bogus' is not a command of 'lm'"),
            (["classify", "--file", folder, "some text"], "give TEXT arguments or --file, not both"),
            (["classify", "--eval", folder, "--file", folder], "--eval scores a labelled TSV on its own"),
        ]
        for (args, expected) in cases {
            let r = try runProcess(lm, args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.stderr.contains(expected), "\(args): \(r.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/r"), "a refused run leaves no folder behind")
    }

    func testInvalidUTF8IsRefusedByEveryCommandThatReadsText() throws {
        var bytes = Data("a fine film\n".utf8)
        bytes.append(contentsOf: [0x62, 0xE9, 0x62, 0x0A])
        let path = dir + "/latin1.txt"
        try bytes.write(to: URL(fileURLWithPath: path))
        for args in [["classify", "--file", path], ["embed", "--model", sentiment, "--file", path]] {
            let r = try runProcess(lm, args)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("is not valid UTF-8: byte 0xE9") && r.stderr.contains("(line 2)"), r.stderr)
        }
        for args in [["classify"], ["tokenize", "--tokenizer", shakespeare], ["chat", "--max-tokens", "3"]] {
            let r = try runProcess(lm, args, stdinBytes: bytes)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("stdin is not valid UTF-8: byte 0xE9"), r.stderr)
        }
        // Arguments: one rule for every command (Swift would have put U+FFFD in their place).
        for args in [["generate", "--prompt"], ["classify"], ["embed", "--model", sentiment]] {
            let r = try runLatin1Argument(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.stderr.contains("is not valid UTF-8: byte 0xE9"), "\(args): \(r.stderr)")
        }
    }

    /// Runs `lm ARGS… b<0xE9>b` with the raw byte in the last argument (through /bin/sh and printf,
    /// since Process passes Swift Strings, which cannot hold invalid UTF-8).
    func runLatin1Argument(_ args: [String]) throws -> ProcessResult {
        let quoted = ([lm] + args).map { "'" + $0 + "'" }.joined(separator: " ")
        return try runProcess("/bin/sh", ["-c", quoted + " \"$(printf 'b\\351b')\""])
    }

    func testPipedChatReportsFailedLinesWithItsExitStatus() throws {
        let r = try runProcess(lm, ["chat", "--max-tokens", "3", "--seed", "1"], stdin: "/model \(TestPaths.model("gpt2-tiny"))\n/show everything\nhello\n")
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("/model shows what is loaded — to chat with"), r.stderr)
        XCTAssertTrue(r.stderr.contains("/show takes no arguments"), r.stderr)
        XCTAssertTrue(r.stderr.contains("2 of the piped lines failed"), r.stderr)
        XCTAssertFalse(r.stdout.isEmpty, "the good line was still answered")
        let ok = try runProcess(lm, ["chat", "--max-tokens", "3", "--seed", "1"], stdin: "hello\n/model\n")
        XCTAssertEqual(ok.status, 0, ok.stderr)
    }

    func testConfigAndCorpusProblemsAreNamed() throws {
        let model = dir + "/frac"
        try FileManager.default.copyItem(atPath: shakespeare, toPath: model)
        let config = try String(contentsOfFile: model + "/config.json", encoding: .utf8)
        try config.replacingOccurrences(of: "\"n_embd\": 128", with: "\"n_embd\": 64.5")
            .replacingOccurrences(of: "\"n_embd\" : 128", with: "\"n_embd\" : 64.5")
            .write(toFile: model + "/config.json", atomically: true, encoding: .utf8)
        let small = try write("small.txt", String(try String(contentsOfFile: try TestPaths.sharedFile("data/tinyshakespeare/input.txt"), encoding: .utf8).prefix(20_000)))
        let long = try write("long.txt", String(repeating: "word ", count: 2_000))
        let cases: [([String], String)] = [
            (["generate", "--model", model, "--prompt", "a"], "\"n_embd\" is 64.5 — it must be a whole number"),
            (["train", "--corpus", long, "--tokenizer", "spm:300", "--preset", "nano", "--out", dir + "/a"],
             "longer than its 4192-byte limit — break the text into lines"),
            (["train", "--corpus", small, "--tokenizer", "spm:100000", "--preset", "nano", "--out", dir + "/b"],
             "use --tokenizer spm:"),
            (["eval", "--model", shakespeare, "--corpus", small, "--context", "100000"],
             "--context 100000 exceeds the model's 64 positions — use --context 64 or less"),
            (["quantize", "--model", shakespeare, "--out", dir + "/q", "--report", "--corpus", small, "--context", "1000"],
             "--context 1000 exceeds the model's 64 positions"),
            (["forward", "--model", TestPaths.model("gpt2-tiny"), "--ids", "1,,2", "--out", dir + "/l.safetensors"],
             "--ids: id 2 of '1,,2' is empty"),
            (["forward", "--model", TestPaths.model("gpt2-tiny"), "--ids", "1", "--out", dir], "is a folder — give a file name"),
            (["help", "train", "bogus"], "'lm train' has no subcommand 'bogus'"),
        ]
        for (args, expected) in cases {
            let r = try runProcess(lm, args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.stderr.contains(expected), "\(args): \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("--vocab-size"), "lm train has no --vocab-size: \(r.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/q"), "quantize --report checks its data before it writes")
        XCTAssertTrue(try runProcess(lm, ["forward", "--model", TestPaths.model("gpt2-tiny"), "--ids", "1, 2,3", "--out", dir + "/l.safetensors"]).status == 0)
    }

    func testResumeRefusesAnotherCorpusAndADamagedCheckpointAndCleansLeftovers() throws {
        let full = try String(contentsOfFile: try TestPaths.sharedFile("data/tinyshakespeare/input.txt"), encoding: .utf8)
        let a = try write("a.txt", String(full.prefix(30_000))), b = try write("b.txt", String(full.suffix(30_000)))
        let run = dir + "/run"
        let first = try runProcess(lm, ["train", "--corpus", a, "--preset", "nano", "--steps", "4", "--out", run, "--threads", "1"])
        XCTAssertEqual(first.status, 0, first.stderr)
        // Another corpus: refused. The same one under another name: accepted.
        let other = try runProcess(lm, ["train", "--corpus", b, "--out", run, "--resume", "--steps", "6"])
        XCTAssertTrue(other.stderr.contains("is not the corpus this run trained on"), other.stderr)
        let moved = dir + "/moved.txt"
        try FileManager.default.copyItem(atPath: a, toPath: moved)
        // A temporary file a killed save left behind goes when the folder is taken again.
        try Data("partial".utf8).write(to: URL(fileURLWithPath: run + "/checkpoint.safetensors.tmp-999999"))
        let same = try runProcess(lm, ["train", "--corpus", moved, "--out", run, "--resume", "--steps", "6", "--threads", "1"])
        XCTAssertEqual(same.status, 0, same.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/checkpoint.safetensors.tmp-999999"))

        // NaN in the checkpoint's parameters: damaged, not "diverged".
        let path = run + "/checkpoint.safetensors"
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: path))
        let header = try XCTUnwrap(handle.readData(ofLength: 8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        try handle.seek(toOffset: 8 + header + 64)
        handle.write(Data([0xFF, 0xFF, 0xFF, 0xFF]))
        try handle.close()
        let damaged = try runProcess(lm, ["train", "--corpus", a, "--out", run, "--resume", "--steps", "8"])
        XCTAssertNotEqual(damaged.status, 0)
        XCTAssertTrue(damaged.stderr.contains("is damaged") && !damaged.stderr.contains("diverged"), damaged.stderr)
    }

    func testAClassifierRunThatDivergesBeforeItsFirstEvaluationSaysNoModelWasSaved() throws {
        let lines = try String(contentsOfFile: try TestPaths.sharedFile("data/sst2/train.tsv"), encoding: .utf8).split(separator: "\n")
        let tsv = try write("t.tsv", lines.prefix(40).joined(separator: "\n") + "\n")
        let out = dir + "/ft"
        let r = try runProcess(lm, ["finetune", "--task", "classify", "--model", try TestPaths.miniLM(), "--train", tsv, "--dev", tsv,
                                    "--lr", "1e10", "--batch", "8", "--max-length", "32", "--out", out])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("training diverged") && r.stderr.contains("no model was saved yet"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model.safetensors"))
        // A quantized folder is not a starting point: its int8 tensors would start from random values.
        let q = try runProcess(lm, ["finetune", "--task", "classify", "--model", sentiment, "--train", tsv, "--dev", tsv, "--out", dir + "/q"])
        XCTAssertTrue(q.stderr.contains("is quantized (int8) — lm finetune trains float weights"), q.stderr)
    }

    func testAnUnreadableConfigIsNamedAsUnreadable() throws {
        let model = dir + "/unreadable"
        try FileManager.default.copyItem(atPath: shakespeare, toPath: model)
        chmod(model + "/config.json", 0)
        // root reads any file: run as nobody then (setpriv, from util-linux).
        let asRoot = getuid() == 0
        guard !asRoot || FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { throw XCTSkip("needs setpriv to drop root") }
        chmod(dir, 0o755)
        let args = ["generate", "--model", model, "--prompt", "a"]
        let r = asRoot ? try runProcess("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", lm] + args)
                       : try runProcess(lm, args)
        if r.stderr.hasPrefix("setpriv:") { throw XCTSkip("nobody cannot run \(lm): \(r.stderr)") }
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("config.json' cannot be read: Permission denied — check its permissions"), r.stderr)
    }
}
