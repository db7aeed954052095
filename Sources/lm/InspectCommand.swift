import ArgumentParser
import Foundation
import LMCore
import LMModels

/// `lm inspect`: what a model file holds — metadata and the tensor table — like llama.cpp's
/// gguf-dump, for GGUF files and Hugging Face folders alike.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print a model's metadata and tensor table (name, shape, type, bytes), like gguf-dump.",
        discussion: reflow("""
        A .gguf file: the header, every metadata key (long arrays shortened unless --full) and every
        tensor with its shape (outermost dimension first, as PyTorch shows it), type, size and
        offset. A model folder: config.json and the tensors of model.safetensors, with the role
        swift-lm gives each one when it knows the architecture.

        Examples:
          lm inspect ~/.cache/swift-lm/gemma-3-270m-q4_k_m.gguf
          lm inspect models/shakespeare --json
        """)
    )

    @Argument(help: "A .gguf file or a model folder.")
    var path: String
    @Flag(help: "Print one JSON object.")
    var json = false
    @Flag(help: "Print metadata arrays in full.")
    var full = false

    func run() throws {
        switch try ModelFile(path: path) {
        case .gguf(let g): try inspect(g)
        case .folder(let f): try inspect(f)
        }
    }

    private func jsonValue(_ v: GGUFValue) -> Any {
        switch v {
        case .uint(let x): return x
        case .int(let x): return x
        case .float(let x): return x
        case .bool(let b): return b
        case .string(let s): return s
        case .array, .strings, .integers, .floats:
            let a = v.arrayValue ?? []
            if full || a.count <= 16 { return a.map(jsonValue) }
            return ["count": a.count, "first": a.prefix(8).map(jsonValue)] as [String: Any]
        }
    }

    private func inspect(_ g: GGUFFile) throws {
        let m = g.metadata
        var types: [String: (count: Int, bytes: Int)] = [:]
        for t in g.tensors { types[t.type.name, default: (0, 0)].count += 1; types[t.type.name, default: (0, 0)].bytes += t.byteCount }
        let params = g.tensors.reduce(0) { $0 + $1.elementCount }
        if json {
            var meta: [String: Any] = [:]
            for k in m.keys { meta[k] = jsonValue(m.values[k]!) }
            let tensors: [[String: Any]] = g.tensors.map {
                ["name": $0.name, "shape": $0.shape, "type": $0.type.name, "bytes": $0.byteCount, "offset": g.dataOffset + $0.offset]
            }
            print(jsonLine(["format": "gguf", "version": m.version, "file_bytes": g.mapped.size, "alignment": g.alignment,
                            "data_offset": g.dataOffset, "parameters": params, "metadata": meta, "tensors": tensors]))
            return
        }
        print("* \(path): GGUF v\(m.version), \(g.mapped.size) bytes, \(m.keys.count) metadata keys, \(g.tensors.count) tensors (\(String(format: "%.2f", Double(params) / 1e6)) M weights), alignment \(g.alignment), data at byte \(g.dataOffset)")
        print("* Metadata:")
        for (i, k) in m.keys.enumerated() {
            let v = m.values[k]!
            var shown = v.summary
            if full, let a = v.arrayValue, v.count != nil { shown = "[" + a.map(\.summary).joined(separator: ", ") + "]" }
            print(String(format: "%5d: ", i + 1) + "\(k) = \(shown)")
        }
        print("* Tensors:")
        let width = max(4, g.tensors.map(\.name.count).max() ?? 4)
        print("    #  " + "name".padding(toLength: width, withPad: " ", startingAt: 0) + "  shape                 type        bytes      offset")
        for (i, t) in g.tensors.enumerated() {
            let shape = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
            print(String(format: "%5d  ", i + 1) + t.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                  + shape.padding(toLength: 20, withPad: " ", startingAt: 0) + "  " + t.type.name.padding(toLength: 6, withPad: " ", startingAt: 0)
                  + String(format: " %12d %11d", t.byteCount, g.dataOffset + t.offset))
        }
        print("* Types: " + types.sorted { $0.value.bytes > $1.value.bytes }
            .map { "\($0.key) ×\($0.value.count) (\(String(format: "%.1f", Double($0.value.bytes) / 1_048_576)) MiB)" }.joined(separator: ", "))
        let supported = Set(g.tensors.map(\.type).filter { WeightType(ggml: $0) != nil })
        let unsupported = Set(g.tensors.map(\.type)).subtracting(supported)
        let arch = g.architecture ?? "(none)"
        let runs = ModelRegistry.architecture(gguf: arch)?.loadGGUF != nil
        print("* swift-lm: architecture \(arch) \(runs ? "is supported" : "is not supported (supported: \(ModelRegistry.supportedGGUF.joined(separator: ", ")))")"
              + (unsupported.isEmpty ? "; every tensor type is supported" : "; tensor types not supported: \(unsupported.map(\.name).sorted().joined(separator: ", "))"))
    }

    private func inspect(_ f: ModelFolder) throws {
        let config = (try? JSONSerialization.jsonObject(with: f.configData)) as? [String: Any] ?? [:]
        let file = try f.openWeights()
        let roles = Dictionary(((try? ModelRegistry.tensorTable(f)) ?? []).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func role(_ name: String) -> TensorSpec? {
            roles[name] ?? roles["transformer." + name] ?? roles["bert." + name]
        }
        let names = file.names
        let params = names.reduce(0) { $0 + (file.entries[$1]?.count ?? 0) }
        if json {
            let tensors: [[String: Any]] = names.map { n in
                let e = file.entries[n]!
                var o: [String: Any] = ["name": n, "shape": e.shape, "type": e.dtype.rawValue, "bytes": e.range.count]
                if let r = role(n) { o["role"] = r.role.rawValue; if let l = r.layer { o["layer"] = l } }
                return o
            }
            print(jsonLine(["format": "safetensors", "model_type": f.modelType, "parameters": params, "config": config,
                            "metadata": file.metadata, "tensors": tensors]))
            return
        }
        print("* \(f.path): Hugging Face folder, model_type \(f.modelType), \(names.count) tensors (\(String(format: "%.2f", Double(params) / 1e6)) M values)")
        print("* config.json:")
        for k in config.keys.sorted() { print("    \(k) = \(config[k]!)") }
        print("* model.safetensors:")
        let width = max(4, names.map(\.count).max() ?? 4)
        for (i, n) in names.enumerated() {
            let e = file.entries[n]!
            let shape = "[" + e.shape.map(String.init).joined(separator: ", ") + "]"
            let r = role(n).map { $0.role.rawValue + ($0.layer.map { " (layer \($0))" } ?? "") } ?? ""
            print(String(format: "%5d  ", i + 1) + n.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                  + shape.padding(toLength: 16, withPad: " ", startingAt: 0) + "  " + e.dtype.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0)
                  + String(format: " %12d  ", e.range.count) + r)
        }
    }
}
