import Foundation

/// llama.cpp's GGUF file format (versions 2 and 3), read from a memory-mapped file.
///
/// Layout, little-endian: `u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv`, then the
/// key/value metadata (`string key; u32 type; value`), then one description per tensor
/// (`string name; u32 n_dims; u64 ne[n_dims]; u32 ggml_type; u64 offset`), zero padding up to
/// `general.alignment` (default 32), and the tensor data, each tensor at `data + offset`.
/// `ne[0]` is the contiguous (row) dimension: a weight `[ne0 = in, ne1 = out]` is `out` rows of
/// `in` values, the (out, in) layout swift-lm's linear layers use. Strings are `u64 length` +
/// UTF-8 bytes.
///
/// ```swift
/// let file = try GGUFFile(path: "gemma-3-270m-q4_k_m.gguf")
/// file.architecture                                   // "gemma3"
/// let t = try file.tensor("token_embd.weight")        // [640, 262144] Q8_0
/// let bytes = file.data(of: t)                        // zero-copy view of its blocks
/// ```
///
/// Every structural problem (a truncated file, a tensor whose offset or size runs past the end,
/// an unknown type id, overlapping tensors) is an `LMError` naming the tensor and the fix.

/// One metadata value of a GGUF file. Long arrays of strings or numbers (a vocabulary's 262,144
/// tokens, scores and types) are held as plain Swift arrays, not as one enum value per element.
public enum GGUFValue: Equatable, Sendable {
    case uint(UInt64)
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    /// Arrays of booleans, of arrays, or of mixed values.
    case array([GGUFValue])
    case strings([String])
    case integers([Int64])
    case floats([Double])

    public var intValue: Int? {
        switch self {
        case .uint(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int(let v): return Int(v)
        default: return nil
        }
    }
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    /// The elements of any array, one value each (allocates for the typed arrays).
    public var arrayValue: [GGUFValue]? {
        switch self {
        case .array(let a): return a
        case .strings(let a): return a.map { .string($0) }
        case .integers(let a): return a.map { .int($0) }
        case .floats(let a): return a.map { .float($0) }
        default: return nil
        }
    }
    /// An array of strings, or nil.
    public var stringArray: [String]? {
        switch self {
        case .strings(let a): return a
        case .array(let a): let s = a.compactMap(\.stringValue); return s.count == a.count ? s : nil
        default: return nil
        }
    }
    /// An array of numbers as Double, or nil.
    public var doubleArray: [Double]? {
        switch self {
        case .floats(let a): return a
        case .integers(let a): return a.map(Double.init)
        case .array(let a): let d = a.compactMap(\.doubleValue); return d.count == a.count ? d : nil
        default: return nil
        }
    }
    /// An array of integers, or nil.
    public var intArray: [Int]? {
        switch self {
        case .integers(let a): return a.map { Int($0) }
        case .array(let a): let i = a.compactMap(\.intValue); return i.count == a.count ? i : nil
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .float(let v): return v
        case .int(let v): return Double(v)
        case .uint(let v): return Double(v)
        default: return nil
        }
    }
    public var count: Int? {
        switch self {
        case .array(let a): return a.count
        case .strings(let a): return a.count
        case .integers(let a): return a.count
        case .floats(let a): return a.count
        default: return nil
        }
    }

    /// The value as `gguf-dump` shows it: arrays as their first items and their length.
    public var summary: String {
        switch self {
        case .uint(let v): return "\(v)"
        case .int(let v): return "\(v)"
        case .float(let v): return "\(Float(v))"
        case .bool(let b): return b ? "true" : "false"
        case .string(let s):
            let shown = s.count > 60 ? String(s.prefix(60)) + "…" : s
            return "\"" + shown.replacingOccurrences(of: "\n", with: "\\n") + "\""
        case .array, .strings, .integers, .floats:
            let a = arrayValue ?? []
            let head = a.prefix(5).map(\.summary).joined(separator: ", ")
            return "[\(head)\(a.count > 5 ? ", …" : "")] (\(a.count) items)"
        }
    }
}

/// The key/value metadata of a GGUF file.
public struct GGUFMetadata: Sendable {
    public let version: Int
    public let tensorCount: Int
    public let values: [String: GGUFValue]
    /// Keys in file order.
    public let keys: [String]
    /// Byte offset just past the metadata (where the tensor descriptions start).
    public let endOffset: Int

