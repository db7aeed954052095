#if canImport(Glibc)
import Glibc
#endif

/// A hash map from byte strings to `Int32` values, looked up by raw byte slices.
///
/// The tokenizers' hot loops (WordPiece pieces, BPE vocabulary, word caches) look up substrings
/// of the input's UTF-8 bytes. Using `[String: Int]` would allocate a `String` per lookup; this
/// map hashes the slice in place and compares it against keys stored in one byte arena.
///
/// Open addressing with linear probing; the table doubles at 50 % load. Keys are unique: `insert`
/// of an existing key replaces its value.
///
/// ```swift
/// var map = ByteSliceMap()
/// map.insert(Array("hello".utf8), 7)
/// "hello".utf8.withContiguousStorageIfAvailable { map.value(for: UnsafeRawBufferPointer($0)) } // 7
/// ```
struct ByteSliceMap {
    private struct Slot {
        var hash: UInt64 = 0
        var offset: Int32 = -1      // -1: empty slot
        var length: Int32 = 0
        var value: Int32 = 0
    }

    private var slots: [Slot]
    private var mask: Int
    private(set) var count = 0
    private var arena: [UInt8] = []

    init(capacity: Int = 16) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = Array(repeating: Slot(), count: size)
        mask = size - 1
    }

    /// 64-bit hash of a byte slice (multiply-xorshift over 8-byte words; fast for short keys).
    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(bytes.count)
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            let w = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            h = (h ^ w) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 32
            i += 8
        }
        if i < n {
            var w: UInt64 = 0
            var shift: UInt64 = 0
            while i < n {
                w |= UInt64(bytes[i]) << shift
                shift += 8
                i += 1
            }
            h = (h ^ w) &* 0xC4CE_B9FE_1A85_EC53
        }
        h ^= h >> 29
        h = h &* 0x94D0_49BB_1331_11EB
        h ^= h >> 31
        return h
    }

    /// The value stored for `key`, or nil.
    @inline(__always)
    func value(for key: UnsafeRawBufferPointer) -> Int32? {
        let h = ByteSliceMap.hash(key)
        var i = Int(truncatingIfNeeded: h) & mask
        return slots.withUnsafeBufferPointer { s in
            arena.withUnsafeBufferPointer { a in
                while true {
                    let slot = s[i]
                    if slot.offset < 0 { return nil }
                    if slot.hash == h && Int(slot.length) == key.count {
                        if key.count == 0 { return slot.value }
                        if memcmp(a.baseAddress! + Int(slot.offset), key.baseAddress!, key.count) == 0 {
                            return slot.value
                        }
                    }
                    i = (i + 1) & mask
                }
            }
        }
    }

    func value(for key: [UInt8]) -> Int32? {
        key.withUnsafeBytes { value(for: $0) }
    }

    func value(for key: String) -> Int32? {
        var k = key
        return k.withUTF8 { value(for: UnsafeRawBufferPointer($0)) }
    }

    /// Inserts or replaces the value of `key`.
    mutating func insert(_ key: UnsafeRawBufferPointer, _ value: Int32) {
        if (count + 1) * 2 > slots.count { grow() }
        let h = ByteSliceMap.hash(key)
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let slot = slots[i]
            if slot.offset < 0 { break }
            if slot.hash == h && Int(slot.length) == key.count {
                let same = arena.withUnsafeBufferPointer { a in
                    key.count == 0 || memcmp(a.baseAddress! + Int(slot.offset), key.baseAddress!, key.count) == 0
                }
                if same {
                    slots[i].value = value
                    return
                }
            }
            i = (i + 1) & mask
        }
        let offset = Int32(arena.count)
        arena.append(contentsOf: key)
        slots[i] = Slot(hash: h, offset: offset, length: Int32(key.count), value: value)
        count += 1
    }

    mutating func insert(_ key: [UInt8], _ value: Int32) {
        key.withUnsafeBytes { insert($0, value) }
    }

    mutating func insert(_ key: String, _ value: Int32) {
        var k = key
        k.withUTF8 { insert(UnsafeRawBufferPointer($0), value) }
    }

    /// Removes every key (keeps the allocated table).
    mutating func removeAll() {
        for i in slots.indices { slots[i] = Slot() }
        arena.removeAll(keepingCapacity: true)
        count = 0
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: Slot(), count: old.count * 2)
        mask = slots.count - 1
        for slot in old where slot.offset >= 0 {
            var i = Int(truncatingIfNeeded: slot.hash) & mask
            while slots[i].offset >= 0 { i = (i + 1) & mask }
            slots[i] = slot
        }
    }
}

/// A hash map from 64-bit keys to 64-bit values (open addressing), used for BPE merge ranks keyed
/// by a pair of token ids. Key `UInt64.max` is reserved as "empty".
struct IntPairMap {
    private var keys: [UInt64]
    private var values: [UInt64]
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int = 16) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = Array(repeating: .max, count: size)
        values = Array(repeating: 0, count: size)
        mask = size - 1
    }

    @inline(__always)
    static func key(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    @inline(__always)
    private static func slot(_ key: UInt64) -> Int {
        var h = key &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 29
        return Int(truncatingIfNeeded: h)
    }

    @inline(__always)
    func value(for key: UInt64) -> UInt64? {
        keys.withUnsafeBufferPointer { k in
            var i = IntPairMap.slot(key) & mask
            while true {
                let stored = k[i]
                if stored == key { return values[i] }
                if stored == .max { return nil }
                i = (i + 1) & mask
            }
        }
    }

    /// Inserts `value` unless `key` is already present (the first insertion wins).
    mutating func insertIfAbsent(_ key: UInt64, _ value: UInt64) {
        if (count + 1) * 2 > keys.count { grow() }
        var i = IntPairMap.slot(key) & mask
        while keys[i] != .max {
            if keys[i] == key { return }
            i = (i + 1) & mask
        }
        keys[i] = key
        values[i] = value
        count += 1
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values
        keys = Array(repeating: .max, count: oldKeys.count * 2)
        values = Array(repeating: 0, count: oldKeys.count * 2)
        mask = keys.count - 1
        for (j, k) in oldKeys.enumerated() where k != .max {
            var i = IntPairMap.slot(k) & mask
            while keys[i] != .max { i = (i + 1) & mask }
            keys[i] = k
            values[i] = oldValues[j]
        }
    }
}
