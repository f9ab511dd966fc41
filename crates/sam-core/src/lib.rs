//! Segment Anything (SAM) in Burn: the model, official checkpoint loading, pre- and
//! post-processing. Runs on any Burn device (CPU `flex`, `wgpu`/WebGPU) chosen at run time.
//!
//! What a user needs is re-exported here:
//!
//! - [`Sam`] loads an official checkpoint ([`Sam::from_bytes`], or from any [`ByteSource`]),
//!   [`ModelType`] names or detects its kind;
//! - [`Sam::set_image`] turns an [`RgbImage`] into an [`ImageEmbedding`], [`Sam::predict`] a
//!   [`Prompt`] into a [`Prediction`] on the device; [`readback`] brings it to the host, or on
//!   wgpu `preview` paints a mask where it was computed (nothing brought back);
//! - [`SamAutomaticMaskGenerator`] ("segment everything") with its [`AmgOptions`] and
//!   [`OutputMode`];
//! - masks as COCO RLE ([`Rle`]) or polygons ([`io::polygon`]), SA-1B files ([`io::sa1b`]);
//! - [`precision::set_precision`] makes a wgpu device compute in f16 ([`Precision`]) where
//!   its adapter has `shader-f16`;
//! - every failure is a [`SamError`].
//!
//! The modules follow the data path: [`preprocess`] → [`modeling`] (the official modules) →
//! [`predictor`] → [`readback`], with [`amg`] on top and the file formats in [`io`]. See
//! ARCHITECTURE.md at the repository root.

pub mod amg;
pub mod error;
pub mod fixture;
pub mod io;
pub mod memory;
pub mod modeling;
pub mod precision;
pub mod predictor;
pub mod preprocess;
#[cfg(feature = "wgpu")]
pub mod preview;
pub mod readback;
pub(crate) mod weights;

pub use amg::{AmgOptions, AmgProgress, MaskRecord, OutputMode, SamAutomaticMaskGenerator};
pub use error::{Result, SamError};
pub use io::checkpoint::{ByteSource, Checkpoint};
pub use io::rle::Rle;
/// The allocator the page's modules install (large blocks on a cache line for the CPU kernels).
#[cfg(feature = "flex")]
pub use modeling::cpu::CacheAligned;
pub use modeling::sam::{ModelType, Sam};
pub use precision::Precision;
pub use predictor::{ImageEmbedding, MaskChoice, Prediction, Prompt};
pub use preprocess::{MAX_IMAGE_PIXELS, RgbImage};
pub use readback::HostPrediction;
