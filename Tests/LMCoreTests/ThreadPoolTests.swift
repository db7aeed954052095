import Foundation
import LMCore
import Synchronization
import XCTest

/// The pool's contract: `run` runs every index exactly once (on its worker, or on the caller
/// when the worker is late), `forEachPiece` every piece exactly once, whatever the schedule —
/// also with the cores busy with other threads.
final class ThreadPoolTests: XCTestCase {
    final class Counter: Sendable { let v = Atomic<Int>(0) }
    final class Counts: Sendable {
        let values: [Counter]
        init(_ n: Int) { values = (0..<n).map { _ in Counter() } }
    }

    func testEveryIndexAndEveryPieceRunsExactlyOnce() {
        for threads in [1, 2, 3, 5] {
            let pool = ThreadPool(threads: threads)
            for round in 0..<2000 {
                let pieces = 1 + round % 37
                let seen = Counts(pieces)
                let indices = Counts(threads)
                pool.forEachPiece(pieces) { p, t in
                    seen.values[p].v.add(1, ordering: .relaxed)
                    XCTAssertTrue((0..<threads).contains(t))
                }
                pool.run { t in indices.values[t].v.add(1, ordering: .relaxed) }
                for p in 0..<pieces { XCTAssertEqual(seen.values[p].v.load(ordering: .relaxed), 1) }
                for t in 0..<threads { XCTAssertEqual(indices.values[t].v.load(ordering: .relaxed), 1) }
                if round % 500 == 0 { usleep(2000) }  // let the workers fall asleep now and then
            }
        }
    }

    func testBusyCoresDoNotChangeResultsOrHangTheCaller() {
        // Threads that keep every core busy: the pool's workers are often not running.
        let stop = Counter()
        let hogs = (0..<ProcessInfo.processInfo.activeProcessorCount).map { _ in
            Thread { while stop.v.load(ordering: .relaxed) == 0 {} }
        }
        hogs.forEach { $0.start() }
        defer { stop.v.store(1, ordering: .relaxed) }
        let pool = ThreadPool(threads: 2)
        let n = 4096
        let x = (0..<n).map { Float($0 % 97) * 0.25 }
        var reference = [Float](repeating: 0, count: n)
        for i in 0..<n { reference[i] = x[i] * x[i] + 1 }
        for _ in 0..<300 {
            var y = [Float](repeating: 0, count: n)
            y.withUnsafeMutableBufferPointer { out in
                let o = out.baseAddress!
                pool.parallelFor(n, grain: 16, minimumPerThread: 64) { r in
                    for i in r { o[i] = x[i] * x[i] + 1 }
                }
            }
            XCTAssertEqual(y, reference)
        }
    }
}