    /// Reads the metadata of the file at `path`.
    public init(path: String) throws {
        let file = try MappedFile(path: path)
        do {
            try self.init(bytes: file.bytes)
        } catch let e as LMError {
            throw LMError(e.kind, "'\(path)': \(e.message)")
        }
    }

    public init(bytes: UnsafeRawBufferPointer) throws {
        var r = GGUFReader(bytes: bytes)
        guard bytes.count >= 4, bytes[0] == 0x47, bytes[1] == 0x47, bytes[2] == 0x55, bytes[3] == 0x46 else {
            throw LMError(.corruptFile, "not a GGUF file (it does not start with 'GGUF') — pass a llama.cpp .gguf file")
        }
        r.offset = 4
        let version = Int(try r.u32())
        guard version == 2 || version == 3 else {
            throw LMError(.corruptFile, "GGUF version \(version) is not supported (only 2 and 3) — convert it again with a recent llama.cpp")
        }
        let tensors = try r.u64()
        let count = try r.u64()
        guard count <= UInt64(bytes.count), tensors <= UInt64(bytes.count) else {
            throw LMError(.corruptFile, "the GGUF header claims \(count) metadata entries and \(tensors) tensors in a \(bytes.count)-byte file — the file is corrupt")
        }
        var values: [String: GGUFValue] = [:]
        var keys: [String] = []
        keys.reserveCapacity(Int(count))
        for _ in 0..<count {
            let key = try r.string()
            let type = try r.u32()
            values[key] = try r.value(type: type)
            keys.append(key)
        }
        self.version = version
        self.tensorCount = Int(tensors)
        self.values = values
        self.keys = keys
        self.endOffset = r.offset
    }

    public subscript(key: String) -> GGUFValue? { values[key] }
}

/// A bounds-checked little-endian reader over a GGUF file's bytes.
struct GGUFReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    mutating func need(_ n: Int) throws {
        guard n >= 0, offset <= bytes.count, n <= bytes.count - offset else {
            throw LMError(.corruptFile, "the GGUF header is truncated at byte \(offset) (it needs \(n) more bytes) — the file is incomplete; download it again")
        }
    }
    mutating func load<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try need(MemoryLayout<T>.size)
        let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return v
    }
    mutating func u32() throws -> UInt32 { try load(UInt32.self) }
    mutating func u64() throws -> UInt64 { try load(UInt64.self) }
    mutating func string() throws -> String {
        let n = try u64()
        guard n <= UInt64(bytes.count - offset) else {
            throw LMError(.corruptFile, "a GGUF string of \(n) bytes at byte \(offset) runs past the end of the file — the file is truncated or corrupt")
        }
        let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + Int(n)]), as: UTF8.self)
        offset += Int(n)
        return s
    }
    mutating func value(type: UInt32) throws -> GGUFValue {
        switch type {
        case 0: return .uint(UInt64(try load(UInt8.self)))
        case 1: return .int(Int64(try load(Int8.self)))
        case 2: return .uint(UInt64(try load(UInt16.self)))
        case 3: return .int(Int64(try load(Int16.self)))
        case 4: return .uint(UInt64(try load(UInt32.self)))
        case 5: return .int(Int64(try load(Int32.self)))
        case 6: return .float(Double(Float(bitPattern: try load(UInt32.self))))
        case 7: return .bool(try load(UInt8.self) != 0)
        case 8: return .string(try string())
        case 9:
            let elementType = try u32()
            let n = try u64()
            guard n <= UInt64(bytes.count - offset) else {
                throw LMError(.corruptFile, "a GGUF array of \(n) elements at byte \(offset) cannot fit in the file — the file is truncated or corrupt")
            }
            switch elementType {
            case 8:
                var items: [String] = []
                items.reserveCapacity(Int(n))
                for _ in 0..<n { items.append(try string()) }
                return .strings(items)
            case 6, 12:
                var items: [Double] = []
                items.reserveCapacity(Int(n))
                for _ in 0..<n { items.append(try value(type: elementType).doubleValue!) }
                return .floats(items)
            case 0, 1, 2, 3, 4, 5, 11:
                var items: [Int64] = []
                items.reserveCapacity(Int(n))
                for _ in 0..<n {
                    let v = try value(type: elementType)
                    items.append(v.intValue.map(Int64.init) ?? 0)
                }
                return .integers(items)
            default:
                var items: [GGUFValue] = []
                items.reserveCapacity(Int(n))
                for _ in 0..<n { items.append(try value(type: elementType)) }
                return .array(items)
            }
        case 10: return .uint(try load(UInt64.self))
        case 11: return .int(try load(Int64.self))
        case 12: return .float(Double(bitPattern: try load(UInt64.self)))
        default:
            throw LMError(.corruptFile, "unknown GGUF value type \(type) at byte \(offset - 4) — the file is corrupt or from a newer format")
        }
    }
}

