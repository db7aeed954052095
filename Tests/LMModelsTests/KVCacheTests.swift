import LMCore
import LMModels
import LMTestSupport
import XCTest

/// The KV cache's bookkeeping: sliding-window layers keep only what their queries can see,
/// positions can be removed and moved (context shift), truncation is refused when a window
/// lost what it needs.
final class KVCacheTests: XCTestCase {
    /// Writes `count` positions starting at `cache.length`, each key/value row filled with its position.
    func append(_ cache: KVCache, _ count: Int) {
        cache.prepare(toAppend: count)
        for l in 0..<cache.layers {
            for p in cache.length..<(cache.length + count) {
                let slot = p - cache.base(l)
                for c in 0..<cache.width {
                    cache.keys(l)[slot * cache.width + c] = Float(p)
                    cache.values(l)[slot * cache.width + c] = Float(-p)
                }
            }
        }
        cache.advance(by: count)
    }

    func positions(_ cache: KVCache, layer l: Int) -> [Int] {
        cache.held(l).map { p in
            let v = cache.keys(l)[(p - cache.base(l)) * cache.width]
            XCTAssertEqual(cache.values(l)[(p - cache.base(l)) * cache.width], -v)
            return Int(v)
        }
    }

    func testWindowedLayersKeepOnlyTheWindow() {
        // Layer 0 full, layer 1 window 4; chunks of at most 3: 4 − 1 + 3 = 6 slots.
        let cache = KVCache(capacity: 20, width: 2, windows: [nil, 4], maxBatch: 3)
        XCTAssertEqual(cache.slots, [20, 6])
        for n in [3, 3, 1, 3, 2] { append(cache, n) }
        XCTAssertEqual(cache.length, 12)
        XCTAssertEqual(positions(cache, layer: 0), Array(0..<12))
        let held = positions(cache, layer: 1)
        XCTAssertEqual(held, Array(cache.base(1)..<12))
        XCTAssertLessThanOrEqual(cache.base(1), 12 - 3, "the window's last 3 positions before the next query are held")
        XCTAssertLessThanOrEqual(held.count, 6)
    }

    func testTruncationIsRefusedWhenTheWindowLostWhatItNeeds() {
        let cache = KVCache(capacity: 20, width: 1, windows: [nil, 4], maxBatch: 3)
        for _ in 0..<5 { append(cache, 3) }           // 15 positions; layer 1 holds 9..<15 at most
        XCTAssertTrue(cache.canTruncate(to: 14))
        XCTAssertTrue(cache.canTruncate(to: cache.base(1) + 3))
        XCTAssertFalse(cache.canTruncate(to: cache.base(1) + 2))
        XCTAssertTrue(cache.canTruncate(to: 0), "emptying is always possible")
        cache.truncate(to: 13)
        XCTAssertEqual(cache.length, 13)
        append(cache, 1)
        XCTAssertEqual(positions(cache, layer: 0), Array(0..<14))
    }

    func testRemovingPositionsMovesTheRestAndRotatesTheirKeys() {
        let cache = KVCache(capacity: 20, width: 1, windows: [nil, 4], maxBatch: 3)
        for _ in 0..<4 { append(cache, 3) }           // 12 positions
        var rotated: [Int: (rows: Int, delta: Int)] = [:]
        XCTAssertTrue(cache.removePositions(2..<5) { l, _, rows, delta in rotated[l] = (rows, delta) })
        XCTAssertEqual(cache.length, 9)
        // Layer 0: positions 0, 1 stay; 5…11 move down to 2…8 (their stored values are the old positions).
        XCTAssertEqual(positions(cache, layer: 0), [0, 1] + Array(5..<12))
        XCTAssertEqual(rotated[0]?.rows, 7)
        XCTAssertEqual(rotated[0]?.delta, -3)
        // Layer 1 held only positions after the removed range: all move down by 3.
        XCTAssertEqual(positions(cache, layer: 1).last, 11)
        XCTAssertEqual(cache.held(1).upperBound, 9)
        // A removal that leaves the window without what the next query needs is refused: layer 1
        // holds positions 3…8; without 3…7 the query at 4 would need 1…3 again.
        let before = positions(cache, layer: 1)
        XCTAssertFalse(cache.removePositions(3..<8) { _, _, _, _ in XCTFail("nothing moves") })
        XCTAssertEqual(positions(cache, layer: 1), before)
        XCTAssertEqual(cache.length, 9)
    }

    func testRestoreChecksEveryLayer() throws {
        let cache = KVCache(capacity: 20, width: 1, windows: [nil, 4], maxBatch: 3)
        try cache.restore(length: 10, held: [10, 5])
        XCTAssertEqual(cache.base(1), 5)
        XCTAssertThrowsError(try cache.restore(length: 10, held: [9, 5]), "a full layer holds everything")
        XCTAssertThrowsError(try cache.restore(length: 10, held: [10, 2]), "the window needs 3")
        XCTAssertThrowsError(try cache.restore(length: 10, held: [10, 7]), "more than its 6 slots")
    }
}
