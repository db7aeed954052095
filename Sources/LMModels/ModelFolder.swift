import Foundation
import LMCore

/// Upper bounds on config sizes, far above any real model: a config beyond them is refused
/// before anything is sized by it (1e9 layers would otherwise allocate until memory runs out).
public enum ConfigLimits {
    public static let layers = 4096, width = 1 << 17, heads = 4096, positions = 1 << 24, vocabulary = 1 << 24

    /// A one-line error naming the first value beyond its bound, or nil.
    public static func check(_ values: [(name: String, value: Int, limit: Int)]) -> String? {
        values.first { $0.value > $0.limit }.map { "\($0.name) \($0.value) is beyond what swift-lm runs (at most \($0.limit)) — the config is wrong" }
    }
}

/// A model folder in the Hugging Face layout: `config.json`, `model.safetensors`
/// (optionally a tokenizer). Opening it checks that the files exist and reads `model_type`.
public struct ModelFolder: Sendable {
    public let path: String
    /// The parsed `config.json`.
    public let configData: Data
    public let modelType: String

    public init(path: String) throws {
        let p = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        self.path = p
        guard FileIO.exists(p) else {
            throw LMError(.fileNotFound, "model folder '\(p)' does not exist — give a folder holding config.json and model.safetensors")
        }
        guard FileIO.isDirectory(p) else {
            throw LMError(.fileNotFound, "'\(p)' is a file, not a model folder — pass the folder holding config.json and model.safetensors")
        }
        let configPath = p + "/config.json"
        guard FileIO.exists(configPath) else {
            throw LMError(.fileNotFound, "'\(p)' has no config.json — a model folder holds config.json and model.safetensors (the Hugging Face layout)")
        }
        guard !FileIO.isDirectory(configPath) else {
            throw LMError(.invalidConfig, "'\(configPath)' is a folder — a model folder's config.json is a JSON file")
        }
        guard access(configPath, R_OK) == 0, let data = FileManager.default.contents(atPath: configPath) else {
            throw LMError(.fileNotFound, "'\(configPath)' cannot be read: \(String(cString: strerror(errno))) — check its permissions")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw LMError(.corruptFile, "'\(configPath)' is not a JSON object — fix or re-download the config")
        }
        guard let type = object["model_type"] as? String else {
            throw LMError(.invalidConfig, "'\(configPath)' has no \"model_type\" — add one (for example \"gpt2\")")
        }
        configData = data
        modelType = type
    }

    public var weightsPath: String { path + "/model.safetensors" }

    /// Whether config.json records a quantization (an int8 folder written by `lm quantize`).
    public var isQuantized: Bool {
        ((try? JSONSerialization.jsonObject(with: configData)) as? [String: Any])?["quantization"] != nil
    }

    /// Refuses a quantized folder as the start of training: its weights are int8 blocks, which
    /// the trainers would otherwise have to treat as missing (and start from random values).
    public func requireFloatWeights(for command: String) throws {
        if isQuantized {
            throw LMError(.invalidArgument, "'\(path)' is quantized (int8) — \(command) trains float weights: start from the float model it was quantized from")
        }
    }

    /// Opens `model.safetensors`.
    public func openWeights() throws -> SafeTensorsFile {
        guard FileIO.exists(weightsPath) else {
            throw LMError(.fileNotFound, "'\(path)' has no model.safetensors — convert the checkpoint to safetensors (transformers: model.save_pretrained(dir))")
        }
        return try SafeTensorsFile(path: weightsPath)
    }

    /// The top-level key whose fractional number `T` cannot read (it wants a whole number
    /// there): the one that, made whole, lets the config decode.
    static func fractionalNumber<T: Decodable>(in data: Data, decoding: T.Type) -> (String, Double)? {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        for key in object.keys.sorted() {
            guard let n = object[key] as? NSNumber, n.doubleValue != n.doubleValue.rounded() || abs(n.doubleValue) >= 9.2e18 else { continue }
            var whole = object
            whole[key] = abs(n.doubleValue) >= 9.2e18 ? 1 : Int(n.doubleValue.rounded())
            if let d = try? JSONSerialization.data(withJSONObject: whole), (try? JSONDecoder().decode(T.self, from: d)) != nil {
                return (key, n.doubleValue)
            }
        }
        return nil
    }

    /// Decodes `config.json` into `T`, turning decoding failures into one-line errors.
    public func decodeConfig<T: Decodable>(_ type: T.Type) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: configData)
        } catch let DecodingError.keyNotFound(key, _) {
            throw LMError(.invalidConfig, "'\(path)/config.json' is missing \"\(key.stringValue)\"")
        } catch let DecodingError.typeMismatch(_, ctx) {
            let key = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            throw LMError(.invalidConfig, "'\(path)/config.json': \"\(key)\" has the wrong type")
        } catch let DecodingError.dataCorrupted(ctx) where ctx.codingPath.isEmpty {
            // Foundation reports a fraction read as an integer ("n_embd": 64.5) this way, with
            // no key: find the number that is not whole.
            if let (key, value) = Self.fractionalNumber(in: configData, decoding: T.self) {
                throw LMError(.invalidConfig, "'\(path)/config.json': \"\(key)\" is \(value) — it must be a whole number\(abs(value) >= 9.2e18 ? " that fits in 64 bits" : "")")
            }
            throw LMError(.invalidConfig, "'\(path)/config.json' cannot be read: \(ctx.debugDescription)")
        } catch {
            throw LMError(.invalidConfig, "'\(path)/config.json' cannot be read: \(error)")
        }
    }
}
