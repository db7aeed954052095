import Foundation
import LMCore
import LMTestSupport
import XCTest

/// The one way text is read (TextFile, LineReader, UTF8Text) and the output-folder guards
/// (FolderLock, OutputFolder).
final class TextFileAndFolderLockTests: XCTestCase {
    var dir = ""
    override func setUpWithError() throws { dir = try TestPaths.temporaryDirectory("textfile") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testLinesEndInLFOrCRLFAndALastLineNeedsNoNewline() {
        XCTAssertEqual(TextFile.lines(of: "a\r\nb\r\nc\r\n"), ["a", "b", "c"])
        XCTAssertEqual(TextFile.lines(of: "a\nb\nc"), ["a", "b", "c"])
        XCTAssertEqual(TextFile.lines(of: "a\r\n\r\n\nb"), ["a", "", "", "b"])
        XCTAssertEqual(TextFile.lines(of: "é\r\nü"), ["é", "ü"])
        XCTAssertEqual(TextFile.lines(of: ""), [])
        XCTAssertEqual(TextFile.lines(of: "\n"), [""])
        // Swift's own split misses CRLF: "\r\n" is one Character.
        XCTAssertEqual("a\r\nb".split(separator: "\n").count, 1)
    }

    func testReadNamesFoldersMissingFilesAndInvalidUTF8() throws {
        XCTAssertThrowsError(try TextFile.read(dir, what: "--file", expecting: "a text file")) {
            XCTAssertEqual(($0 as? LMError)?.message, "--file '\(dir)' is a folder — give a text file")
        }
        XCTAssertThrowsError(try TextFile.read(dir + "/none", what: "corpus", expecting: "a text file")) {
            XCTAssertEqual(($0 as? LMError)?.message, "corpus '\(dir)/none' does not exist — give a text file")
        }
        let path = dir + "/bad.txt"
        try Data([0x61, 0x0A, 0x62, 0xC3, 0x28, 0x0A]).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try TextFile.readLines(path, what: "--file", expecting: "a text file")) {
            XCTAssertTrue(($0 as? LMError)?.message.contains("is not valid UTF-8: byte 0xC3 at offset 3 (line 2)") == true, "\($0)")
        }
    }

    func testLineReaderStreamsCRLFLinesAndSkipsPastAnInvalidOne() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let bytes: [UInt8] = Array("one\r\ntwo\n".utf8) + [0xFF, 0x0A] + Array("four".utf8)
        _ = bytes.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
        close(fds[1])
        var reader = LineReader(fd: fds[0], source: "stdin")
        XCTAssertEqual(try reader.next(), "one")
        XCTAssertEqual(try reader.next(), "two")
        XCTAssertThrowsError(try reader.next()) { XCTAssertTrue("\($0)".contains("(line 3)"), "\($0)") }
        XCTAssertEqual(try reader.next(), "four")
        XCTAssertNil(try reader.next())
        close(fds[0])
    }

    func testAFolderHasOneWriterAndTheLockGoesWithIt() throws {
        let out = dir + "/run"
        var first: FolderLock? = try FolderLock(folder: out)
        XCTAssertTrue(FileIO.isDirectory(out))
        XCTAssertThrowsError(try FolderLock(folder: out)) {
            XCTAssertEqual(($0 as? LMError)?.message, "--out '\(out)' is in use by another lm process (pid \(getpid())) — wait for it to finish, or choose another --out")
        }
        try Data("x".utf8).write(to: URL(fileURLWithPath: out + "/kept.txt"))
        first = nil
        XCTAssertFalse(FileIO.exists(out + "/.lm-lock"))
        // Taken again: temporary files of writes a killed process left are removed.
        try Data("partial".utf8).write(to: URL(fileURLWithPath: out + "/checkpoint.safetensors.tmp-424242"))
        let second = try FolderLock(folder: out)
        XCTAssertFalse(FileIO.exists(out + "/checkpoint.safetensors.tmp-424242"))
        XCTAssertTrue(FileIO.exists(out + "/kept.txt"))
        _ = second
        _ = first
    }

    func testAFolderTheLockCreatedGoesWhenNothingWasWritten() throws {
        let out = dir + "/fresh"
        do { _ = try FolderLock(folder: out) }
        XCTAssertFalse(FileIO.exists(out), "a refused or failed command leaves no empty folder")
    }

    func testOutputFolderRefusesTheInputAndForeignModels() throws {
        let model = dir + "/model"
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: model + "/config.json"))
        XCTAssertThrowsError(try OutputFolder.check(model + "/../model", input: model, overwrite: true, command: "lm quantize")) {
            XCTAssertTrue("\($0)".contains("is the model lm quantize reads"), "\($0)")
        }
        XCTAssertThrowsError(try OutputFolder.check(model, input: nil, overwrite: false, command: "lm train")) {
            XCTAssertTrue("\($0)".contains("already holds a model that lm train did not make"), "\($0)")
        }
        XCTAssertNoThrow(try OutputFolder.check(model, input: nil, overwrite: true, command: "lm train"))
        XCTAssertNoThrow(try OutputFolder.check(model, input: nil, overwrite: false, command: "lm train", isOwn: { _ in true }))
        XCTAssertNoThrow(try OutputFolder.check(dir + "/new", input: model, overwrite: false, command: "lm train"))
    }

    func testStaleTemporariesOfDeadWritersAreRemoved() throws {
        let path = dir + "/f.json"
        let stale = path + ".tmp-999999", live = path + ".tmp-\(getppid())"
        try Data("a".utf8).write(to: URL(fileURLWithPath: stale))
        try Data("b".utf8).write(to: URL(fileURLWithPath: live))
        try FileIO.writeString("{}", to: path)
        XCTAssertFalse(FileIO.exists(stale), "pid 999999 is not running")
        XCTAssertTrue(FileIO.exists(live), "a running process may still be writing its own")
    }

    func testAnAtomicWriteToADeviceWritesInPlaceAndNeverReplacesIt() throws {
        var st = stat()
        guard stat("/dev/null", &st) == 0, (st.st_mode & S_IFMT) == S_IFCHR else { throw XCTSkip("no /dev/null device") }
        try FileIO.writeString("logits", to: "/dev/null")
        XCTAssertEqual(stat("/dev/null", &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFCHR, "/dev/null is still a device (a rename over it would make it a file)")
        XCTAssertThrowsError(try FileIO.writeString("x", to: dir)) { XCTAssertTrue("\($0)".contains("is a folder"), "\($0)") }
    }
}