/// A ggml tensor type: its id in GGUF files, its name, and its block size (weights per block,
/// bytes per block). Every type llama.cpp writes is listed, so any file can be inspected;
/// `WeightType` says which ones swift-lm computes with.
public struct GGMLType: Hashable, Sendable, CustomStringConvertible {
    public let id: UInt32
    public let name: String
    public let blockElements: Int
    public let blockBytes: Int

    public var description: String { name }

    public static let f32 = GGMLType(id: 0, name: "F32", blockElements: 1, blockBytes: 4)
    public static let f16 = GGMLType(id: 1, name: "F16", blockElements: 1, blockBytes: 2)
    public static let q4_0 = GGMLType(id: 2, name: "Q4_0", blockElements: 32, blockBytes: 18)
    public static let q4_1 = GGMLType(id: 3, name: "Q4_1", blockElements: 32, blockBytes: 20)
    public static let q5_0 = GGMLType(id: 6, name: "Q5_0", blockElements: 32, blockBytes: 22)
    public static let q5_1 = GGMLType(id: 7, name: "Q5_1", blockElements: 32, blockBytes: 24)
    public static let q8_0 = GGMLType(id: 8, name: "Q8_0", blockElements: 32, blockBytes: 34)
    public static let q8_1 = GGMLType(id: 9, name: "Q8_1", blockElements: 32, blockBytes: 36)
    public static let q2_K = GGMLType(id: 10, name: "Q2_K", blockElements: 256, blockBytes: 84)
    public static let q3_K = GGMLType(id: 11, name: "Q3_K", blockElements: 256, blockBytes: 110)
    public static let q4_K = GGMLType(id: 12, name: "Q4_K", blockElements: 256, blockBytes: 144)
    public static let q5_K = GGMLType(id: 13, name: "Q5_K", blockElements: 256, blockBytes: 176)
    public static let q6_K = GGMLType(id: 14, name: "Q6_K", blockElements: 256, blockBytes: 210)
    public static let q8_K = GGMLType(id: 15, name: "Q8_K", blockElements: 256, blockBytes: 292)
    public static let bf16 = GGMLType(id: 30, name: "BF16", blockElements: 1, blockBytes: 2)

