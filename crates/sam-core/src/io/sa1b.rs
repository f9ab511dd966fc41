//! SA-1B style annotation JSON: the per-image files of the SA-1B dataset and
//! the official AMG output records (`segmentation`, `area`, `bbox`,
//! `predicted_iou`, `point_coords`, `stability_score`, `crop_box`).
//!
//! `bbox` / `crop_box` are XYWH and are written as JSON integers when
//! integral (as the official AMG and the reference files do). NaN scores
//! are written as `null` (JSON has no NaN) and read back as NaN / `None`.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::io::rle::{CocoRle, MAX_MASK_PIXELS, Rle, RleError};

/// The largest annotation JSON read, in bytes: 256 MiB (an SA-1B image's file is a few MB;
/// the official AMG's uncompressed-RLE output for a large image some tens of MB). Enforced by
/// [`parse_sa1b`] and [`parse_annotations`] before parsing.
pub const MAX_JSON_BYTES: usize = 256 << 20;

/// The most annotations one file may hold: 100,000 (SA-1B images average 100 masks; the
/// AMG with several crop layers gives a few thousand). Enforced by [`parse_sa1b`] and
/// [`parse_annotations`] while parsing.
pub const MAX_ANNOTATIONS: usize = 100_000;

/// Errors reading SA-1B / AMG annotation JSON.
#[derive(Debug, thiserror::Error)]
pub enum Sa1bError {
    /// Not valid JSON, or not the expected structure (with line/column).
    #[error("invalid annotation JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// An annotation's segmentation is not a well-formed RLE.
    #[error("annotation #{index} (id {id}): malformed segmentation: {source}")]
    Rle {
        index: usize,
        id: u64,
        #[source]
        source: RleError,
    },
    /// A segmentation that is not a well-formed RLE.
    #[error("malformed segmentation: {0}")]
    BadRle(#[from] RleError),
    /// The JSON text is over [`MAX_JSON_BYTES`].
    #[error("annotation JSON of {bytes} bytes is over the limit of {max} bytes")]
    JsonTooLarge { bytes: usize, max: usize },
    /// The file holds more than [`MAX_ANNOTATIONS`] annotations.
    #[error("more than {max} annotations")]
    TooManyAnnotations { max: usize },
    /// The segmentation carries no pixel data (binary-mask descriptor).
    #[error("segmentation is a binary-mask descriptor (sum + sha256) without pixel data")]
    NoPixelData,
}

/// An annotation's mask in one of the official `output_mode`s.
#[derive(Debug, Clone, PartialEq)]
pub enum Segmentation {
    /// `output_mode="coco_rle"`: `{"size": [h, w], "counts": "<string>"}`.
    CocoRle { size: [usize; 2], counts: String },
    /// `output_mode="uncompressed_rle"`: `{"size": [h, w], "counts": [..]}`.
    UncompressedRle { size: [usize; 2], counts: Vec<u32> },
    /// `output_mode="binary_mask"` as stored by the reference files (an HxW
    /// array is not JSON): shape, foreground count and SHA-256 (hex) of the
    /// row-major `0/1` bytes.
    BinaryMask {
        shape: [usize; 2],
        sum: u64,
        sha256: String,
        layout: Option<String>,
        stack_key: Option<String>,
    },
}

impl Segmentation {
    /// The uncompressed RLE (decoding / validating a compressed string).
    pub fn to_rle(&self) -> Result<Rle, Sa1bError> {
        match self {
            Segmentation::CocoRle { size, counts } => {
                Ok(Rle::from_string_compressed(counts, *size)?)
            }
            Segmentation::UncompressedRle { size, counts } => {
                let rle = Rle {
                    size: *size,
                    counts: counts.clone(),
                };
                rle.validate()?;
                Ok(rle)
            }
            Segmentation::BinaryMask { .. } => Err(Sa1bError::NoPixelData),
        }
    }

    /// `[h, w]` of the mask.
    pub fn size(&self) -> [usize; 2] {
        match self {
            Segmentation::CocoRle { size, .. } | Segmentation::UncompressedRle { size, .. } => {
                *size
            }
            Segmentation::BinaryMask { shape, .. } => *shape,
        }
    }

