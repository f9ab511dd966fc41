//! The harness of each cargo-fuzz target of sam-core's file readers, one function a target.
//!
//! The binaries in `fuzz_targets/` (built by `cargo fuzz` with the `libfuzzer` feature, see
//! scripts/fuzz.sh) only call these; the stable replay test (`tests/replay.rs`, run by
//! `cargo test --workspace`) feeds them every committed seed and regression input. A harness
//! returns normally on any input that the reader rejects with an error; it panics (a crash
//! for libFuzzer, a failure for the replay test) when a reader panics, or when a read that
//! succeeded breaks an invariant the reader documents.
//!
//! The targets and their input formats:
//!
//! | target | input |
//! |---|---|
//! | [`checkpoint_pth`] | a `.pth` file (zip + pickle) |
//! | [`checkpoint_safetensors`] | a `.safetensors` file |
//! | [`npy`] | a `.npy` file |
//! | [`rle_string`] | `h: u32 LE`, `w: u32 LE`, then a pycocotools counts string |
//! | [`rle_json`] | a COCO RLE JSON object, counts as a list or a string |
//! | [`sa1b`] | an SA-1B file or a JSON list of annotation records |

use sam_core::io::checkpoint::{Checkpoint, MAX_TENSOR_ELEMENTS};
use sam_core::io::rle::{CocoRle, Rle};
use sam_core::io::{npy, sa1b};
use sam_core::{ImageEmbedding, Sam};

/// Masks larger than this (pixels) are validated but not decoded by the harnesses: decoding
/// a mask at [`sam_core::io::rle::MAX_MASK_PIXELS`] (2^28 pixels) takes ~0.5 s and 256 MiB, which
/// would slow fuzzing ~1000-fold without reaching other code. Validation bounds the size.
pub const MAX_DECODED_PIXELS: usize = 1 << 22;

/// Tensors of at most this many elements are read (values converted to f32 / i64) by the
/// checkpoint harnesses before the model is built, so the tensor reader is exercised even
/// when model detection rejects the file. Larger ones (up to the reader's own limit,
/// [`MAX_TENSOR_ELEMENTS`]) are left to model construction.
pub const MAX_READ_ELEMENTS: usize = 1 << 20;

/// The `.pth` (zip of pickle and storages) reader through model construction on the CPU
/// device: [`Checkpoint::from_bytes`], every small tensor read, then
/// [`Sam::from_checkpoint`] with model-type detection.
pub fn checkpoint_pth(data: &[u8]) {
    checkpoint(data);
}

/// The safetensors reader through model construction; see [`checkpoint_pth`].
pub fn checkpoint_safetensors(data: &[u8]) {
    checkpoint(data);
}

/// Both checkpoint targets: the format is sniffed from the bytes as for a user's file, so the
/// two differ only in their seeds and dictionaries.
fn checkpoint(data: &[u8]) {
    let Ok(ckpt) = Checkpoint::from_bytes(data) else {
        return;
    };
    let keys: Vec<String> = ckpt.keys().map(str::to_owned).collect();
    assert_eq!(keys.len(), ckpt.len(), "keys() and len() disagree");
    for key in &keys {
        let info = ckpt.info(key).expect("a listed key has an info").clone();
        let numel = info.numel();
        assert!(
            numel <= MAX_TENSOR_ELEMENTS,
            "{key}: indexed with {numel} elements, over the reader's limit"
        );
        if numel > MAX_READ_ELEMENTS {
            continue;
        }
        let read = if info.dtype.is_float() {
            ckpt.read_f32(key).map(|v| v.len())
        } else {
            ckpt.read_i64(key).map(|v| v.len())
        };
        if let Ok(len) = read {
            assert_eq!(len, numel, "{key}: read {len} values of {numel}");
        }
    }
    let device = burn::tensor::Device::flex();
    let _ = Sam::from_checkpoint(&ckpt, None, &device);
}

/// The `.npy` reader ([`npy::read_npy_f32`]), then [`ImageEmbedding::from_npy`] on what it
/// accepts.
pub fn npy(data: &[u8]) {
    let Ok(array) = npy::read_npy_f32(data) else {
        return;
    };
    let numel = array
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .expect("an accepted shape's element count fits in usize");
    assert_eq!(
        array.data.len(),
        numel,
        "data length vs shape {:?}",
        array.shape
    );
    if array.shape == [1, 256, 64, 64] {
        let device = burn::tensor::Device::flex();
        let _ = ImageEmbedding::from_npy(data, (480, 640), &device);
    }
}

/// pycocotools counts strings as the demo's `decodeCocoRle(counts, height, width)` gets them:
/// the first 8 bytes are `height` and `width` (u32 little-endian), the rest the string
/// (invalid UTF-8 replaced, as a JavaScript string would hold it).
pub fn rle_string(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let h = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let w = u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as usize;
    let counts = String::from_utf8_lossy(&data[8..]);
    if let Ok(rle) = Rle::from_string_compressed(&counts, [h, w]) {
        check_rle(&rle);
    }
}

/// A COCO RLE JSON object, `{"size": [h, w], "counts": [..]}` (uncompressed, a list) or
/// `{"size": [h, w], "counts": "<string>"}` (compressed): parsed, validated and decoded.
pub fn rle_json(data: &[u8]) {
    if let Ok(rle) = serde_json::from_slice::<Rle>(data) {
        if rle.validate().is_ok() {
            check_rle(&rle);
        }
    } else if let Ok(coco) = serde_json::from_slice::<CocoRle>(data)
        && let Ok(rle) = coco.to_rle()
    {
        check_rle(&rle);
    }
}

/// SA-1B files and annotation lists as the demo's "Load SA-1B JSON" reads them
/// ([`sa1b::parse_annotations`] and [`sa1b::parse_sa1b`]): every mask decoded, and a file
/// that was accepted written back and read again.
pub fn sa1b(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(anns) = sa1b::parse_annotations(json) {
        for a in &anns {
            if let Ok(rle) = a.rle() {
                check_rle(&rle);
            }
        }
        let again = sa1b::annotations_to_json(&anns);
        sa1b::parse_annotations(&again).expect("written annotations read back");
    }
    if let Ok(file) = sa1b::parse_sa1b(json) {
        let again = sa1b::to_json(&file);
        sa1b::parse_sa1b(&again).expect("a written SA-1B file reads back");
    }
}

/// Invariants of an accepted (validated) RLE: it decodes to `h * w` pixels whose foreground
/// count is its area, and re-encoding the mask and its compressed string gives the same mask.
fn check_rle(rle: &Rle) {
    rle.validate().expect("an accepted RLE validates");
    let [h, w] = rle.size;
    if h * w > MAX_DECODED_PIXELS {
        return;
    }
    let mask = rle.decode().expect("a valid RLE decodes");
    assert_eq!(mask.len(), h * w);
    let area = mask.iter().filter(|&&v| v).count() as u64;
    assert_eq!(rle.area(), area, "area vs decoded foreground");
    let canonical = Rle::encode(&mask, h, w);
    assert_eq!(canonical.decode().expect("re-encoded RLE decodes"), mask);
    let string = canonical.to_string_compressed();
    let back = Rle::from_string_compressed(&string, [h, w]).expect("own string reads back");
    assert_eq!(back, canonical, "compressed string round trip");
}
