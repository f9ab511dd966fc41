//! COCO run-length encoding with pycocotools semantics.
//!
//! Masks are given row-major (`h x w`); RLE runs are column-major (Fortran
//! order), alternate between 0 and 1 and always start with a (possibly empty)
//! run of zeros. The compressed string form is byte-identical to
//! pycocotools' `rleToString` / `rleFrString`.

use serde::{Deserialize, Serialize};

/// The largest mask an RLE may describe, in pixels (`h * w`): the crate's
/// [`MAX_IMAGE_PIXELS`](crate::preprocess::MAX_IMAGE_PIXELS), 2^28, since a mask is as large as
/// the image it covers. A larger `size` is [`RleError::TooLarge`] before anything is
/// allocated. Enforced by [`Rle::validate`] (so by [`Rle::decode`], [`Rle::iou`]) and
/// [`Rle::from_string_compressed`].
pub const MAX_MASK_PIXELS: usize = crate::preprocess::MAX_IMAGE_PIXELS;

/// Column-major run detection over a row-major mask (no per-pixel closure
/// call, which keeps debug builds fast). The work is proportional to `h * w`, the
/// mask's length: an empty mask returns at once whatever its other side (a
/// `0 x 2^32` mask must not loop over 2^32 empty columns).
macro_rules! encode_runs {
    ($mask:expr, $h:expr, $w:expr, |$v:ident: $t:ty| $fg:expr) => {{
        let (mask, h, w) = ($mask, $h, $w);
        let mut counts: Vec<u32> = Vec::new();
        let mut prev = false;
        let mut run: u64 = 0;
        let columns = if h == 0 { 0 } else { w };
        for x in 0..columns {
            let mut i = x;
            for _ in 0..h {
                let $v: $t = mask[i];
                let cur: bool = $fg;
                if cur != prev {
                    counts.push(to_u32(run));
                    run = 0;
                    prev = cur;
                }
                run += 1;
                i += w;
            }
        }
        counts.push(to_u32(run));
        Rle {
            size: [h, w],
            counts,
        }
    }};
}

/// Uncompressed RLE: counts of alternating runs, column-major (Fortran order)
/// over an `h x w` mask, starting with a run of zeros (possibly 0).
///
/// Serializes as `{"size": [h, w], "counts": [..]}`, the shape of the official
/// AMG `uncompressed_rle` output (`mask_to_rle_pytorch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rle {
    /// `[h, w]`.
    pub size: [usize; 2],
    /// Run lengths, zeros first.
    pub counts: Vec<u32>,
}

/// Compressed COCO RLE as written by `coco_encode_rle`:
/// `{"size": [h, w], "counts": "<pycocotools string>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CocoRle {
    /// `[h, w]`.
    pub size: [usize; 2],
    /// pycocotools compressed counts string.
    pub counts: String,
}

/// Errors for malformed RLE data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RleError {
    /// The run lengths do not cover the mask exactly.
    #[error("RLE counts sum to {sum} but the mask size {h}x{w} has {expected} pixels")]
    CountsSumMismatch {
        sum: u64,
        h: usize,
        w: usize,
        expected: u64,
    },
    /// A character outside pycocotools' alphabet (ASCII 48..=111).
    #[error("invalid character {ch:?} at byte {pos} of compressed RLE string (allowed: '0'..='o')")]
    BadChar { ch: char, pos: usize },
    /// The string ended inside a multi-character value.
    #[error("compressed RLE string ends in the middle of a value")]
    Truncated,
    /// A single value uses more characters than any 32-bit count could need.
    #[error("compressed RLE value starting at byte {pos} is too long")]
    ValueTooLong { pos: usize },
    /// A decoded run length is negative or does not fit in 32 bits.
    #[error("decoded RLE count #{index} = {value} is out of range 0..=4294967295")]
    CountOutOfRange { index: usize, value: i64 },
    /// Two RLEs of different mask sizes were combined.
    #[error("RLE sizes differ: {a:?} vs {b:?}")]
    SizeMismatch { a: [usize; 2], b: [usize; 2] },
    /// `h * w` is over [`MAX_MASK_PIXELS`] (or overflows).
    #[error("mask size {h}x{w} is too large: over the limit of {MAX_MASK_PIXELS} pixels")]
    TooLarge { h: usize, w: usize },
    /// More runs than an `h x w` mask can have (`h * w + 1`).
    #[error("{len} RLE counts for a {h}x{w} mask, which has at most {max} runs")]
    TooManyCounts {
        len: usize,
        h: usize,
        w: usize,
        max: usize,
    },
}