    fn validate(&self) -> Result<(), RleError> {
        match self {
            Segmentation::CocoRle { size, counts } => {
                Rle::from_string_compressed(counts, *size).map(|_| ())
            }
            Segmentation::UncompressedRle { size, counts } => Rle {
                size: *size,
                counts: counts.clone(),
            }
            .validate(),
            Segmentation::BinaryMask { .. } => Ok(()),
        }
    }
}

impl From<Rle> for Segmentation {
    fn from(r: Rle) -> Self {
        Segmentation::UncompressedRle {
            size: r.size,
            counts: r.counts,
        }
    }
}

impl From<CocoRle> for Segmentation {
    fn from(r: CocoRle) -> Self {
        Segmentation::CocoRle {
            size: r.size,
            counts: r.counts,
        }
    }
}

impl Serialize for Segmentation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Segmentation::CocoRle { size, counts } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("size", size)?;
                m.serialize_entry("counts", counts)?;
                m.end()
            }
            Segmentation::UncompressedRle { size, counts } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("size", size)?;
                m.serialize_entry("counts", counts)?;
                m.end()
            }
            Segmentation::BinaryMask {
                shape,
                sum,
                sha256,
                layout,
                stack_key,
            } => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("shape", shape)?;
                m.serialize_entry("sum", sum)?;
                m.serialize_entry("sha256", sha256)?;
                if let Some(l) = layout {
                    m.serialize_entry("layout", l)?;
                }
                m.serialize_entry("stack_key", stack_key)?;
                m.end()
            }
        }
    }
}

enum Counts {
    Str(String),
    List(Vec<u32>),
}

impl<'de> Deserialize<'de> for Counts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Counts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("RLE counts: a compressed string or a list of non-negative integers")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Counts, E> {
                Ok(Counts::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Counts, E> {
                Ok(Counts::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Counts, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(c) = seq.next_element::<u32>()? {
                    // No mask within the limit has more runs (`Rle::validate` checks the
                    // exact bound once the size is known).
                    if out.len() > MAX_MASK_PIXELS {
                        return Err(de::Error::custom(format!(
                            "more than {} RLE counts",
                            MAX_MASK_PIXELS + 1
                        )));
                    }
                    out.push(c);
                }
                Ok(Counts::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Segmentation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Segmentation;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a segmentation object: {size, counts} (RLE) or {shape, sum, sha256} (binary mask)",
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Segmentation, A::Error> {
                let mut size: Option<[usize; 2]> = None;
                let mut counts: Option<Counts> = None;
                let mut shape: Option<[usize; 2]> = None;
                let mut sum: Option<u64> = None;
                let mut sha256: Option<String> = None;
                let mut layout: Option<String> = None;
                let mut stack_key: Option<String> = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "size" => size = Some(map.next_value()?),
                        "counts" => counts = Some(map.next_value()?),
                        "shape" => shape = Some(map.next_value()?),
                        "sum" => sum = Some(map.next_value()?),
                        "sha256" => sha256 = Some(map.next_value()?),
                        "layout" => layout = map.next_value()?,
                        "stack_key" => stack_key = map.next_value()?,
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                match (size, counts, shape, sum, sha256) {
                    (Some(size), Some(Counts::Str(counts)), ..) => {
                        Ok(Segmentation::CocoRle { size, counts })
                    }
                    (Some(size), Some(Counts::List(counts)), ..) => {
                        Ok(Segmentation::UncompressedRle { size, counts })
                    }
                    (None, Some(_), ..) => Err(de::Error::missing_field("size")),
                    (Some(_), None, ..) => Err(de::Error::missing_field("counts")),
                    (None, None, Some(shape), Some(sum), Some(sha256)) => {
                        Ok(Segmentation::BinaryMask {
                            shape,
                            sum,
                            sha256,
                            layout,
                            stack_key,
                        })
                    }
                    _ => Err(de::Error::custom(
                        "segmentation needs {size, counts} (RLE) or {shape, sum, sha256} (binary mask)",
                    )),
                }
            }
        }
        d.deserialize_map(V)
    }
}

/// One mask record (SA-1B annotation / official AMG output entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// Annotation id (0 when absent, e.g. raw AMG output lists).
    #[serde(default)]
    pub id: u64,
    /// The mask.
    pub segmentation: Segmentation,
    /// Box `[x, y, w, h]` (AMG: `w = x1 - x0`, no `+ 1`).
    #[serde(serialize_with = "ser_int_like")]
    pub bbox: [f64; 4],
    /// Foreground pixel count.
    pub area: u64,
    /// Predicted mask IoU; NaN reads/writes as `null`.
    #[serde(deserialize_with = "de_nan_null")]
    pub predicted_iou: f64,
    /// Stability score; `None` (JSON `null`) when it is NaN (0/0).
    #[serde(default, deserialize_with = "de_opt_finite")]
    pub stability_score: Option<f64>,
    /// Crop the mask was generated in, `[x, y, w, h]`.
    #[serde(serialize_with = "ser_int_like")]
    pub crop_box: [f64; 4],
    /// Prompt point(s) in original image pixels.
    pub point_coords: Vec<[f64; 2]>,
}

impl Annotation {
    /// Stability score with `None` mapped back to NaN.
    pub fn stability_score_or_nan(&self) -> f64 {
        self.stability_score.unwrap_or(f64::NAN)
    }

