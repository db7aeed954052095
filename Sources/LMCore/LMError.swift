/// The one error type every swift-lm library throws.
///
/// Each error names the problem and, where there is one, the fix, so the `lm` tool can print
/// it as a single line (`error: <message>`) and exit non-zero. Libraries never call
/// `fatalError` on anything a user can influence; they throw one of these.
public struct LMError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable {
        /// A file or folder that does not exist or cannot be read.
        case fileNotFound
        /// A file whose bytes do not match its format (truncated, bad header, bad JSON).
        case corruptFile
        /// A tensor or argument with the wrong shape.
        case shapeMismatch
        /// A tensor that a checkpoint should contain but does not.
        case missingTensor
        /// A configuration value that is not supported or out of range.
        case invalidConfig
        /// A user-supplied argument that is out of range.
        case invalidArgument
        /// Input text or data that cannot be processed (empty corpus, bad UTF-8, ...).
        case invalidInput
        /// A write that failed (disk full, permissions).
        case ioFailure
        /// A failure reported by a wrapped C/C++ library.
        case library
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
