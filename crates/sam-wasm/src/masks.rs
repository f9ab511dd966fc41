//! Mask helpers for pages: COCO RLE strings and SA-1B files, all from `sam_core::io::rle` and
//! `sam_core::io::sa1b` (one implementation of the format for Rust and JS).

use sam_core::SamError;
use sam_core::io::rle::Rle;
use sam_core::io::sa1b::{self, ImageInfo, Sa1bFile, Segmentation};
use wasm_bindgen::prelude::*;

use crate::error::{sam_error, type_error};

fn check_size(len: usize, height: usize, width: usize) -> Result<(), JsValue> {
    if height.checked_mul(width) != Some(len) {
        return Err(type_error(&format!(
            "a {height}x{width} mask has {} values, got {len}",
            height.saturating_mul(width)
        )));
    }
    Ok(())
}

/// The COCO RLE counts string (pycocotools' compressed form) of a row-major mask of
/// `height x width` bytes (non-zero = inside).
#[wasm_bindgen(js_name = encodeCocoRle)]
pub fn encode_coco_rle(mask: &[u8], height: usize, width: usize) -> Result<String, JsValue> {
    check_size(mask.len(), height, width)?;
    Ok(Rle::encode_u8(mask, height, width).to_string_compressed())
}

/// The row-major 0/1 bytes (`height * width`) of a COCO RLE counts string. A malformed string,
/// or a mask over `sam_core::io::rle::MAX_MASK_PIXELS`, throws an `Error` named `RleError`
/// (before anything is allocated).
#[wasm_bindgen(js_name = decodeCocoRle)]
pub fn decode_coco_rle(counts: &str, height: usize, width: usize) -> Result<Vec<u8>, JsValue> {
    let rle = Rle::from_string_compressed(counts, [height, width])
        .map_err(|e| sam_error(SamError::Rle(e)))?;
    rle.decode_u8().map_err(|e| sam_error(SamError::Rle(e)))
}

/// Checks an SA-1B file (`{"image": .., "annotations": [..]}`) or a bare list of annotation
/// records and returns it as an SA-1B JSON string with compressed RLE counts. Malformed JSON
/// or RLE throws an `Error` named `Sa1bError` saying where; a file over
/// `sam_core::io::sa1b::MAX_JSON_BYTES` or `MAX_ANNOTATIONS`, or a mask over
/// `sam_core::io::rle::MAX_MASK_PIXELS`, is refused before its masks are decoded.
#[wasm_bindgen(js_name = normalizeSa1b)]
pub fn normalize_sa1b(json: &str) -> Result<String, JsValue> {
    let bad = |e: sa1b::Sa1bError| sam_error(SamError::Sa1b(e));
    let mut file = if json.trim_start().starts_with('[') {
        let annotations = sa1b::parse_annotations(json).map_err(bad)?;
        let [height, width] = annotations
            .first()
            .map(|a| a.segmentation.size())
            .unwrap_or([0, 0]);
        Sa1bFile {
            image: ImageInfo {
                image_id: 0,
                width,
                height,
                file_name: String::new(),
            },
            generator: None,
            output_mode: None,
            notes: None,
            settings: None,
            annotations,
        }
    } else {
        sa1b::parse_sa1b(json).map_err(bad)?
    };
    for a in &mut file.annotations {
        let rle = a.rle().map_err(bad)?;
        a.segmentation = Segmentation::from(rle.to_coco());
    }
    file.output_mode = Some("coco_rle".into());
    Ok(sa1b::to_json(&file))
}