    /// Sets the stability score from a raw value (NaN becomes `None`).
    pub fn set_stability_score(&mut self, v: f64) {
        self.stability_score = v.is_finite().then_some(v);
    }

    /// The annotation's mask as uncompressed RLE.
    pub fn rle(&self) -> Result<Rle, Sa1bError> {
        self.segmentation.to_rle()
    }
}

/// `image` block of an SA-1B file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub image_id: u64,
    pub width: usize,
    pub height: usize,
    pub file_name: String,
}

/// A per-image SA-1B file. The optional fields are the extra metadata the
/// reference AMG files carry; they are omitted when `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sa1bFile {
    pub image: ImageInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<serde_json::Value>,
    /// At most [`MAX_ANNOTATIONS`] when parsed.
    #[serde(deserialize_with = "de_annotations")]
    pub annotations: Vec<Annotation>,
}

/// Parses an SA-1B file (`{"image": .., "annotations": [..]}`) and checks
/// that every RLE is well formed.
pub fn parse_sa1b(json: &str) -> Result<Sa1bFile, Sa1bError> {
    check_json_len(json)?;
    let file: Sa1bFile = serde_json::from_str(json).map_err(too_many)?;
    validate_all(&file.annotations)?;
    Ok(file)
}

/// Parses annotations from either an SA-1B file or a bare JSON list of
/// annotation records (as `json.dump(generator.generate(img))` writes).
pub fn parse_annotations(json: &str) -> Result<Vec<Annotation>, Sa1bError> {
    check_json_len(json)?;
    let anns = if json.trim_start().starts_with('[') {
        serde_json::from_str::<Annotations>(json)
            .map_err(too_many)?
            .0
    } else {
        serde_json::from_str::<Sa1bFile>(json)
            .map_err(too_many)?
            .annotations
    };
    validate_all(&anns)?;
    Ok(anns)
}

fn check_json_len(json: &str) -> Result<(), Sa1bError> {
    if json.len() > MAX_JSON_BYTES {
        return Err(Sa1bError::JsonTooLarge {
            bytes: json.len(),
            max: MAX_JSON_BYTES,
        });
    }
    Ok(())
}

/// The message [`Annotations`] fails with past [`MAX_ANNOTATIONS`].
const TOO_MANY_ANNOTATIONS: &str = "too many annotations";

/// [`Sa1bError::TooManyAnnotations`] for the parse error [`Annotations`] raises, any other
/// error as [`Sa1bError::Json`].
fn too_many(e: serde_json::Error) -> Sa1bError {
    if e.to_string().starts_with(TOO_MANY_ANNOTATIONS) {
        Sa1bError::TooManyAnnotations {
            max: MAX_ANNOTATIONS,
        }
    } else {
        Sa1bError::Json(e)
    }
}

/// A list of at most [`MAX_ANNOTATIONS`] annotations (failing while parsing past it).
struct Annotations(Vec<Annotation>);

impl<'de> Deserialize<'de> for Annotations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Annotations;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of annotation records")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Annotations, A::Error> {
                let mut out = Vec::new();
                while let Some(a) = seq.next_element::<Annotation>()? {
                    if out.len() == MAX_ANNOTATIONS {
                        return Err(de::Error::custom(TOO_MANY_ANNOTATIONS));
                    }
                    out.push(a);
                }
                Ok(Annotations(out))
            }
        }
        d.deserialize_seq(V)
    }
}

fn de_annotations<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Annotation>, D::Error> {
    Annotations::deserialize(d).map(|a| a.0)
}

fn validate_all(anns: &[Annotation]) -> Result<(), Sa1bError> {
    for (index, a) in anns.iter().enumerate() {
        a.segmentation.validate().map_err(|source| Sa1bError::Rle {
            index,
            id: a.id,
            source,
        })?;
    }
    Ok(())
}

/// Serializes an SA-1B file to compact JSON (NaN scores as `null`).
pub fn to_json(file: &Sa1bFile) -> String {
    // Serialization of these types cannot fail (string keys, no maps with
    // non-string keys); fall back to an empty object defensively.
    serde_json::to_string(file).unwrap_or_else(|_| "{}".to_owned())
}

/// Serializes a list of annotation records to compact JSON.
pub fn annotations_to_json(anns: &[Annotation]) -> String {
    serde_json::to_string(anns).unwrap_or_else(|_| "[]".to_owned())
}

fn ser_int_like<S: Serializer>(v: &[f64; 4], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeTuple;
    let mut t = s.serialize_tuple(4)?;
    for &x in v {
        if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
            t.serialize_element(&(x as i64))?;
        } else {
            t.serialize_element(&x)?;
        }
    }
    t.end()
}

fn de_nan_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

fn de_opt_finite<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.filter(|v| v.is_finite()))
}
