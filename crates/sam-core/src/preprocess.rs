//! Host-side image preprocessing, exactly as the official SAM Python code does it.
//!
//! The official pipeline (`SamPredictor.set_image`) is:
//!
//! 1. `ResizeLongestSide(1024).apply_image`: the longest side becomes 1024 with
//!    [`preprocess_shape`], and the `uint8` image is resized with Pillow's
//!    `Image.resize(size, BILINEAR)` (via torchvision). [`resize_rgb`] is a
//!    bit-exact port of Pillow's (13.0) 8-bit resampler (`ImagingResample`):
//!    separable two-pass, filter support scaled by the downscale factor (so it
//!    antialiases when shrinking), 22-bit fixed-point coefficients.
//! 2. `Sam.preprocess`: `(x - pixel_mean) / pixel_std` in `f32` on the 0..255
//!    values, then zero padding at the bottom/right to 1024x1024
//!    ([`normalize_and_pad`]).
//!
//! Prompts given in original-image pixels are mapped to the resized frame with
//! [`apply_coords`] / [`apply_boxes`] (`ResizeLongestSide.apply_coords/apply_boxes`).
//!
//! Everything here works on plain host buffers (no tensor library) and never
//! allocates per pixel.

use std::fmt;

/// Side length of the square model input (`image_encoder.img_size`).
pub const IMG_SIZE: usize = 1024;
/// Per-channel (R, G, B) mean subtracted from the 0..255 pixel values.
pub const PIXEL_MEAN: [f32; 3] = [123.675, 116.28, 103.53];
/// Per-channel (R, G, B) standard deviation the centred values are divided by.
pub const PIXEL_STD: [f32; 3] = [58.395, 57.12, 57.375];
/// Largest accepted image, in pixels: 2^28 (268,435,456 pixels, e.g. 16384x16384;
/// 768 MiB of RGB data). This keeps every byte count below 2^30 so the
/// arithmetic is safe on 32-bit (wasm32) targets, and leaves room for the
/// resampler's intermediate buffer inside a 4 GiB wasm memory. Pillow itself
/// refuses images above ~179 M pixels by default (decompression-bomb guard).
pub const MAX_IMAGE_PIXELS: usize = 1 << 28;

/// Fixed-point precision of Pillow's 8-bit resampler (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// Rounding offset every accumulator starts at (`1 << (PRECISION_BITS - 1)`).
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Errors raised when building an [`RgbImage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Width or height is zero.
    #[error("image is empty ({width}x{height})")]
    Empty {
        /// Requested width.
        width: usize,
        /// Requested height.
        height: usize,
    },
    /// More than `max` pixels (see [`MAX_IMAGE_PIXELS`]).
    #[error("image {width}x{height} exceeds the limit of {max} pixels")]
    TooLarge {
        /// Requested width.
        width: usize,
        /// Requested height.
        height: usize,
        /// The pixel limit.
        max: usize,
    },
    /// The pixel buffer length does not match `width * height * channels`.
    #[error("pixel buffer has {found} bytes, expected {expected}")]
    BadBuffer {
        /// Expected byte length.
        expected: usize,
        /// Actual byte length.
        found: usize,
    },
    /// Channel count other than 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA).
    #[error("unsupported channel count {0} (expected 1, 2, 3 or 4)")]
    UnsupportedChannels(usize),
}

/// Checks the dimensions and returns the expected buffer length for `channels`.
fn checked_len(width: usize, height: usize, channels: usize) -> Result<usize, ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::Empty { width, height });
    }
    let too_large = ImageError::TooLarge {
        width,
        height,
        max: MAX_IMAGE_PIXELS,
    };
    let pixels = width.checked_mul(height).ok_or(too_large.clone())?;
    if pixels > MAX_IMAGE_PIXELS {
        return Err(too_large);
    }
    // pixels <= 2^28 and channels <= 4: at most 2^30, fits a 32-bit usize.
    Ok(pixels * channels)
}

fn check_buffer(expected: usize, found: usize) -> Result<(), ImageError> {
    if expected == found {
        Ok(())
    } else {
        Err(ImageError::BadBuffer { expected, found })
    }
}

/// An 8-bit RGB image, HWC row-major (`data[(y * width + x) * 3 + c]`).
///
/// Invariant (guaranteed by the constructors): `width >= 1`, `height >= 1`,
/// `width * height <= MAX_IMAGE_PIXELS` and `data.len() == width * height * 3`.
/// The fields are public for convenience; functions of this module may panic
/// if a hand-built value breaks the invariant ([`RgbImage::validate`] checks it).
#[derive(Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width * 3` bytes, RGB interleaved, row-major.
    pub data: Vec<u8>,
}