impl Rle {
    /// Encodes a row-major `h x w` boolean mask (pycocotools `encode`,
    /// amg.py `mask_to_rle_pytorch`). An empty (`h * w == 0`) mask gives
    /// `counts == [0]` like pycocotools.
    ///
    /// # Panics
    /// If `mask.len() != h * w`, or a run is longer than `u32::MAX`.
    pub fn encode(mask: &[bool], h: usize, w: usize) -> Rle {
        assert_eq!(mask.len(), h * w, "mask length must be h * w");
        encode_runs!(mask, h, w, |v: bool| v)
    }

    /// Like [`Rle::encode`] for a `u8` mask; nonzero means foreground.
    pub fn encode_u8(mask: &[u8], h: usize, w: usize) -> Rle {
        assert_eq!(mask.len(), h * w, "mask length must be h * w");
        encode_runs!(mask, h, w, |v: u8| v != 0)
    }

    /// Mask height.
    pub fn height(&self) -> usize {
        self.size[0]
    }

    /// Mask width.
    pub fn width(&self) -> usize {
        self.size[1]
    }

    /// The number of pixels of an `h x w` mask, when it is within [`MAX_MASK_PIXELS`].
    pub fn checked_pixels([h, w]: [usize; 2]) -> Result<usize, RleError> {
        h.checked_mul(w)
            .filter(|&n| n <= MAX_MASK_PIXELS)
            .ok_or(RleError::TooLarge { h, w })
    }

    /// Checks that the mask is at most [`MAX_MASK_PIXELS`], that there are at most
    /// `h * w + 1` counts and that they sum to `h * w`.
    pub fn validate(&self) -> Result<(), RleError> {
        let [h, w] = self.size;
        let pixels = Self::checked_pixels(self.size)?;
        if self.counts.len() > pixels + 1 {
            return Err(RleError::TooManyCounts {
                len: self.counts.len(),
                h,
                w,
                max: pixels + 1,
            });
        }
        let sum: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        let expected = pixels as u64;
        if sum != expected {
            return Err(RleError::CountsSumMismatch {
                sum,
                h,
                w,
                expected,
            });
        }
        Ok(())
    }

    /// Decodes to a row-major `h x w` mask (amg.py `rle_to_mask`).
    pub fn decode(&self) -> Result<Vec<bool>, RleError> {
        self.validate()?;
        let [h, w] = self.size;
        let mut out = vec![false; h * w];
        // current column-major position as (y, x)
        let (mut y, mut x) = (0usize, 0usize);
        let mut val = false;
        for &c in &self.counts {
            let mut c = c as usize;
            if val {
                while c > 0 {
                    let take = c.min(h - y);
                    let mut i = y * w + x;
                    for _ in 0..take {
                        out[i] = true;
                        i += w;
                    }
                    c -= take;
                    y += take;
                    if y == h {
                        y = 0;
                        x += 1;
                    }
                }
            } else if h > 0 {
                let pos = x * h + y + c;
                (y, x) = (pos % h, pos / h);
            }
            val = !val;
        }
        Ok(out)
    }

    /// Decodes to row-major `0/1` bytes.
    pub fn decode_u8(&self) -> Result<Vec<u8>, RleError> {
        Ok(self.decode()?.into_iter().map(u8::from).collect())
    }