    /// Every type by id.
    public static let all: [UInt32: GGMLType] = {
        var t: [UInt32: GGMLType] = [:]
        for x in [f32, f16, q4_0, q4_1, q5_0, q5_1, q8_0, q8_1, q2_K, q3_K, q4_K, q5_K, q6_K, q8_K, bf16] { t[x.id] = x }
        for (id, name, e, b) in [(16, "IQ2_XXS", 256, 66), (17, "IQ2_XS", 256, 74), (18, "IQ3_XXS", 256, 98),
                                 (19, "IQ1_S", 256, 50), (20, "IQ4_NL", 32, 18), (21, "IQ3_S", 256, 110),
                                 (22, "IQ2_S", 256, 82), (23, "IQ4_XS", 256, 136), (24, "I8", 1, 1), (25, "I16", 1, 2),
                                 (26, "I32", 1, 4), (27, "I64", 1, 8), (28, "F64", 1, 8), (29, "IQ1_M", 256, 56),
                                 (34, "TQ1_0", 256, 54), (35, "TQ2_0", 256, 66), (39, "MXFP4", 32, 17)] {
            t[UInt32(id)] = GGMLType(id: UInt32(id), name: name, blockElements: e, blockBytes: b)
        }
        return t
    }()

    /// Bytes of `elements` weights (a multiple of the block size).
    public func bytes(elements: Int) -> Int { elements / blockElements * blockBytes }
}

/// One tensor of a GGUF file.
public struct GGUFTensorInfo: Sendable {
    public let name: String
    /// Dimensions in GGUF order: `dims[0]` is the contiguous one.
    public let dims: [Int]
    public let type: GGMLType
    /// Offset of its data from the start of the data section.
    public let offset: Int
    public let byteCount: Int

    public var elementCount: Int { dims.reduce(1, *) }
    /// Dimensions in PyTorch order (outermost first), as `gguf-dump` and shapes elsewhere show them.
    public var shape: [Int] { dims.reversed() }
}

