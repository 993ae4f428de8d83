use std::path::PathBuf;

/// Everything that can go wrong loading, training or saving a router model.
///
/// File-related variants carry the path so that a CLI can print the error as-is and the operator
/// knows which file to fix.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid router model: {source}")]
    ModelJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("embedded router model is corrupt: {0}")]
    Embedded(#[source] serde_json::Error),
    #[error("invalid router model: {0}")]
    InvalidModel(String),
    #[error("{path}:{line}: {message}")]
    Data {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("cannot train: {0}")]
    Training(String),
    #[error("cannot serialize router model: {0}")]
    Serialize(#[source] serde_json::Error),
}
