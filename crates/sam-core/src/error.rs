//! Typed errors of sam-core. Every failure a user can cause (a wrong file, a bad prompt,
//! an odd image) is one of these, never a panic.

use crate::io::checkpoint::CheckpointError;
use crate::io::npy::NpyError;
use crate::io::polygon::PolygonError;
use crate::io::rle::RleError;
use crate::io::sa1b::Sa1bError;
use crate::preprocess::ImageError;

/// Any error sam-core returns.
#[derive(Debug, thiserror::Error)]
pub enum SamError {
    /// The checkpoint could not be read, or lacks or mis-shapes a tensor.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// An embedding file could not be read.
    #[error("embedding file: {0}")]
    Npy(#[from] NpyError),
    /// A run-length encoded mask is malformed or too large.
    #[error("RLE mask: {0}")]
    Rle(#[from] RleError),
    /// An SA-1B / AMG annotation file could not be read.
    #[error("annotation file: {0}")]
    Sa1b(#[from] Sa1bError),
    /// A mask or polygon given to the conversions of [`crate::io::polygon`] is malformed or too large.
    #[error("polygon: {0}")]
    Polygon(#[from] PolygonError),
    /// An image is empty, too large or its pixel buffer does not match its size.
    #[error("image: {0}")]
    Image(#[from] ImageError),
    /// The named model type does not match the checkpoint, or the checkpoint is of no known type.
    #[error("model type: {0}")]
    ModelType(String),
    /// A prompt (points, labels, box, mask input) is not usable.
    #[error("invalid prompt: {0}")]
    Prompt(String),
    /// A tensor given to the model has the wrong shape.
    #[error("invalid input: {0}")]
    Input(String),
    /// The backend failed (device lost, out of memory, read-back failed).
    #[error("backend error: {0}")]
    Backend(String),
    /// The caller cancelled a long computation (the automatic mask generator's progress
    /// callback returned `false`).
    #[error("cancelled by the caller")]
    Cancelled,
}

/// Result alias of sam-core.
pub type Result<T, E = SamError> = std::result::Result<T, E>;
