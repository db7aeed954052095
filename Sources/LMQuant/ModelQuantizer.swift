import Foundation
import LMCore
import LMModels
import LMTokenizers

/// Writes the Q8 form of a float model folder: every tensor whose role in the architecture's
/// tensor table is quantizable (linear layers, the token embedding, an untied output head)
/// becomes Q8 tensors (`NAME.q8` + `NAME.q8_scale`, the (out, in) layout; GPT-2's Conv1D
/// weights are transposed); biases, norms and position embeddings stay float32. `config.json`
/// gains a `"quantization"` object. See models/README.md for the layout.
///
/// ```swift
/// let summary = try ModelQuantizer.quantize(folder: "models/shakespeare", to: "models/shakespeare-int8")
/// ```
public enum ModelQuantizer {
    public static let formatName = "swift-lm-q8"

    public struct Summary: Sendable {
        public var inputBytes: Int
        public var outputBytes: Int
        public var quantizedTensors: Int
        public var sizeRatio: Double { inputBytes > 0 ? Double(outputBytes) / Double(inputBytes) : 0 }
    }

    /// Writes the int8 model of the folder `path` into `out`, which is locked while it is written
    /// and may be neither `path` nor a folder holding a model (unless `overwrite`).
    public static func quantize(folder path: String, to out: String, overwrite: Bool = false) throws -> Summary {
        let folder = try ModelFolder(path: path)
        guard !folder.isQuantized else {
            throw LMError(.invalidArgument, "'\(path)' is already quantized — quantize the float model it came from")
        }
        let lock = try FolderLock(folder: out)
        defer { withExtendedLifetime(lock) {} }
        try OutputFolder.check(out, input: path, overwrite: overwrite, command: "lm quantize")
        let (items, quantized) = try quantizedItems(folder, table: try ModelRegistry.tensorTable(folder))
        try SafeTensorsWriter.write(items: items, metadata: ["format": "pt", "quantization": formatName], to: out + "/model.safetensors")
        // config.json: the original keys plus the quantization record.
        var object = (try JSONSerialization.jsonObject(with: folder.configData) as? [String: Any]) ?? [:]
        object["quantization"] = [
            "format": formatName, "block_size": Q8Matrix.blockSize, "scale_dtype": "float16",
            "layout": "out_in", "tensors": quantized,
        ] as [String: Any]
        let json = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        try FileIO.writeString(String(decoding: json, as: UTF8.self) + "\n", to: out + "/config.json")
        try TokenizerLoader.copyTokenizerFiles(from: path, to: out)
        for extra in ["generation_config.json"] where FileIO.exists(path + "/" + extra) {
            try FileIO.copyAtomically(path + "/" + extra, out + "/" + extra)
        }
        return Summary(inputBytes: try fileSize(folder.weightsPath), outputBytes: try fileSize(out + "/model.safetensors"),
                       quantizedTensors: quantized.count)
    }

    /// The tensors to write: quantizable 2-D roles as Q8 (transposed to (out, in) when stored
    /// (in, out)), everything else as float32, under the names the table gives.
    static func quantizedItems(_ folder: ModelFolder, table: [TensorSpec]) throws -> ([(String, SafeTensorsWriter.Item)], [String]) {
        let source = SafeTensorsWeightSource(file: try folder.openWeights(), optionalPrefixes: ["transformer.", "bert."])
        var items: [(String, SafeTensorsWriter.Item)] = []
        var quantized: [String] = []
        for spec in table {
            let t = try source.tensor(spec.name, shape: spec.shape)
            guard spec.role.isQuantizable, spec.shape.count == 2 else {
                items.append((spec.name, .float(t)))
                continue
            }
            var w = t
            var (rows, cols) = (spec.shape[0], spec.shape[1])
            if spec.layout == .inOut {
                (rows, cols) = (spec.shape[1], spec.shape[0])
                w = Tensor(zeros: [rows, cols])
                transpose(out: w.data, inp: t.data, rows: spec.shape[0], cols: spec.shape[1])
            }
            items += Q8Storage.items(spec.name, Q8Matrix.quantize(w.data, rows: rows, cols: cols))
            quantized.append(spec.name)
        }
        return (items, quantized)
    }

    static func fileSize(_ path: String) throws -> Int {
        try MappedFile(path: path).size
    }
}