    /// Foreground pixel count: sum of the odd-position counts
    /// (amg.py `area_from_rle`, pycocotools `area`).
    pub fn area(&self) -> u64 {
        self.counts
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&c| u64::from(c))
            .sum()
    }

    /// Bounding box `[x, y, w, h]` with pycocotools `toBbox` semantics
    /// (width/height are `max - min + 1`; empty mask gives zeros).
    ///
    /// Note: the AMG's own `bbox` field uses `batched_mask_to_box` +
    /// `box_xyxy_to_xywh` instead, i.e. *without* the `+ 1`.
    pub fn bbox_xywh(&self) -> [f64; 4] {
        let [h, w] = self.size;
        let m = self.counts.len() / 2 * 2;
        if m == 0 || h == 0 || w == 0 {
            return [0.0; 4];
        }
        let (h64, w64) = (h as u64, w as u64);
        let (mut xs, mut ys, mut xe, mut ye) = (w64, h64, 0u64, 0u64);
        let mut cc: u64 = 0;
        let mut xp = 0u64;
        for j in 0..m {
            cc += u64::from(self.counts[j]);
            // pycocotools uses unsigned wrap-around here (t = cc - 1 with
            // cc == 0 only happens for malformed zero runs); saturate instead.
            let t = cc.saturating_sub((j % 2) as u64);
            let y = t % h64;
            let x = (t - y) / h64;
            if j % 2 == 0 {
                xp = x;
            } else if xp < x {
                ys = 0;
                ye = h64 - 1;
            }
            xs = xs.min(x);
            xe = xe.max(x);
            ys = ys.min(y);
            ye = ye.max(y);
        }
        [
            xs as f64,
            ys as f64,
            (xe as f64) - (xs as f64) + 1.0,
            (ye as f64) - (ys as f64) + 1.0,
        ]
    }

    /// pycocotools `rleToString`: LEB128-like, 5 bits per char plus
    /// continuation bit, offset by 48, counts `i > 2` delta-coded against
    /// `counts[i - 2]`.
    pub fn to_string_compressed(&self) -> String {
        let mut s = String::with_capacity(self.counts.len() * 2);
        for (i, &c) in self.counts.iter().enumerate() {
            let mut x = i64::from(c);
            if i > 2 {
                x -= i64::from(self.counts[i - 2]);
            }
            loop {
                let mut ch = (x & 0x1f) as u8;
                x >>= 5;
                let more = if ch & 0x10 != 0 { x != -1 } else { x != 0 };
                if more {
                    ch |= 0x20;
                }
                s.push(char::from(ch + 48));
                if !more {
                    break;
                }
            }
        }
        s
    }

    /// pycocotools `rleFrString`, plus validation that the counts cover the
    /// mask exactly.
    pub fn from_string_compressed(s: &str, size: [usize; 2]) -> Result<Rle, RleError> {
        let bytes = s.as_bytes();
        let max = Self::checked_pixels(size)? + 1;
        let [h, w] = size;
        // Every value takes at least one character.
        let mut counts: Vec<u32> = Vec::with_capacity(bytes.len().min(max));
        let mut p = 0usize;
        while p < bytes.len() {
            let start = p;
            let mut x: i64 = 0;
            let mut k = 0u32;
            loop {
                let Some(&b) = bytes.get(p) else {
                    return Err(RleError::Truncated);
                };
                if !(48..=111).contains(&b) {
                    // report the full (possibly multi-byte) character
                    let ch = s[p..].chars().next().unwrap_or('?');
                    return Err(RleError::BadChar { ch, pos: p });
                }
                if k >= 12 {
                    return Err(RleError::ValueTooLong { pos: start });
                }
                let c = i64::from(b - 48);
                x |= (c & 0x1f) << (5 * k);
                let more = c & 0x20 != 0;
                p += 1;
                k += 1;
                if !more {
                    if c & 0x10 != 0 {
                        x |= -1i64 << (5 * k);
                    }
                    break;
                }
            }
            let m = counts.len();
            if m == max {
                return Err(RleError::TooManyCounts {
                    len: m + 1,
                    h,
                    w,
                    max,
                });
            }
            if m > 2 {
                x += i64::from(counts[m - 2]);
            }
            let v =
                u32::try_from(x).map_err(|_| RleError::CountOutOfRange { index: m, value: x })?;
            counts.push(v);
        }
        let rle = Rle { size, counts };
        rle.validate()?;
        Ok(rle)
    }

    /// amg.py `coco_encode_rle`: the `{"size", "counts": "<string>"}` form.
    pub fn to_coco(&self) -> CocoRle {
        CocoRle {
            size: self.size,
            counts: self.to_string_compressed(),
        }
    }

    /// Mask IoU computed on the runs (no full decode). Returns 0 when both
    /// masks are empty (like pycocotools).
    pub fn iou(&self, other: &Rle) -> Result<f64, RleError> {
        if self.size != other.size {
            return Err(RleError::SizeMismatch {
                a: self.size,
                b: other.size,
            });
        }
        self.validate()?;
        other.validate()?;
        let inter = intersection(&self.counts, &other.counts);
        let union = self.area() + other.area() - inter;
        Ok(if union == 0 {
            0.0
        } else {
            inter as f64 / union as f64
        })
    }
}

impl CocoRle {
    /// Decodes the compressed string into an uncompressed [`Rle`].
    pub fn to_rle(&self) -> Result<Rle, RleError> {
        Rle::from_string_compressed(&self.counts, self.size)
    }
}

/// Number of positions where both run sequences are foreground.
fn intersection(a: &[u32], b: &[u32]) -> u64 {
    let (mut ia, mut ib) = (0usize, 0usize);
    // remaining length of the current run, and whether it is foreground
    let (mut ra, mut rb) = (0u64, 0u64);
    let (mut va, mut vb) = (true, true); // flipped before the first run
    let mut inter = 0u64;
    loop {
        while ra == 0 {
            let Some(&c) = a.get(ia) else { return inter };
            ra = u64::from(c);
            va = !va;
            ia += 1;
        }
        while rb == 0 {
            let Some(&c) = b.get(ib) else { return inter };
            rb = u64::from(c);
            vb = !vb;
            ib += 1;
        }
        let step = ra.min(rb);
        if va && vb {
            inter += step;
        }
        ra -= step;
        rb -= step;
    }
}

fn to_u32(v: u64) -> u32 {
    u32::try_from(v).expect("RLE run longer than u32::MAX")
}
