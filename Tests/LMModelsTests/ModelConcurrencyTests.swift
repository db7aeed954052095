import Foundation
import LMCore
import LMModels
import LMTestSupport
import XCTest

/// Models are `Sendable`: `forward` (and `shiftCache`) may be called from several threads at
/// once, each with its own cache, and give exactly the numbers of serial calls.
final class ModelConcurrencyTests: XCTestCase {
    /// Runs `body(0..<n)` on `n` threads of their own at once and waits for all of them.
    func onThreads(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let done = DispatchGroup()
        for t in 0..<n {
            done.enter()
            let thread = Thread { body(t); done.leave() }
            thread.stackSize = 8 << 20
            thread.start()
        }
        done.wait()
    }

    /// Every output of `n` threads, by thread and step, collected under a lock.
    final class Outputs: @unchecked Sendable {
        private let lock = NSLock()
        private var rows: [[[Float]]]
        init(threads: Int) { rows = Array(repeating: [], count: threads) }
        func append(_ t: Int, _ x: [Float]) { lock.lock(); rows[t].append(x); lock.unlock() }
        var all: [[[Float]]] { lock.lock(); defer { lock.unlock() }; return rows }
    }

    /// What thread `t` does in round `round`: a prompt, a few decode steps (with all the logits of
    /// the prompt for some rounds, the last row for others), and for models that can, a context
    /// shift in the middle. Returns every logits vector it saw.
    static func session(_ model: any CausalLanguageModel, thread t: Int, round: Int) throws -> [[Float]] {
        let V = model.vocabularySize
        let cache = model.makeCache(capacity: 64)
        let prompt = (0..<(3 + (t * 7 + round) % 11)).map { (t * 131 + round * 17 + $0 * 29) % V }
        var out = [try model.forward(tokens: prompt, cache: cache, allLogits: round % 3 == 0)]
        for step in 0..<6 {
            if step == 3, model.canShiftCache {
                XCTAssertTrue(model.shiftCache(cache, removing: 1..<3))
            }
            out.append(try model.forward(tokens: [(t * 53 + round * 11 + step * 7) % V], cache: cache))
        }
        return out
    }

    /// `threads` threads × `rounds` sessions at once; each session's logits equal the serial run's.
    func assertConcurrentEqualsSerial(_ model: any CausalLanguageModel, threads: Int, rounds: Int,
                                      file: StaticString = #filePath, line: UInt = #line) throws {
        var serial: [[[Float]]] = []
        for t in 0..<threads {
            serial.append(try (0..<rounds).flatMap { try Self.session(model, thread: t, round: $0) })
        }
        let outputs = Outputs(threads: threads)
        let errors = Outputs(threads: 1)
        nonisolated(unsafe) let shared = model
        onThreads(threads) { t in
            for round in 0..<rounds {
                do {
                    for x in try Self.session(shared, thread: t, round: round) { outputs.append(t, x) }
                } catch {
                    errors.append(0, [])
                }
            }
        }
        XCTAssertEqual(errors.all[0].count, 0, "forward threw", file: file, line: line)
        let got = outputs.all
        var wrong = 0
        for t in 0..<threads {
            XCTAssertEqual(got[t].count, serial[t].count, "thread \(t)", file: file, line: line)
            for (a, b) in zip(got[t], serial[t]) where a != b { wrong += 1 }
        }
        XCTAssertEqual(wrong, 0, "\(wrong) of \(threads * serial[0].count) logits vectors differ from the serial run", file: file, line: line)
    }

    func testGPT2ForwardFromManyThreadsEqualsSerial() throws {
        let model = try ModelRegistry.loadCausalLM(folder: TestPaths.model("gpt2-tiny"), pool: ThreadPool(threads: 2))
        try assertConcurrentEqualsSerial(model, threads: 4, rounds: 50)
    }

    func testGemma3ForwardAndShiftFromManyThreadsEqualsSerial() throws {
        let path = try TestPaths.checkedIn("LMModelsTests", "gemma3-tiny/tiny-f32.gguf")
        let model = try ModelRegistry.loadCausalLM(try ModelFile(path: path),
                                                   options: ModelLoadOptions(pool: ThreadPool(threads: 2), maxBatch: 4))
        try assertConcurrentEqualsSerial(model, threads: 4, rounds: 20)
    }

    /// The buffer `forward` returns stays the caller's while other threads run the model: each
    /// thread reads its logits only after every thread has called `forward`.
    func testReturnedLogitsBufferIsTheCallingThreads() throws {
        let model = try ModelRegistry.loadCausalLM(folder: TestPaths.model("gpt2-tiny"), pool: ThreadPool(threads: 2))
        let threads = 4
        let inputs = (0..<threads).map { t in (0..<(2 + t)).map { Int32((t * 97 + $0 * 13) % 1000) } }
        let expected = try inputs.map { try model.forward(tokens: $0.map(Int.init), cache: model.makeCache()) }
        let outputs = Outputs(threads: threads)
        let arrived = DispatchGroup()
        let go = DispatchSemaphore(value: 0)
        for _ in 0..<threads { arrived.enter() }
        nonisolated(unsafe) let shared = model
        let waiter = Thread { arrived.wait(); for _ in 0..<threads { go.signal() } }
        waiter.start()
        onThreads(threads) { t in
            let logits = try? inputs[t].withUnsafeBufferPointer {
                try shared.forward(tokens: $0, cache: shared.makeCache(), allLogits: false)
            }
            arrived.leave()
            go.wait()
            outputs.append(t, logits.map { Array($0) } ?? [])
        }
        XCTAssertEqual(outputs.all.map { $0[0] }, expected)
    }
}
