import Foundation
import LMCore
import LMGeneration
import LMModels
import LMTestSupport
import LMTokenizers
import XCTest

/// A saved chat session (`s.json` and its KV cache `s.kv.safetensors`) that was damaged is
/// refused with one line naming the file — never a crash, never garbage keys and values.
final class ChatSaveCorruptionTests: XCTestCase {
    var shakespeareFolder: String { TestPaths.model("shakespeare") }
    var dir = ""

    override func setUpWithError() throws {
        dir = try TestPaths.temporaryDirectory("chat-corrupt")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func session(system: String? = "KING:") throws -> ChatSession {
        let model = try ModelRegistry.loadCausalLM(folder: shakespeareFolder)
        let tokenizer = try XCTUnwrap(try TokenizerLoader.find(inModelFolder: shakespeareFolder))
        var settings = ChatSettings()
        settings.maxTokens = 12
        settings.sampler.seed = 3
        settings.system = system
        return try ChatSession(model: model, tokenizer: tokenizer, settings: settings)
    }

    /// Saves a two-turn session as `<dir>/good/s.json` and returns the folder.
    func saved() throws -> String {
        let s = try session()
        try s.respond(to: "ROMEO:") { _ in }
        try s.respond(to: "What news?") { _ in }
        let folder = dir + "/good"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try s.save(to: folder + "/s.json")
        return folder
    }

    /// A copy of the saved pair in `<dir>/<name>/`, with `json` and `kv` changing its bytes.
    func variant(_ name: String, from good: String, json: ((inout [String: Any]) throws -> Void)? = nil,
                 jsonBytes: ((inout Data) -> Void)? = nil, kv: ((inout Data) throws -> Void)? = nil) throws -> String {
        let folder = dir + "/" + name
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var j = try Data(contentsOf: URL(fileURLWithPath: good + "/s.json"))
        if let json {
            var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: j) as? [String: Any])
            try json(&object)
            j = try JSONSerialization.data(withJSONObject: object)
        }
        jsonBytes?(&j)
        try j.write(to: URL(fileURLWithPath: folder + "/s.json"))
        var k = try Data(contentsOf: URL(fileURLWithPath: good + "/s.kv.safetensors"))
        try kv?(&k)
        try k.write(to: URL(fileURLWithPath: folder + "/s.kv.safetensors"))
        return folder + "/s.json"
    }

    /// Loading `path` throws a one-line corrupt-file error naming `names`, and the session is as it was.
    func expectRefused(_ path: String, naming name: String, _ words: String = "", line: UInt = #line) throws {
        let s = try session(system: nil)
        try s.respond(to: "JULIET:") { _ in }
        let tokens = s.tokens, turns = s.turns, history = s.generator.history, settings = s.settings
        XCTAssertThrowsError(try s.load(from: path), line: line) { error in
            guard let e = error as? LMError else { return XCTFail("not an LMError: \(error)", line: line) }
            XCTAssertEqual(e.kind, .corruptFile, e.message, line: line)
            XCTAssertTrue(e.message.contains(name), "should name \(name): \(e.message)", line: line)
            if !words.isEmpty { XCTAssertTrue(e.message.contains(words), "should say \(words): \(e.message)", line: line) }
            XCTAssertFalse(e.message.contains("\n"), e.message, line: line)
            XCTAssertTrue(e.message.contains(" — "), "a fix: \(e.message)", line: line)
        }
        XCTAssertEqual(s.tokens, tokens, line: line)
        XCTAssertEqual(s.turns, turns, line: line)
        XCTAssertEqual(s.generator.history, history, line: line)
        XCTAssertEqual(s.settings, settings, line: line)
        XCTAssertNoThrow(try s.respond(to: "More.") { _ in }, line: line)
    }

    /// The byte offset where a safetensors file's tensor data starts.
    func dataStart(_ kv: Data) -> Int {
        8 + Int(kv.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
    }

    /// The header of a safetensors file as a JSON object, and a setter writing one back.
    func header(_ kv: Data) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: kv.subdata(in: 8..<dataStart(kv))) as? [String: Any])
    }

    func replacingHeader(_ kv: Data, _ h: [String: Any]) throws -> Data {
        var json = try JSONSerialization.data(withJSONObject: h)
        while json.count % 8 != 0 { json.append(0x20) }
        var n = UInt64(json.count)
        return Data(bytes: &n, count: 8) + json + kv.subdata(in: dataStart(kv)..<kv.count)
    }

    func testTheGoodFileLoads() throws {
        let good = try saved()
        let s = try session(system: nil)
        XCTAssertEqual(try s.load(from: good + "/s.json"), [])
        XCTAssertEqual(s.turns.count, 2)
    }

    func testATruncatedKVCacheIsRefused() throws {
        let good = try saved()
        for (i, keep) in [0.5, 0.99, 0.01].enumerated() {
            let p = try variant("trunc\(i)", from: good, kv: { $0 = $0.prefix(Int(Double($0.count) * keep)) })
            try expectRefused(p, naming: "s.kv.safetensors")
        }
    }

    func testFlippedBytesInTheKVCacheAreRefused() throws {
        let good = try saved()
        // In the keys and values: still a well-formed file, but not what was saved.
        let data = try variant("data", from: good, kv: { kv in
            let at = kv.count - 37
            kv[at] ^= 0x40
        })
        try expectRefused(data, naming: "s.kv.safetensors", "checksum")
        let first = try variant("first", from: good, kv: { kv in
            let at = self.dataStart(kv) + 2
            kv[at] ^= 0x01
        })
        try expectRefused(first, naming: "s.kv.safetensors", "checksum")
        // In the header.
        let head = try variant("head", from: good, kv: { kv in kv[9] ^= 0xFF })
        try expectRefused(head, naming: "s.kv.safetensors")
    }

    func testWrongShapesAndHugeCountsInTheKVCacheAreRefused() throws {
        let good = try saved()
        // keys.0 reshaped (the same bytes as twice the rows of half the width).
        let reshaped = try variant("reshaped", from: good, kv: { kv in
            var h = try self.header(kv)
            var e = try XCTUnwrap(h["keys.0"] as? [String: Any])
            let shape = try XCTUnwrap(e["shape"] as? [Int])
            e["shape"] = [shape[0] * 2, shape[1] / 2]
            h["keys.0"] = e
            kv = try self.replacingHeader(kv, h)
        })
        try expectRefused(reshaped, naming: "s.kv.safetensors", "keys.0")
        // values.1 as f16 rows of the same bytes.
        let dtype = try variant("dtype", from: good, kv: { kv in
            var h = try self.header(kv)
            var e = try XCTUnwrap(h["values.1"] as? [String: Any])
            let shape = try XCTUnwrap(e["shape"] as? [Int])
            e["dtype"] = "F16"
            e["shape"] = [shape[0] * 2, shape[1]]
            h["values.1"] = e
            kv = try self.replacingHeader(kv, h)
        })
        try expectRefused(dtype, naming: "s.kv.safetensors", "values.1")
        // A layer missing.
        let missing = try variant("missing", from: good, kv: { kv in
            var h = try self.header(kv)
            h["keys.2"] = nil
            kv = try self.replacingHeader(kv, h)
        })
        try expectRefused(missing, naming: "s.kv.safetensors", "keys.2")
        // A huge row count.
        let huge = try variant("huge", from: good, kv: { kv in
            var h = try self.header(kv)
            var e = try XCTUnwrap(h["keys.0"] as? [String: Any])
            let shape = try XCTUnwrap(e["shape"] as? [Int])
            e["shape"] = [1 << 40, shape[1]]
            h["keys.0"] = e
            kv = try self.replacingHeader(kv, h)
        })
        try expectRefused(huge, naming: "s.kv.safetensors")
        // Fewer rows than the context holds (well-formed, the offsets shortened to match).
        let short = try variant("short", from: good, kv: { kv in
            var h = try self.header(kv)
            for l in 0..<4 {
                for name in ["keys.\(l)", "values.\(l)"] {
                    var e = try XCTUnwrap(h[name] as? [String: Any])
                    let shape = try XCTUnwrap(e["shape"] as? [Int])
                    let offsets = try XCTUnwrap(e["data_offsets"] as? [Int])
                    e["shape"] = [shape[0] - 1, shape[1]]
                    e["data_offsets"] = [offsets[0], offsets[1] - shape[1] * 4]
                    h[name] = e
                }
            }
            kv = try self.replacingHeader(kv, h)
        })
        try expectRefused(short, naming: "s.kv.safetensors")
    }

    func testHugeCountsAndWrongShapesInTheSessionAreRefused() throws {
        let good = try saved()
        func edit(_ name: String, _ f: @escaping (inout [String: Any]) throws -> Void) throws -> String {
            try variant(name, from: good, json: f)
        }
        func settings(_ key: String, _ value: Any) -> (inout [String: Any]) throws -> Void {
            { o in
                var s = try XCTUnwrap(o["settings"] as? [String: Any])
                var sampler = try XCTUnwrap(s["sampler"] as? [String: Any])
                if key == "max_tokens" { s[key] = value } else { sampler[key] = value }
                s["sampler"] = sampler
                o["settings"] = s
            }
        }
        func cache(_ key: String, _ value: Any) -> (inout [String: Any]) throws -> Void {
            { o in
                var c = try XCTUnwrap(o["cache"] as? [String: Any])
                c[key] = value
                o["cache"] = c
            }
        }
        let huge = 1_000_000_000_000_000
        for (name, f, words) in [
            ("repeat", settings("repeat_last_n", huge), "repeat"),
            ("maxtok", settings("max_tokens", huge), "max_tokens"),
            ("topk", settings("top_k", -huge), "top-k"),
            ("end", cache("end", huge), "cache offsets"),
            ("tail", cache("tail_start", -huge), "cache offsets"),
            ("keep", cache("keep", huge), "cache offsets"),
            ("system", { (o: inout [String: Any]) in o["system_tokens"] = huge }, "system_tokens"),
            ("tokens", { (o: inout [String: Any]) in o["tokens"] = [[1, 2]] }, "tokens"),
            ("turns", { (o: inout [String: Any]) in o["turns"] = ["start": 0] }, "turns"),
            ("rng", { (o: inout [String: Any]) in o["rng"] = ["1", "2"] }, "rng"),
            ("id", cache("id", 12), "id"),
        ] as [(String, (inout [String: Any]) throws -> Void, String)] {
            try expectRefused(try edit(name, f), naming: "s.json", words)
        }
        // A turn whose offsets run past the tokens.
        let turns = try edit("offsets") { o in
            var ts = try XCTUnwrap(o["turns"] as? [[String: Any]])
            ts[1]["end"] = huge
            o["turns"] = ts
        }
        try expectRefused(turns, naming: "s.json", "turn offsets")
    }

    func testATruncatedOrFlippedSessionFileIsRefused() throws {
        let good = try saved()
        for (i, keep) in [0.5, 0.9, 0.0].enumerated() {
            try expectRefused(try variant("cut\(i)", from: good, jsonBytes: { $0 = $0.prefix(Int(Double($0.count) * keep)) }),
                              naming: "s.json")
        }
        // A token of the cached window changed to another valid id: the keys and values no
        // longer belong to the tokens.
        let token = try variant("token", from: good, json: { o in
            var ids = try XCTUnwrap(o["tokens"] as? [Int])
            let last = ids.count - 2
            ids[last] = ids[last] == 1 ? 2 : 1
            o["tokens"] = ids
        })
        try expectRefused(token, naming: "s.kv.safetensors", "checksum")
    }

    /// Files written before the checksum existed still load; a KV file of another save (a
    /// stale pair) is not corrupt: the context is encoded again, as when it is missing.
    func testOldFilesAndStalePairsStillLoad() throws {
        let good = try saved()
        let old = try variant("old", from: good, json: { o in
            var c = try XCTUnwrap(o["cache"] as? [String: Any])
            c["checksum"] = nil
            o["cache"] = c
        })
        let s = try session(system: nil)
        XCTAssertEqual(try s.load(from: old), [])
        XCTAssertEqual(s.turns.count, 2)

        let other = try session()
        try other.respond(to: "HAMLET:") { _ in }
        try FileManager.default.createDirectory(atPath: dir + "/other", withIntermediateDirectories: true)
        try other.save(to: dir + "/other/s.json")
        let stale = try variant("stale", from: good)
        try FileManager.default.removeItem(atPath: dir + "/stale/s.kv.safetensors")
        try FileManager.default.copyItem(atPath: dir + "/other/s.kv.safetensors", toPath: dir + "/stale/s.kv.safetensors")
        let notes = try s.load(from: stale)
        XCTAssertEqual(notes.count, 1)
        XCTAssertTrue(notes.first?.contains("another save") ?? false, "\(notes)")
        XCTAssertEqual(s.turns.count, 2)
    }
}
