import Foundation

/// A classifier fine-tuning task small enough for unit tests.
public enum ToyClassificationTask {
    /// A tiny BERT folder (the bert-tiny fixture with MiniLM's vocabulary) and a separable toy
    /// sentiment task in `dir`: train.tsv (48 examples) and dev.tsv (16).
    public static func make(in dir: String) throws -> String {
        let base = dir + "/base"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: try TestPaths.sharedFile("fixtures/bert-tiny-mlm/model-mlm/" + f), toPath: base + "/" + f)
        }
        for f in ["vocab.txt", "tokenizer_config.json"] {
            try FileManager.default.copyItem(atPath: try TestPaths.sharedFile("models/minilm-l6-v2/" + f), toPath: base + "/" + f)
        }
        let good = ["great", "wonderful", "excellent", "lovely", "superb", "brilliant", "delightful", "fantastic"]
        let bad = ["awful", "terrible", "boring", "dreadful", "horrible", "dull", "poor", "bad"]
        var train = "sentence\tlabel\n", devText = "sentence\tlabel\n"
        for (g, b) in zip(good, bad) {
            for t in ["a \(g) film", "the film was \(g)", "\(g) acting"] { train += "\(t) \t1\n" }
            for t in ["a \(b) film", "the film was \(b)", "\(b) acting"] { train += "\(t) \t0\n" }
            devText += "really \(g) \t1\nreally \(b) \t0\n"
        }
        try train.write(toFile: dir + "/train.tsv", atomically: true, encoding: .utf8)
        try devText.write(toFile: dir + "/dev.tsv", atomically: true, encoding: .utf8)
        return base
    }
}
