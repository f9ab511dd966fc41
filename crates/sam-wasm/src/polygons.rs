//! Masks as polygons and COCO annotation records for pages, all from `sam_core::io::polygon` and
//! `sam_core::io::rle` (one implementation for Rust and JS).

use sam_core::SamError;
use sam_core::io::polygon::{self, PolygonOptions};
use sam_core::io::rle::Rle;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::error::{sam_error, type_error};

/// The TypeScript types of the values below.
#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
export interface PolygonOptions {
  /** Douglas-Peucker tolerance in pixels; 0 (default) keeps every corner (exact). */
  tolerance?: number;
  /** Parts of fewer pixels are dropped, holes enclosing fewer pixels are filled. Default 0. */
  minArea?: number;
  /** Only the part with the most pixels. Default false. */
  largestOnly?: boolean;
}

/** One 8-connected part of a mask, in pixel-edge coordinates (pixel (x, y) is the square [x, x+1] x [y, y+1]). */
export interface MaskPolygon {
  /** Outer ring [x, y] (open: the first point is not repeated), clockwise on screen. */
  exterior: [number, number][];
  /** Hole rings, counter-clockwise on screen. */
  holes: [number, number][][];
  /** Pixels of the part in the mask. */
  pixelArea: number;
  /** The COCO flat polygon [x1, y1, x2, y2, ...]: the exterior with each hole joined by a zero-width bridge (even-odd fill, as pycocotools). */
  coco: number[];
}

/** COCO's fields of one mask. */
export interface CocoMaskRecord {
  /** Compressed RLE ({size: [h, w], counts}) or polygons (flat lists, one per part). */
  segmentation: { size: [number, number]; counts: string } | number[][];
  /** Pixels inside the mask. */
  area: number;
  /** [x, y, width, height] as pycocotools' toBbox (width = last column - first + 1). */
  bbox: [number, number, number, number];
}
"#;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsPolygon {
    exterior: Vec<[f64; 2]>,
    holes: Vec<Vec<[f64; 2]>>,
    pixel_area: u64,
    coco: Vec<f64>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum JsSegmentation {
    Rle { size: [usize; 2], counts: String },
    Polygons(Vec<Vec<f64>>),
}

#[derive(Serialize)]
struct JsCocoRecord {
    segmentation: JsSegmentation,
    area: u64,
    bbox: [f64; 4],
}

fn options_of(options: JsValue) -> Result<PolygonOptions, JsValue> {
    if options.is_undefined() || options.is_null() {
        return Ok(PolygonOptions::default());
    }
    serde_wasm_bindgen::from_value(options)
        .map_err(|e| type_error(&format!("polygon options: {e}")))
}

fn polygons_of(
    mask: &[u8],
    height: usize,
    width: usize,
    options: &PolygonOptions,
) -> Result<Vec<polygon::Polygon>, JsValue> {
    polygon::mask_to_polygons(mask, height, width, options)
        .map_err(|e| sam_error(SamError::Polygon(e)))
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| type_error(&e.to_string()))
}

/// The polygons of a row-major mask of `height x width` bytes (non-zero = inside):
/// `MaskPolygon[]`, one per 8-connected part (see `sam_core::io::polygon`). A buffer of the wrong
/// length, a mask over `sam_core::io::rle::MAX_MASK_PIXELS` or a bad option throws an `Error`
/// named `PolygonError`.
#[wasm_bindgen(js_name = maskToPolygons, unchecked_return_type = "MaskPolygon[]")]
pub fn mask_to_polygons(
    mask: &[u8],
    height: usize,
    width: usize,
    #[wasm_bindgen(unchecked_param_type = "PolygonOptions | undefined")] options: JsValue,
) -> Result<JsValue, JsValue> {
    let polygons = polygons_of(mask, height, width, &options_of(options)?)?;
    let out: Vec<JsPolygon> = polygons
        .into_iter()
        .map(|p| JsPolygon {
            coco: p.to_coco(),
            exterior: p.exterior,
            holes: p.holes,
            pixel_area: p.pixel_area,
        })
        .collect();
    to_js(&out)
}

/// The row-major 0/1 mask (`height * width` bytes) of a COCO polygon segmentation: flat
/// `[x1, y1, ..]` lists, each filled by the even-odd rule, united (pycocotools' `frPyObjects` +
/// `merge`). More than `sam_core::io::polygon::MAX_POLYGON_POINTS` points, a coordinate that is not
/// finite or an odd-length list throws an `Error` named `PolygonError`.
#[wasm_bindgen(js_name = cocoPolygonsToMask)]
pub fn coco_polygons_to_mask(
    #[wasm_bindgen(unchecked_param_type = "number[][]")] segmentation: JsValue,
    height: usize,
    width: usize,
) -> Result<Vec<u8>, JsValue> {
    let lists: Vec<Vec<f64>> = serde_wasm_bindgen::from_value(segmentation)
        .map_err(|e| type_error(&format!("COCO polygons must be number[][]: {e}")))?;
    polygon::coco_to_mask(&lists, height, width).map_err(|e| sam_error(SamError::Polygon(e)))
}

/// COCO's `segmentation`, `area` and `bbox` of a row-major mask (`CocoMaskRecord`):
/// compressed RLE, or with `polygons` true the COCO flat polygons of its parts as
/// `maskToPolygons` gives them under `options`. `area` and `bbox` are the mask's
/// (pycocotools' `area` and `toBbox`).
#[wasm_bindgen(js_name = cocoMaskRecord, unchecked_return_type = "CocoMaskRecord")]
pub fn coco_mask_record(
    mask: &[u8],
    height: usize,
    width: usize,
    polygons: bool,
    #[wasm_bindgen(unchecked_param_type = "PolygonOptions | undefined")] options: JsValue,
) -> Result<JsValue, JsValue> {
    let options = options_of(options)?;
    // The size is checked (PolygonError) before the RLE encoder's assertion could panic.
    polygon::check_mask(mask.len(), height, width).map_err(|e| sam_error(SamError::Polygon(e)))?;
    let rle = Rle::encode_u8(mask, height, width);
    let segmentation = if polygons {
        let parts = polygons_of(mask, height, width, &options)?;
        JsSegmentation::Polygons(parts.iter().map(polygon::Polygon::to_coco).collect())
    } else {
        JsSegmentation::Rle {
            size: [height, width],
            counts: rle.to_string_compressed(),
        }
    };
    to_js(&JsCocoRecord {
        segmentation,
        area: rle.area(),
        bbox: rle.bbox_xywh(),
    })
}
