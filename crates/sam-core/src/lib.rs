//! Segment Anything (SAM) in Burn: the model, official checkpoint loading, pre- and
//! post-processing. Runs on any Burn device (CPU `flex`, `wgpu`/WebGPU) chosen at run time.

pub mod amg;
pub mod error;
pub mod fixture;
pub mod io;
pub mod modeling;
pub mod predictor;
pub mod preprocess;
pub mod weights;

pub use error::{Result, SamError};
pub use modeling::sam::{ModelType, Sam};
pub use predictor::{ImageEmbedding, Prediction, Prompt};
