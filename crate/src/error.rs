//! Typed errors. Everything that can go wrong with user input ends up here; the wasm
//! boundary turns these into JavaScript `Error`s with the same text.

/// What went wrong, in words that name the problem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not an ONNX model tract can read, or its graph cannot be typed.
    #[error("could not load the ONNX model: {0}")]
    Load(String),
    /// The graph contains an operation the LRP pass does not know how to explain.
    #[error("unsupported operation `{op}` at node `{node}`: {reason}")]
    UnsupportedOp {
        /// Node name in the ONNX graph (as tract reports it).
        node: String,
        /// Operation name.
        op: String,
        /// Why it is not supported.
        reason: String,
    },
    /// The model's input is not a fixed-size image tensor.
    #[error("unsupported model input: {0}")]
    UnsupportedInput(String),
    /// A tensor handed in does not have the shape the model needs.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A parameter is out of range or unknown.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParam {
        /// Parameter name as the user spells it.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The image could not be decoded or is unusable.
    #[error("invalid image: {0}")]
    Image(String),
    /// A computation left float32's range (NaN or infinity), e.g. from extreme weights.
    #[error("numerical problem: {0}")]
    Numeric(String),
    /// An error inside tract while running a kernel.
    #[error("inference failed: {0}")]
    Tract(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidParam`].
    pub fn param(name: &str, reason: impl Into<String>) -> Self {
        Error::InvalidParam { name: name.to_string(), reason: reason.into() }
    }
}

impl From<tract_onnx::prelude::TractError> for Error {
    fn from(e: tract_onnx::prelude::TractError) -> Self {
        Error::Tract(format!("{e:#}"))
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