impl fmt::Debug for RgbImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RgbImage")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl RgbImage {
    /// Wraps an RGB buffer of `width * height * 3` bytes.
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Self, ImageError> {
        let expected = checked_len(width, height, 3)?;
        check_buffer(expected, data.len())?;
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Converts an RGBA buffer by dropping alpha (like PIL's `convert("RGB")`:
    /// no premultiplication, no compositing on a background).
    pub fn from_rgba(width: usize, height: usize, rgba: &[u8]) -> Result<Self, ImageError> {
        Self::from_channels(width, height, 4, rgba)
    }

    /// Converts a grayscale buffer by replicating the value into R, G and B
    /// (PIL `L` -> `RGB`).
    pub fn from_gray(width: usize, height: usize, gray: &[u8]) -> Result<Self, ImageError> {
        Self::from_channels(width, height, 1, gray)
    }

    /// Converts an interleaved buffer with 1 (gray), 2 (gray + alpha),
    /// 3 (RGB) or 4 (RGBA) channels; alpha is dropped, gray is replicated.
    pub fn from_channels(
        width: usize,
        height: usize,
        channels: usize,
        data: &[u8],
    ) -> Result<Self, ImageError> {
        if !(1..=4).contains(&channels) {
            return Err(ImageError::UnsupportedChannels(channels));
        }
        let expected = checked_len(width, height, channels)?;
        check_buffer(expected, data.len())?;
        let mut out = Vec::with_capacity(width * height * 3);
        match channels {
            3 => out.extend_from_slice(data),
            4 => {
                for p in data.chunks_exact(4) {
                    out.extend_from_slice(&p[..3]);
                }
            }
            _ => {
                for p in data.chunks_exact(channels) {
                    out.extend_from_slice(&[p[0], p[0], p[0]]);
                }
            }
        }
        Ok(Self {
            width,
            height,
            data: out,
        })
    }

    /// Checks the type invariant (useful after building the struct by hand).
    pub fn validate(&self) -> Result<(), ImageError> {
        let expected = checked_len(self.width, self.height, 3)?;
        check_buffer(expected, self.data.len())
    }

    /// Pixel `(x, y)` as `[r, g, b]`. Panics when out of bounds.
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        assert!(x < self.width && y < self.height, "pixel out of bounds");
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}

/// `ResizeLongestSide.get_preprocess_shape`: returns `(new_h, new_w)` with
/// `scale = long_side / max(old_h, old_w)` and `int(old * scale + 0.5)`, all in
/// `f64` like Python.
///
/// Deviation from the official code: a non-zero side that would round to 0
/// (e.g. 1x5000 -> 0.2048 -> 0) is clamped to 1 pixel; the official code
/// crashes there (Pillow rejects a zero-size resize). A zero input side stays 0.
pub fn preprocess_shape(old_h: usize, old_w: usize, long_side: usize) -> (usize, usize) {
    let longest = old_h.max(old_w);
    if longest == 0 {
        return (0, 0);
    }
    let scale = long_side as f64 * 1.0 / longest as f64;
    let new_h = (old_h as f64 * scale + 0.5) as usize;
    let new_w = (old_w as f64 * scale + 0.5) as usize;
    let clamp = |new: usize, old: usize| if old > 0 { new.max(1) } else { 0 };
    (clamp(new_h, old_h), clamp(new_w, old_w))
}

/// One output sample of a resampling axis: `len` taps starting at input index
/// `start`, their weights at `weights[off..off + len]`.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    len: usize,
    off: usize,
}

/// Precomputed fixed-point filter taps for one axis.
struct AxisCoeffs {
    spans: Vec<Span>,
    weights: Vec<i32>,
}

/// Pillow's `bilinear_filter` (triangle, support 1).
#[inline]
fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

