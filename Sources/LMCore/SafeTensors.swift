import Foundation

/// Element types a safetensors file may hold.
public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
    case i8 = "I8", u8 = "U8", i16 = "I16", i32 = "I32", i64 = "I64", bool = "BOOL"

    public var size: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    /// Bytes of a tensor of `shape` (dimensions ≥ 0), or nil when they do not fit in an Int.
    func byteCount(shape: [Int]) -> Int? {
        var n = size
        for d in shape {
            let (m, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            n = m
        }
        return n
    }
}

/// A safetensors file, memory-mapped (https://github.com/huggingface/safetensors, format:
/// 8-byte little-endian header length, a JSON header, then the raw tensor bytes).
///
/// F32 tensors are returned as zero-copy views into the mapping; F16 and BF16 are converted to
/// F32 on load. Every structural problem (truncation, bad header, overlapping or out-of-range
/// offsets) is reported when the file is opened.
public final class SafeTensorsFile: @unchecked Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        /// Byte range inside the data section.
        public let range: Range<Int>
        public var count: Int { shape.reduce(1, *) }
    }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let file: MappedFile
    private let dataStart: Int

    public init(path: String) throws {
        self.path = path
        guard FileIO.exists(path) else {
            throw LMError(.fileNotFound, "'\(path)' does not exist")
        }
        file = try MappedFile(path: path)
        let fileName = (path as NSString).lastPathComponent
        guard file.size >= 8 else {
            throw LMError(.corruptFile, "'\(fileName)' is \(file.size) bytes: too short for a safetensors file (truncated?) — re-download or re-save it")
        }
        let raw = file.bytes
        var headerLength = 0
        for i in 0..<8 { headerLength |= Int(raw[i]) << (8 * i) }
        guard headerLength > 0, headerLength <= 100_000_000, headerLength <= file.size - 8 else {
            throw LMError(.corruptFile, "'\(fileName)' has a header length of \(headerLength) bytes but the file is \(file.size) bytes: not a safetensors file, or truncated — re-download or re-save it")
        }
        dataStart = 8 + headerLength
        let headerData = Data(bytes: raw.baseAddress! + 8, count: headerLength)
        guard let json = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw LMError(.corruptFile, "'\(fileName)' has a header that is not a JSON object: the file is corrupt — re-download or re-save it")
        }
        // JSONSerialization keeps one value of a repeated key: count the keys as written.
        if let repeated = SafeTensorsFile.repeatedKey(UnsafeRawBufferPointer(rebasing: raw[8..<dataStart]), distinct: json.count) {
            throw LMError(.corruptFile, "'\(fileName)': the header lists '\(repeated)' twice — the file is corrupt; re-download or re-save it")
        }
        let dataSize = file.size - dataStart
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in json {
            if name == "__metadata__" {
                if let m = value as? [String: Any] {
                    for (k, v) in m { metadata[k] = (v as? String) ?? "\(v)" }
                }
                continue
            }
            guard let info = value as? [String: Any],
                  let dtypeName = info["dtype"] as? String,
                  let shapeAny = info["shape"] as? [Any],
                  let offsetsAny = info["data_offsets"] as? [Any], offsetsAny.count == 2
            else {
                throw LMError(.corruptFile, "'\(fileName)': header entry for '\(name)' needs dtype, shape and data_offsets — the file is corrupt")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw LMError(.corruptFile, "'\(fileName)': tensor '\(name)' has unsupported dtype \(dtypeName) (supported: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            // `as? Int` is exact: fractions, and numbers too big for an Int, are nil (intValue wraps them).
            let shape = shapeAny.compactMap { $0 as? Int }
            let offsets = offsetsAny.compactMap { $0 as? Int }
            guard shape.count == shapeAny.count else {
                throw LMError(.corruptFile, "'\(fileName)': tensor '\(name)' has shape \(shapeAny), whose dimensions are not all 64-bit integers — the file is corrupt")
            }
            guard shape.allSatisfy({ $0 >= 0 }) else {
                throw LMError(.corruptFile, "'\(fileName)': tensor '\(name)' has a negative dimension in shape \(shape) — the file is corrupt")
            }
            guard offsets.count == 2 else {
                throw LMError(.corruptFile, "'\(fileName)': tensor '\(name)' has data_offsets \(offsetsAny), not two 64-bit integers — the file is corrupt")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin else {
                throw LMError(.corruptFile, "'\(fileName)': tensor '\(name)' has data_offsets [\(begin), \(end)], not a byte range 0 ≤ begin ≤ end — the file is corrupt")
            }
            guard let expected = dtype.byteCount(shape: shape) else {
                throw LMError(.corruptFile, "'\(fileName)': tensor '\(name)' of shape \(shape) \(dtype.rawValue) has too many elements to address — the file is corrupt")
            }
            guard end - begin == expected else {
                throw LMError(.corruptFile, "'\(fileName)': tensor '\(name)' of shape \(shape) \(dtype.rawValue) needs \(expected) bytes but its offsets span \(end - begin)")
            }
            guard end <= dataSize else {
                throw LMError(.corruptFile, "'\(fileName)' is truncated: tensor '\(name)' ends at byte \(end) of the data section, which has \(dataSize) bytes — re-download or re-save it")
            }
            entries[name] = Entry(name: name, dtype: dtype, shape: shape, range: begin..<end)
        }
        // No two tensors share a byte (empty tensors hold none).
        let placed = entries.values.filter { !$0.range.isEmpty }
            .sorted { ($0.range.lowerBound, $0.name) < ($1.range.lowerBound, $1.name) }
        for (a, b) in zip(placed, placed.dropFirst()) where b.range.lowerBound < a.range.upperBound {
            throw LMError(.corruptFile, "'\(fileName)': tensors '\(a.name)' (bytes \(a.range.lowerBound)..<\(a.range.upperBound)) and '\(b.name)' (bytes \(b.range.lowerBound)..<\(b.range.upperBound)) overlap — the file is corrupt; re-download or re-save it")
        }
        self.entries = entries
        self.metadata = metadata
    }

    /// A key the top-level object of `header` (valid JSON, `distinct` different keys) repeats,
    /// decoded, or nil. Scans the bytes once, counting the keys as written; only when there are
    /// more than `distinct` are they decoded to name the repeated one.
    static func repeatedKey(_ header: UnsafeRawBufferPointer, distinct: Int) -> String? {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        var keys: [Range<Int>] = []
        var depth = 0, inString = false, escaped = false, expectKey = false, keyStart: Int? = nil
        for (i, b) in header.enumerated() {
            if inString {
                if escaped { escaped = false } else if b == backslash { escaped = true } else if b == quote {
                    inString = false
                    if let start = keyStart { keys.append(start..<(i + 1)); keyStart = nil }
                }
                continue
            }
            switch b {
            case quote:
                inString = true
                if depth == 1 && expectKey { keyStart = i; expectKey = false }
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                expectKey = depth == 1 && b == UInt8(ascii: "{")
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
            case UInt8(ascii: ","): if depth == 1 { expectKey = true }
            default: break
            }
        }
        guard keys.count > distinct else { return nil }
        var seen = Set<String>()
        for k in keys {
            let raw = Data(UnsafeRawBufferPointer(rebasing: header[k]))
            guard let key = try? JSONSerialization.jsonObject(with: raw, options: .fragmentsAllowed) as? String else { continue }
            if !seen.insert(key).inserted { return key }
        }
        return nil
    }

    public var names: [String] { entries.keys.sorted() }

    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// Raw bytes of a tensor (any dtype).
    public func rawBytes(_ name: String) throws -> (entry: Entry, bytes: UnsafeRawBufferPointer) {
        guard let e = entries[name] else {
            throw LMError(.missingTensor, "'\((path as NSString).lastPathComponent)' has no tensor '\(name)'")
        }
        let start = file.base.map { UnsafeRawPointer($0) + dataStart + e.range.lowerBound }
        return (e, UnsafeRawBufferPointer(start: start, count: e.range.count))
    }

    /// Tells the kernel the bytes of `name` are no longer needed in memory (the caller copied
    /// them). Pages are dropped and re-read from the file if touched again.
    public func release(_ name: String) {
        guard let e = entries[name], let base = file.base else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = Int(bitPattern: base) + dataStart + e.range.lowerBound
        let lo = (start + page - 1) / page * page
        let hi = (start + e.range.count) / page * page
        if hi > lo { madvise(UnsafeMutableRawPointer(bitPattern: lo), hi - lo, Int32(MADV_DONTNEED)) }
    }

    /// A float32 tensor: zero-copy for aligned F32, converted for F16/BF16/F64.
    /// When `shape` is given, a mismatch throws an error naming the tensor.
    public func tensor(_ name: String, shape expected: [Int]? = nil) throws -> Tensor {
        let (e, bytes) = try rawBytes(name)
        if let expected, expected != e.shape {
            throw LMError(.shapeMismatch, "tensor '\(name)' in '\((path as NSString).lastPathComponent)' has shape \(e.shape), the config expects \(expected) — the checkpoint does not match its config.json")
        }
        let n = e.count
        if e.dtype == .f32, let base = bytes.baseAddress,
           Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
            let p = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Float.self))
            return Tensor(view: TensorStorage(borrowing: p, count: n, owner: file), shape: e.shape)
        }
        let out = Tensor(zeros: e.shape)
        let dst = out.data
        switch e.dtype {
        case .f32:
            for i in 0..<n { dst[i] = bytes.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
        case .f16:
            for i in 0..<n {
                let bits = bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                dst[i] = Float(Float16(bitPattern: bits))
            }
        case .bf16:
            for i in 0..<n {
                let bits = bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                dst[i] = Float(bitPattern: UInt32(bits) << 16)
            }
        case .f64:
            for i in 0..<n { dst[i] = Float(bytes.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        default:
            throw LMError(.corruptFile, "tensor '\(name)' is \(e.dtype.rawValue), expected a floating-point tensor")
        }
        return out
    }
}

/// Writes safetensors files atomically (temporary file, fsync, rename).
public enum SafeTensorsWriter {
    /// One tensor to write: float32 values, or raw bytes of another dtype.
    public enum Item {
        case float(Tensor)
        case raw(dtype: DType, shape: [Int], bytes: [UInt8])
    }

    public static func write(_ tensors: [(String, Tensor)], metadata: [String: String] = ["format": "pt"],
                             to path: String) throws {
        try write(items: tensors.map { ($0.0, Item.float($0.1)) }, metadata: metadata, to: path)
    }

    public static func write(items: [(String, Item)], metadata: [String: String] = ["format": "pt"],
                             to path: String) throws {
        var header = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.sorted { $0.key < $1.key }
                .map { "\(jsonString($0.key)):\(jsonString($0.value))" }.joined(separator: ",")
            parts.append("\"__metadata__\":{\(m)}")
        }
        var offset = 0
        for (name, item) in items {
            let (dtype, shape, nbytes): (DType, [Int], Int)
            switch item {
            case .float(let t): (dtype, shape, nbytes) = (.f32, t.shape, t.count * 4)
            case .raw(let d, let s, let b):
                guard s.allSatisfy({ $0 >= 0 }), d.byteCount(shape: s) == b.count else {
                    throw LMError(.shapeMismatch, "tensor '\(name)': \(b.count) bytes do not match shape \(s) of \(d.rawValue)")
                }
                (dtype, shape, nbytes) = (d, s, b.count)
            }
            parts.append("\(jsonString(name)):{\"dtype\":\"\(dtype.rawValue)\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + nbytes)]}")
            offset += nbytes
        }
        header += parts.joined(separator: ",") + "}"
        while (header.utf8.count + 8) % 8 != 0 { header += " " }
        let headerBytes = Array(header.utf8)
        try FileIO.writeAtomically(path) { fd in
            var len = UInt64(headerBytes.count).littleEndian
            try withUnsafeBytes(of: &len) { try FileIO.writeAll(fd, $0, path: path) }
            try headerBytes.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: path) }
            for (_, item) in items {
                switch item {
                case .float(let t):
                    try FileIO.writeAll(fd, UnsafeRawBufferPointer(start: t.data, count: t.count * 4), path: path)
                case .raw(_, _, let b):
                    try b.withUnsafeBytes { try FileIO.writeAll(fd, $0, path: path) }
                }
            }
        }
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}
