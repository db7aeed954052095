import Foundation
import LMCore
import LMModels
import LMTokenizers

/// Writes the Q8 form of a float GPT-2 folder: every linear layer, the token embedding and an
/// untied LM head become Q8 tensors (`NAME.q8` + `NAME.q8_scale`, the (out, in) layout);
/// biases, LayerNorms and position embeddings stay float32. `config.json` gains a
/// `"quantization"` object. See models/README.md for the layout.
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

    /// True when a folder's config.json says it is already quantized.
    public static func isQuantized(_ folder: ModelFolder) -> Bool {
        ((try? JSONSerialization.jsonObject(with: folder.configData)) as? [String: Any])?["quantization"] != nil
    }

    public static func quantize(folder path: String, to out: String) throws -> Summary {
        let folder = try ModelFolder(path: path)
        guard ["gpt2", "bert"].contains(folder.modelType) else {
            throw LMError(.invalidConfig, "lm quantize handles GPT-2 and BERT models; '\(path)' is \(folder.modelType)")
        }
        guard !isQuantized(folder) else {
            throw LMError(.invalidArgument, "'\(path)' is already quantized — quantize the float model it came from")
        }
        let (items, quantized) = folder.modelType == "gpt2" ? try gpt2Items(folder) : try bertItems(folder)
        try FileIO.makeDirectory(out)
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

    /// GPT-2: every 2-D weight but the position embedding; Conv1D weights transposed to (out, in).
    static func gpt2Items(_ folder: ModelFolder) throws -> ([(String, SafeTensorsWriter.Item)], [String]) {
        let config = try folder.decodeConfig(GPT2Config.self)
        try config.validate()
        let source = SafeTensorsWeightSource(file: try folder.openWeights(), optionalPrefixes: ["transformer."])
        let conv1D = ["attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"]
        var items: [(String, SafeTensorsWriter.Item)] = []
        var quantized: [String] = []
        for (name, shape) in config.parameterLayout {
            let t = try source.tensor(name, shape: shape)
            let isMatrix = shape.count == 2 && name != "transformer.wpe.weight"
            guard isMatrix else {
                items.append((name, .float(t)))
                continue
            }
            var w = t
            var (rows, cols) = (shape[0], shape[1])
            if conv1D.contains(where: { name.hasSuffix($0) }) {
                (rows, cols) = (shape[1], shape[0])
                w = Tensor(zeros: [rows, cols])
                transpose(out: w.data, inp: t.data, rows: shape[0], cols: shape[1])
            }
            items += Q8Storage.items(name, Q8Matrix.quantize(w.data, rows: rows, cols: cols))
            quantized.append(name)
        }
        return (items, quantized)
    }

    /// BERT: the word embeddings (also the tied masked-LM decoder) and every `nn.Linear` weight
    /// of the encoder and heads (already (out, in)); position and token-type embeddings,
    /// biases, LayerNorms and the small classifier matrix stay float32. Other tensors
    /// (`position_ids`) are dropped.
    static func bertItems(_ folder: ModelFolder) throws -> ([(String, SafeTensorsWriter.Item)], [String]) {
        try folder.decodeConfig(BertConfig.self).validate()
        let file = try folder.openWeights()
        var items: [(String, SafeTensorsWriter.Item)] = []
        var quantized: [String] = []
        for name in file.names where file.entries[name]!.dtype != .i64 {
            let t = try file.tensor(name)
            let keepFloat = t.rank != 2 || name.hasSuffix("position_embeddings.weight")
                || name.hasSuffix("token_type_embeddings.weight") || name.hasPrefix("classifier.")
            if keepFloat {
                items.append((name, .float(t)))
            } else {
                items += Q8Storage.items(name, Q8Matrix.quantize(t.data, rows: t.shape[0], cols: t.shape[1]))
                quantized.append(name)
            }
        }
        return (items, quantized)
    }

    static func fileSize(_ path: String) throws -> Int {
        try MappedFile(path: path).size
    }
}