/// Port of Pillow's `precompute_coeffs` (box = whole axis) followed by
/// `normalize_coeffs_8bpc`. Weights are stored compactly (only the `xmax`
/// taps Pillow actually uses, without its zero tail), so that extreme
/// downscales do not allocate `out_size * ksize` doubles.
fn precompute_coeffs(in_size: usize, out_size: usize) -> AxisCoeffs {
    // Pillow passes the box as C floats: in0 = 0.0f, in1 = (float)in_size,
    // and computes the scale as (double)(in1 - in0) / outSize.
    let in0 = 0.0f32;
    let in1 = in_size as f32;
    let scale = f64::from(in1 - in0) / out_size as f64;
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = 1.0 * filterscale; // BILINEAR support is 1.0
    let ss = 1.0 / filterscale;
    let fixed_one = f64::from(1u32 << PRECISION_BITS);

    let mut spans = Vec::with_capacity(out_size);
    // Each output uses at most 2*support+2 taps; the sum over all outputs is
    // about 2 * max(in, out) + 2 * out.
    let mut weights: Vec<i32> = Vec::with_capacity(
        in_size
            .saturating_mul(2)
            .saturating_add(out_size.saturating_mul(3)),
    );
    let mut tmp: Vec<f64> = Vec::new();
    for xx in 0..out_size {
        let center = f64::from(in0) + (xx as f64 + 0.5) * scale;
        // C `(int)` truncates toward zero; Rust `as` does too (and saturates).
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
        let n = (xmax - xmin).max(0);
        tmp.clear();
        let mut ww = 0.0f64;
        for x in 0..n {
            let w = bilinear_filter(((x + xmin) as f64 - center + 0.5) * ss);
            tmp.push(w);
            ww += w;
        }
        let off = weights.len();
        for &w in &tmp {
            let w = if ww != 0.0 { w / ww } else { w };
            let k = if w < 0.0 {
                (-0.5 + w * fixed_one) as i32
            } else {
                (0.5 + w * fixed_one) as i32
            };
            weights.push(k);
        }
        spans.push(Span {
            start: xmin as usize,
            len: n as usize,
            off,
        });
    }
    AxisCoeffs { spans, weights }
}

/// Pillow's `clip8`: `(acc >> PRECISION_BITS)` clamped to 0..=255.
#[inline(always)]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// `ImagingResampleHorizontal_8bpc` for 3 bands: every input row, `out_w`
/// outputs per row.
fn resample_horizontal(src: &[u8], in_w: usize, rows: usize, c: &AxisCoeffs) -> Vec<u8> {
    let out_w = c.spans.len();
    let mut out = vec![0u8; out_w * rows * 3];
    for (src_row, out_row) in src
        .chunks_exact(in_w * 3)
        .zip(out.chunks_exact_mut(out_w * 3))
    {
        for (span, o) in c.spans.iter().zip(out_row.chunks_exact_mut(3)) {
            let k = &c.weights[span.off..span.off + span.len];
            let px = &src_row[span.start * 3..(span.start + span.len) * 3];
            let (mut s0, mut s1, mut s2) = (HALF, HALF, HALF);
            for (p, &w) in px.chunks_exact(3).zip(k) {
                s0 += i32::from(p[0]) * w;
                s1 += i32::from(p[1]) * w;
                s2 += i32::from(p[2]) * w;
            }
            o[0] = clip8(s0);
            o[1] = clip8(s1);
            o[2] = clip8(s2);
        }
    }
    out
}

