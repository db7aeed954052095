import LMCore

/// What a tensor is for in its model, whatever the checkpoint calls it: the column llama.cpp's
/// `LLM_TENSOR_NAMES` table gives each name. The quantizer, the trainer's layer freezing and
/// `lm inspect` read roles, never architecture-specific names.
public enum TensorRole: String, Sendable, CaseIterable {
    case tokenEmbedding, positionEmbedding, tokenTypeEmbedding, embeddingNorm
    case attentionNorm, attentionQKV, attentionQ, attentionK, attentionV, attentionOutput
    case attentionQNorm, attentionKNorm, postAttentionNorm
    case ffnNorm, ffnGate, ffnUp, ffnDown, postFFNNorm
    case outputNorm, output
    /// Biases of any layer.
    case bias
    /// Encoder heads: BERT's pooler, masked-LM transform and classifier.
    case pooler, headTransform, headNorm, classifier

    /// Matrices a quantizer stores in blocks: every linear layer's weight and the token
    /// embedding / output head. Position embeddings, norms, biases and the small classifier
    /// matrix stay float.
    public var isQuantizable: Bool {
        switch self {
        case .tokenEmbedding, .attentionQKV, .attentionQ, .attentionK, .attentionV, .attentionOutput,
             .ffnGate, .ffnUp, .ffnDown, .output, .pooler, .headTransform:
            return true
        default:
            return false
        }
    }
}

/// One tensor of a model: its name in the checkpoint, its shape as stored, its role, and the
/// layer it belongs to (nil for embeddings, final norms, heads).
public struct TensorSpec: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var role: TensorRole
    public var layer: Int?
    /// How a matrix is stored: (out, in) as `nn.Linear`, or (in, out) as GPT-2's Conv1D.
    public var layout: WeightLayout

    public init(_ name: String, _ shape: [Int], _ role: TensorRole, layer: Int? = nil, layout: WeightLayout = .outIn) {
        self.name = name
        self.shape = shape
        self.role = role
        self.layer = layer
        self.layout = layout
    }

    public var elementCount: Int { shape.reduce(1, *) }
}