/// A GGUF file, memory-mapped: its metadata, its tensor table and zero-copy views of the data.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let metadata: GGUFMetadata
    /// Tensors in file order.
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Byte offset of the data section in the file.
    public let dataOffset: Int
    public let mapped: MappedFile
    private let index: [String: Int]

    public init(path: String) throws {
        self.path = path
        guard FileIO.exists(path) else {
            throw LMError(.fileNotFound, "model file '\(path)' does not exist — give a .gguf file or a model folder")
        }
        mapped = try MappedFile(path: path)
        let name = (path as NSString).lastPathComponent
        func fail(_ e: LMError) -> LMError { LMError(e.kind, "'\(name)': \(e.message)") }
        do {
            let bytes = mapped.bytes
            let meta = try GGUFMetadata(bytes: bytes)
            var r = GGUFReader(bytes: bytes, offset: meta.endOffset)
            var align = 32
            if let a = meta["general.alignment"] {
                guard let v = a.intValue, v > 0, v & (v - 1) == 0, v <= 1 << 20 else {
                    throw LMError(.corruptFile, "general.alignment is \(a.summary), not a power of two — the file is corrupt")
                }
                align = v
            }
            var infos: [GGUFTensorInfo] = []
            infos.reserveCapacity(meta.tensorCount)
            var index: [String: Int] = [:]
            for _ in 0..<meta.tensorCount {
                let tname = try r.string()
                let nd = try r.u32()
                guard nd >= 1, nd <= 4 else {
                    throw LMError(.corruptFile, "tensor '\(tname)' has \(nd) dimensions (1 to 4 are possible) — the file is corrupt")
                }
                var dims: [Int] = []
                var count = 1
                for _ in 0..<nd {
                    let d = try r.u64()
                    guard d <= 1 << 40 else {
                        throw LMError(.corruptFile, "tensor '\(tname)' has a dimension of \(d) — the file is corrupt")
                    }
                    dims.append(Int(d))
                    let (m, overflow) = count.multipliedReportingOverflow(by: Int(d))
                    guard !overflow, m <= 1 << 42 else {
                        throw LMError(.corruptFile, "tensor '\(tname)' \(dims) has too many elements — the file is corrupt")
                    }
                    count = m
                }
                let typeID = try r.u32()
                let off = try r.u64()
                guard let type = GGMLType.all[typeID] else {
                    throw LMError(.corruptFile, "tensor '\(tname)' has an unknown ggml type id \(typeID) — the file is corrupt or from a newer llama.cpp")
                }
                guard dims[0] % type.blockElements == 0 else {
                    throw LMError(.corruptFile, "tensor '\(tname)' has rows of \(dims[0]) values, not a multiple of \(type.name)'s block of \(type.blockElements) — the file is corrupt")
                }
                guard off <= UInt64(bytes.count) else {
                    throw LMError(.corruptFile, "tensor '\(tname)' starts at data offset \(off), past the end of the \(bytes.count)-byte file — the file is truncated or corrupt; download it again")
                }
                guard Int(off) % align == 0 else {
                    throw LMError(.corruptFile, "tensor '\(tname)' starts at data offset \(off), not aligned to \(align) bytes — the file is corrupt")
                }
                guard index[tname] == nil else {
                    throw LMError(.corruptFile, "tensor '\(tname)' appears twice — the file is corrupt")
                }
                index[tname] = infos.count
                infos.append(GGUFTensorInfo(name: tname, dims: dims, type: type, offset: Int(off),
                                            byteCount: type.bytes(elements: count)))
            }
            let data = (r.offset + align - 1) / align * align
            // Every tensor inside the file, none overlapping.
            var end = 0
            for t in infos.sorted(by: { $0.offset < $1.offset }) {
                guard t.offset >= end else {
                    throw LMError(.corruptFile, "tensor '\(t.name)' overlaps the tensor before it — the file is corrupt")
                }
                end = t.offset + t.byteCount
                guard data + end <= bytes.count else {
                    throw LMError(.corruptFile, "tensor '\(t.name)' (\(t.type.name) \(t.shape)) ends at byte \(data + end) but the file has \(bytes.count) bytes — the file is truncated; download it again")
                }
            }
            metadata = meta
            tensors = infos
            alignment = align
            dataOffset = data
            self.index = index
        } catch let e as LMError {
            throw fail(e)
        }
    }

    /// `general.architecture` (`gemma3`, `llama`, …).
    public var architecture: String? { metadata["general.architecture"]?.stringValue }

    public func contains(_ name: String) -> Bool { index[name] != nil }

    public func tensorInfo(_ name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }

    /// The tensor named `name`, or an error naming the file.
    public func tensor(_ name: String) throws -> GGUFTensorInfo {
        guard let t = tensorInfo(name) else {
            throw LMError(.missingTensor, "'\((path as NSString).lastPathComponent)' has no tensor '\(name)' — is it a complete \(architecture ?? "model") file?")
        }
        return t
    }

    /// The bytes of a tensor (zero-copy; valid while this object lives).
    public func data(of t: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: mapped.base.map { UnsafeRawPointer($0) + dataOffset + t.offset }, count: t.byteCount)
    }

    /// Metadata helpers for `ARCH.key` values, with errors naming the key.
    public func int(_ key: String) throws -> Int {
        guard let v = metadata[key] else {
            throw LMError(.invalidConfig, "'\((path as NSString).lastPathComponent)' has no metadata key '\(key)' — the file is incomplete; convert it again")
        }
        guard let i = v.intValue else {
            throw LMError(.invalidConfig, "metadata '\(key)' is \(v.summary), not an integer — the file is corrupt")
        }
        return i
    }

    public func optionalInt(_ key: String) throws -> Int? {
        guard metadata[key] != nil else { return nil }
        return try int(key)
    }

    public func double(_ key: String) throws -> Double? {
        guard let v = metadata[key] else { return nil }
        guard let d = v.doubleValue else {
            throw LMError(.invalidConfig, "metadata '\(key)' is \(v.summary), not a number — the file is corrupt")
        }
        return d
    }

    /// Whether the file at `path` starts with the GGUF magic.
    public static func isGGUF(path: String) -> Bool {
        guard !FileIO.isDirectory(path), let f = try? MappedFile(path: path), f.size >= 4 else { return false }
        let b = f.bytes
        return b[0] == 0x47 && b[1] == 0x47 && b[2] == 0x55 && b[3] == 0x46
    }
}