/// `ImagingResampleVertical_8bpc` for 3 bands. Accumulates whole rows (same
/// integer sums as Pillow's per-pixel loop, summed in the same order).
fn resample_vertical(src: &[u8], width: usize, c: &AxisCoeffs) -> Vec<u8> {
    let row_len = width * 3;
    let out_h = c.spans.len();
    let mut out = vec![0u8; row_len * out_h];
    let mut acc = vec![0i32; row_len];
    for (span, out_row) in c.spans.iter().zip(out.chunks_exact_mut(row_len)) {
        acc.fill(HALF);
        let k = &c.weights[span.off..span.off + span.len];
        for (t, &w) in k.iter().enumerate() {
            if w == 0 {
                continue; // adding 0 changes nothing
            }
            let y = span.start + t;
            let row = &src[y * row_len..(y + 1) * row_len];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += i32::from(p) * w;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// Pillow-exact `Image.resize((new_w, new_h), Image.BILINEAR)` of an RGB image
/// (no `reducing_gap`, so no `reduce()` shortcut; antialiased when shrinking).
///
/// Follows Pillow 13's `ImagingResampleInner` (the version the reference data
/// was made with): the horizontal pass runs first, unless the height shrinks
/// by more than twice as many pixels as the width
/// (`in_h - new_h > 0 && in_h - new_h > 2 * (in_w - new_w)`), in which case
/// the vertical pass runs first. Older Pillow releases always ran the
/// horizontal pass first; in that vertical-first case they can differ by ±1.
///
/// A zero target dimension is clamped to 1. Panics only if `img` breaks the
/// [`RgbImage`] invariant.
pub fn resize_rgb(img: &RgbImage, new_w: usize, new_h: usize) -> RgbImage {
    let (in_w, in_h) = (img.width, img.height);
    assert_eq!(
        img.data.len(),
        in_w * in_h * 3,
        "RgbImage invariant broken: data length"
    );
    let new_w = new_w.max(1);
    let new_h = new_h.max(1);
    // Pillow: need_horizontal / need_vertical (box is the whole image).
    let need_h = new_w != in_w;
    let need_v = new_h != in_h;
    let data = match (need_h, need_v) {
        (false, false) => img.data.clone(),
        (true, false) => {
            resample_horizontal(&img.data, in_w, in_h, &precompute_coeffs(in_w, new_w))
        }
        (false, true) => resample_vertical(&img.data, in_w, &precompute_coeffs(in_h, new_h)),
        (true, true) => {
            let cv = precompute_coeffs(in_h, new_h);
            let ch = precompute_coeffs(in_w, new_w);
            // Sizes are below 2^28, so these differences fit an i64 exactly.
            let dy = in_h as i64 - new_h as i64;
            let dx = in_w as i64 - new_w as i64;
            let horizontal_first = !(dy > 0 && dy > dx * 2);
            if horizontal_first {
                // Pillow only resamples the source rows the vertical pass
                // uses (bounds_vert[0] .. last); with the whole-image box
                // that is every row, but follow it anyway.
                let first = cv.spans.first().map_or(0, |s| s.start);
                let last = cv.spans.last().map_or(in_h, |s| s.start + s.len);
                let rows = &img.data[first * in_w * 3..last * in_w * 3];
                let tmp = resample_horizontal(rows, in_w, last - first, &ch);
                let cv = AxisCoeffs {
                    spans: cv
                        .spans
                        .iter()
                        .map(|s| Span {
                            start: s.start - first,
                            ..*s
                        })
                        .collect(),
                    weights: cv.weights,
                };
                resample_vertical(&tmp, new_w, &cv)
            } else {
                let tmp = resample_vertical(&img.data, in_w, &cv);
                resample_horizontal(&tmp, in_w, new_h, &ch)
            }
        }
    };
    RgbImage {
        width: new_w,
        height: new_h,
        data,
    }
}

/// `ResizeLongestSide(long_side).apply_image`: resizes so that the longest side
/// is `long_side` (see [`preprocess_shape`] for the size and its clamping).
pub fn resize_longest_side(img: &RgbImage, long_side: usize) -> RgbImage {
    let (new_h, new_w) = preprocess_shape(img.height, img.width, long_side);
    resize_rgb(img, new_w, new_h)
}

/// `Sam.preprocess` on an already resized image: `((v as f32) - mean) / std`
/// per channel, zero padded at the bottom/right to `IMG_SIZE x IMG_SIZE`.
///
/// Returns CHW `f32` data of length `3 * IMG_SIZE * IMG_SIZE` (the batch
/// dimension of 1 is implied). An image larger than `IMG_SIZE` in a dimension
/// is cropped to the top-left `IMG_SIZE` pixels there (what the official
/// `F.pad` with a negative amount does).
pub fn normalize_and_pad(resized: &RgbImage) -> Vec<f32> {
    let plane = IMG_SIZE * IMG_SIZE;
    let mut out = vec![0.0f32; 3 * plane];
    // 256-entry lookup tables computed with exactly the same f32 operations.
    let mut lut = [[0.0f32; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        for (v, e) in table.iter_mut().enumerate() {
            *e = (v as f32 - PIXEL_MEAN[c]) / PIXEL_STD[c];
        }
    }
    let w = resized.width.min(IMG_SIZE);
    let h = resized.height.min(IMG_SIZE);
    let (r_plane, rest) = out.split_at_mut(plane);
    let (g_plane, b_plane) = rest.split_at_mut(plane);
    for y in 0..h {
        let src = &resized.data[y * resized.width * 3..(y * resized.width + w) * 3];
        let dst = y * IMG_SIZE..y * IMG_SIZE + w;
        for (((p, r), g), b) in src
            .chunks_exact(3)
            .zip(&mut r_plane[dst.clone()])
            .zip(&mut g_plane[dst.clone()])
            .zip(&mut b_plane[dst])
        {
            *r = lut[0][usize::from(p[0])];
            *g = lut[1][usize::from(p[1])];
            *b = lut[2][usize::from(p[2])];
        }
    }
    out
}

/// The full official preprocessing: [`resize_longest_side`] to [`IMG_SIZE`]
/// then [`normalize_and_pad`]. Returns the CHW input (`3 * 1024 * 1024`) and
/// the input size `(h, w)` after the resize (needed to crop masks later).
pub fn preprocess(img: &RgbImage) -> (Vec<f32>, (usize, usize)) {
    let resized = resize_longest_side(img, IMG_SIZE);
    let input = normalize_and_pad(&resized);
    (input, (resized.height, resized.width))
}

/// Scale factors `(new_w / old_w, new_h / old_h)` in `f64`; 1.0 for a zero side.
fn coord_scales(orig_hw: (usize, usize), long_side: usize) -> (f64, f64) {
    let (old_h, old_w) = orig_hw;
    let (new_h, new_w) = preprocess_shape(old_h, old_w, long_side);
    let ratio = |new: usize, old: usize| {
        if old == 0 {
            1.0
        } else {
            new as f64 / old as f64
        }
    };
    (ratio(new_w, old_w), ratio(new_h, old_h))
}

/// `ResizeLongestSide.apply_coords` in `f64` (exactly numpy's float64 math):
/// `x * (new_w / old_w)`, `y * (new_h / old_h)`. `orig_hw` is `(h, w)`.
/// A zero original side leaves that coordinate unchanged.
pub fn apply_coords_f64(
    coords: &[[f64; 2]],
    orig_hw: (usize, usize),
    long_side: usize,
) -> Vec<[f64; 2]> {
    let (sx, sy) = coord_scales(orig_hw, long_side);
    coords.iter().map(|&[x, y]| [x * sx, y * sy]).collect()
}

/// `ResizeLongestSide.apply_coords` for `f32` points `(x, y)`: computed in `f64`
/// like numpy, then rounded to `f32` (what `SamPredictor.predict` feeds the
/// model). `orig_hw` is `(h, w)`.
pub fn apply_coords(
    coords: &[[f32; 2]],
    orig_hw: (usize, usize),
    long_side: usize,
) -> Vec<[f32; 2]> {
    let (sx, sy) = coord_scales(orig_hw, long_side);
    coords
        .iter()
        .map(|&[x, y]| [(f64::from(x) * sx) as f32, (f64::from(y) * sy) as f32])
        .collect()
}

/// `ResizeLongestSide.apply_boxes` in `f64`: XYXY boxes, both corners go
/// through [`apply_coords_f64`].
pub fn apply_boxes_f64(
    boxes: &[[f64; 4]],
    orig_hw: (usize, usize),
    long_side: usize,
) -> Vec<[f64; 4]> {
    let (sx, sy) = coord_scales(orig_hw, long_side);
    boxes
        .iter()
        .map(|&[x0, y0, x1, y1]| [x0 * sx, y0 * sy, x1 * sx, y1 * sy])
        .collect()
}

/// `ResizeLongestSide.apply_boxes` for `f32` XYXY boxes (f64 math, f32 result).
pub fn apply_boxes(boxes: &[[f32; 4]], orig_hw: (usize, usize), long_side: usize) -> Vec<[f32; 4]> {
    let (sx, sy) = coord_scales(orig_hw, long_side);
    boxes
        .iter()
        .map(|b| {
            [
                (f64::from(b[0]) * sx) as f32,
                (f64::from(b[1]) * sy) as f32,
                (f64::from(b[2]) * sx) as f32,
                (f64::from(b[3]) * sy) as f32,
            ]
        })
        .collect()
}
