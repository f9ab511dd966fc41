//! File and annotation formats: what sam-core reads and writes, all on plain bytes (no file
//! system, so it runs unchanged in a browser).
//!
//! - [`checkpoint`]: official PyTorch `.pth` / `.pt` (zip + pickle) and `.safetensors`
//!   checkpoints, read tensor by tensor from any [`ByteSource`](checkpoint::ByteSource);
//! - [`npy`]: image embeddings as numpy `.npy` files;
//! - [`rle`]: masks as COCO run-length encodings;
//! - [`polygon`]: masks as polygons (COCO `segmentation: [[x1, y1, ..]]`) and back;
//! - [`sa1b`]: SA-1B / automatic-mask-generator annotation files (JSON).

pub mod checkpoint;
pub mod npy;
pub mod polygon;
pub mod rle;
pub mod sa1b;
