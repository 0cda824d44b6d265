//! Typed errors, one variant per kind of failure: the file system, loading, what the explainer
//! does not support, bad user input (data or parameters), numerics, and broken internal
//! invariants. Messages name the problem once; the underlying error, where there is one, is kept
//! as the `source`. The wasm boundary turns these into JavaScript `Error`s with the same text.

/// An underlying error kept as a [`std::error::Error::source`].
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, in words that name the problem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not an ONNX model tract can read, or its graph cannot be typed.
    #[error("could not load the ONNX model: {reason}")]
    Load {
        /// Why, with tract's own explanation where it gave one.
        reason: String,
        /// tract's error, where the failure came from tract.
        #[source]
        source: Option<Source>,
    },
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
    /// Data handed in does not fit the model: a tensor of the wrong shape, non-finite values.
    #[error("invalid input: {0}")]
    InvalidInput(String),
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
    /// tract failed while running a plan that loaded fine.
    #[error("inference failed: {message}")]
    Tract {
        /// tract's message with its context chain.
        message: String,
        /// tract's error.
        #[source]
        source: Source,
    },
    /// The caller asked to stop (an evaluation's cancel flag).
    #[error("cancelled")]
    Cancelled,
    /// An invariant of the engine does not hold: a bug, not a problem with the model or input.
    #[error("internal error (please report it): {0}")]
    Internal(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidParam`].
    pub fn param(name: &str, reason: impl Into<String>) -> Self {
        Error::InvalidParam { name: name.to_string(), reason: reason.into() }
    }

    /// Shorthand for an [`Error::Load`] without an underlying error.
    pub fn load(reason: impl Into<String>) -> Self {
        Error::Load { reason: reason.into(), source: None }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io { path: path.display().to_string(), source }
    }

    /// The same error, its message prefixed with the file it is about (for the kinds whose
    /// message does not already name one).
    pub fn in_file(self, path: &std::path::Path) -> Self {
        let p = path.display();
        match self {
            Error::Load { reason, source } => Error::Load { reason: format!("{p}: {reason}"), source },
            Error::Image(m) => Error::Image(format!("{p}: {m}")),
            Error::InvalidInput(m) => Error::InvalidInput(format!("{p}: {m}")),
            e => e,
        }
    }
}

/// tract's errors while running: kept as the source of an [`Error::Tract`]. Errors while loading
/// become [`Error::Load`] through the load pipeline (`glue`).
impl From<tract_onnx::prelude::TractError> for Error {
    fn from(e: tract_onnx::prelude::TractError) -> Self {
        Error::Tract { message: format!("{e:#}"), source: e.into() }
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
