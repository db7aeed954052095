import Foundation
import LMTestSupport

/// The random 2-layer classifier of fixtures/bert-tiny-mlm with the MiniLM tokenizer beside it.
func tinyBertClassifier() throws -> String {
    let dir = try TestPaths.temporaryDirectory("bert-cls")
    let fm = FileManager.default
    for f in ["config.json", "model.safetensors"] {
        try fm.copyItem(atPath: try TestPaths.sharedFile("fixtures/bert-tiny-mlm/model-cls/" + f), toPath: dir + "/" + f)
    }
    for f in ["vocab.txt", "tokenizer_config.json"] {
        try fm.copyItem(atPath: try TestPaths.sharedFile("models/minilm-l6-v2/" + f), toPath: dir + "/" + f)
    }
    return dir
}
