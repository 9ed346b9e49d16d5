//! One library error type whose messages tell the user what went wrong and where.
//!
//! Every variant renders as a single line (tract's multi-line error chains are folded), so the
//! CLI can print `error: {e}` and exit non-zero without a backtrace or a panic. Each variant
//! names what failed, so a caller can tell a bad argument from a bad file, a failed write
//! or a bug.

use std::path::{Path, PathBuf};

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file or folder could not be created or written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes of a file are not a decodable image (unknown format, truncated, corrupt).
    #[error("{}: not a readable image: {reason}", path.display())]
    Image { path: PathBuf, reason: String },
    /// A stream frame is not a picture (wrong length, corrupt JPEG).
    #[error("unreadable frame: {reason}")]
    Frame { reason: String },
    /// Resizing an image for a model's input failed.
    #[error("cannot resize the image: {reason}")]
    Resize { reason: String },
    /// The file is not an ONNX model tract can load, or it failed to optimize.
    #[error("{}: cannot load model: {reason}", path.display())]
    Model { path: PathBuf, reason: String },
    /// The model loads but is not an image classifier this tool can drive.
    #[error("{}: not an image classifier: {reason}", path.display())]
    ModelShape { path: PathBuf, reason: String },
    /// A sidecar manifest is unreadable, invalid, or disagrees with its model.
    #[error("manifest {}: {reason}", path.display())]
    Manifest { path: PathBuf, reason: String },
    /// A labels file is unreadable or malformed.
    #[error("labels {}: {reason}", path.display())]
    Labels { path: PathBuf, reason: String },
    /// A labeled data folder is empty or not in a supported layout.
    #[error("data folder {}: {reason}", path.display())]
    Dataset { path: PathBuf, reason: String },
    /// tract failed while running a model on an input.
    #[error("inference with {} failed: {reason}", path.display())]
    Inference { path: PathBuf, reason: String },
    /// A board description is unknown or invalid.
    #[error("board {name}: {reason}")]
    Board { name: String, reason: String },
    /// An energy meter could not be read.
    #[error("energy meter {meter}: {reason}")]
    Meter { meter: String, reason: String },
    /// A calibration profile is unreadable, invalid or stale.
    #[error("profile {}: {reason}", path.display())]
    Profile { path: PathBuf, reason: String },
    /// A plot could not be drawn.
    #[error("cannot draw {}: {reason}", path.display())]
    Plot { path: PathBuf, reason: String },
    /// The operating system refused a thread.
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A remote stage's server could not be reached or did not answer as asked. `status` is
    /// the HTTP status when there was one; `body` at most [`crate::remote::BODY_SHOWN`]
    /// characters of what it said (never a credential: requests carry those, answers do
    /// not).
    #[error("remote stage {endpoint}: {reason}{}", match (status, body.is_empty()) {
        (Some(s), true) => format!(" (HTTP {s})"),
        (Some(s), false) => format!(" (HTTP {s}: {body})"),
        (None, _) => String::new(),
    })]
    Remote {
        endpoint: String,
        reason: String,
        status: Option<u16>,
        body: String,
    },
    /// What was asked does not fit the memory budget.
    #[error("memory budget: {0}")]
    Memory(String),
    /// A value given by the caller is out of its valid range.
    #[error("{0}")]
    InvalidArgument(String),
    /// Something the library guarantees did not hold: a bug, reported instead of a panic.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

impl Error {
    /// A served model's error that no server answer carries (no status, no body).
    pub(crate) fn remote(endpoint: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Error::Remote {
            endpoint: endpoint.to_string(),
            reason: reason.into(),
            status: None,
            body: String::new(),
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn write(path: &Path, source: std::io::Error) -> Self {
        Error::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Folds an error chain (tract's are `anyhow` chains) into one line.
pub(crate) fn one_line(e: &dyn std::fmt::Display) -> String {
    let text = format!("{e:#}");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
