//! Masks as polygons and polygons as masks, the way annotation tools (CVAT, Label Studio,
//! COCO's `segmentation: [[x1, y1, ..]]`) store objects.
//!
//! * **Pixel-edge coordinates.** Pixel `(x, y)` is the unit square `[x, x+1] x [y, y+1]`; a
//!   traced outline runs along pixel edges, so an unsimplified polygon covers exactly the
//!   mask's pixels (a one-pixel mask is the square `(x,y) (x+1,y) (x+1,y+1) (x,y+1)`). This is
//!   pycocotools' convention too: its `frPyObjects` samples column `x` at `x + 0.5`.
//! * **Parts and holes.** A part is an 8-connected component of the mask (as OpenCV's
//!   `findContours` and SAM's `remove_small_regions` see it); its holes are the 4-connected
//!   background regions it encloses. Each [`Polygon`] has one exterior ring (positive signed
//!   area in image coordinates, y down) and its hole rings (negative area).
//! * **COCO's convention for holes.** COCO unions the polygons listed in one `segmentation`
//!   (pycocotools `merge`), so a hole cannot be a separate entry. Within one polygon,
//!   pycocotools fills by the even-odd rule; [`Polygon::to_coco`] therefore joins each hole to
//!   the exterior's first vertex by a zero-width bridge traversed both ways, which even-odd
//!   (and non-zero, the rings having opposite orientations) fills as the hole. [`coco_to_mask`]
//!   reads such lists back the same way.
//! * **Simplification** is Douglas-Peucker with a tolerance in pixels: every kept vertex is a
//!   traced vertex (integer coordinates), every dropped one lies within `tolerance` of the
//!   simplified ring. As with OpenCV's `approxPolyDP`, a simplified ring may touch itself or
//!   its holes.
//!
//! The tracing is written here (crack following, ~60 lines) rather than taken from a crate:
//! `imageproc`'s `find_contours` (Suzuki-Abe) returns the centres of border pixels, not pixel
//! edges (a one-pixel mask becomes a single point, every outline loses half a pixel), and
//! brings the `image` crate into the WebAssembly module; the `contour` crate (marching
//! squares) cuts corners diagonally between pixel centres; `geo`'s `Simplify` would bring
//! `geo` (rstar, robust predicates, i_overlay, ...) for a 30-line algorithm.

use serde::{Deserialize, Serialize};

use crate::io::rle::MAX_MASK_PIXELS;

/// A point `[x, y]` in pixel-edge image coordinates.
pub type Point = [f64; 2];

/// The most points [`polygons_to_mask`] and [`coco_to_mask`] accept in one call (all rings
/// together): 2^22, far more than the outline of any mask of [`MAX_MASK_PIXELS`] needs after
/// simplification, and small enough that rasterizing stays fast. More is
/// [`PolygonError::TooManyPoints`].
pub const MAX_POLYGON_POINTS: usize = 1 << 22;

/// Errors of the conversions between masks and polygons.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolygonError {
    /// The mask buffer does not hold `h * w` values.
    #[error("a {h}x{w} mask has {expected} pixels, got {len} values")]
    MaskSize {
        h: usize,
        w: usize,
        expected: usize,
        len: usize,
    },
    /// `h * w` is over [`MAX_MASK_PIXELS`] (or overflows).
    #[error("mask size {h}x{w} is too large: over the limit of {MAX_MASK_PIXELS} pixels")]
    TooLarge { h: usize, w: usize },
    /// More points than [`MAX_POLYGON_POINTS`].
    #[error("{count} polygon points: over the limit of {MAX_POLYGON_POINTS}")]
    TooManyPoints { count: usize },
    /// A coordinate is NaN or infinite.
    #[error("polygon coordinate {value} is not finite")]
    NotFinite { value: f64 },
    /// A flat COCO polygon `[x1, y1, x2, y2, ..]` of odd length.
    #[error("a COCO polygon needs an even number of coordinates, got {len}")]
    OddCoordinates { len: usize },
    /// A [`PolygonOptions`] field is negative or not finite.
    #[error("polygon option {name} = {value}: must be finite and >= 0")]
    BadOption { name: &'static str, value: f64 },
}

/// Options of [`mask_to_polygons`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PolygonOptions {
    /// Douglas-Peucker tolerance in pixels; 0 keeps every corner of the traced outline (the
    /// polygons then cover exactly the mask's pixels). Default 0.
    pub tolerance: f64,
    /// Parts of fewer pixels are dropped and holes enclosing fewer pixels are filled (like
    /// SAM's `min_mask_region_area`). Default 0.
    pub min_area: f64,
    /// Only the part with the most pixels (the first in raster order on a tie). Default false.
    pub largest_only: bool,
}

impl Default for PolygonOptions {
    fn default() -> Self {
        Self {
            tolerance: 0.0,
            min_area: 0.0,
            largest_only: false,
        }
    }
}

impl PolygonOptions {
    /// Checks that the tolerance and minimum area are finite and not negative.
    pub fn validate(&self) -> Result<(), PolygonError> {
        for (name, value) in [("tolerance", self.tolerance), ("minArea", self.min_area)] {
            if !value.is_finite() || value < 0.0 {
                return Err(PolygonError::BadOption { name, value });
            }
        }
        Ok(())
    }
}

/// One part of a mask: its outline and holes (rings open: the last point is not repeated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Polygon {
    /// The outer ring, `[x, y]` vertices, positive signed area (clockwise on screen).
    pub exterior: Vec<Point>,
    /// Hole rings, negative signed area.
    pub holes: Vec<Vec<Point>>,
    /// Pixels of the part in the mask (before simplification).
    pub pixel_area: u64,
}

impl Polygon {
    /// The flat COCO polygon `[x1, y1, x2, y2, ..]`: the exterior, then each hole joined to the
    /// exterior's first vertex by a zero-width bridge (see the module doc). Without holes, the
    /// exterior alone.
    pub fn to_coco(&self) -> Vec<f64> {
        let n = self.exterior.len() + self.holes.iter().map(|h| h.len() + 2).sum::<usize>();
        let mut flat = Vec::with_capacity(2 * n);
        flat.extend(self.exterior.iter().flatten());
        if let Some(&start) = self.exterior.first() {
            for hole in &self.holes {
                flat.extend(start);
                flat.extend(hole.iter().flatten());
                flat.extend(hole[0]);
            }
        }
        flat
    }

    /// Shoelace area of the rings (exterior minus holes), in square pixels.
    pub fn area(&self) -> f64 {
        signed_area(&self.exterior) + self.holes.iter().map(|h| signed_area(h)).sum::<f64>()
    }
}

/// Signed shoelace area of a ring in image coordinates (y down): positive for the traced
/// exteriors, negative for holes.
pub fn signed_area(ring: &[Point]) -> f64 {
    let n = ring.len();
    let mut twice = 0.0;
    for i in 0..n {
        let [x0, y0] = ring[i];
        let [x1, y1] = ring[(i + 1) % n];
        twice += x0 * y1 - x1 * y0;
    }
    twice / 2.0
}

/// Checks that a mask buffer of `len` values is `h x w` and within [`MAX_MASK_PIXELS`].
pub fn check_mask(len: usize, h: usize, w: usize) -> Result<(), PolygonError> {
    let expected = h
        .checked_mul(w)
        .filter(|&p| p <= MAX_MASK_PIXELS)
        .ok_or(PolygonError::TooLarge { h, w })?;
    if expected != len {
        return Err(PolygonError::MaskSize {
            h,
            w,
            expected,
            len,
        });
    }
    Ok(())
}

/// 8-connected components of `mask`: a label per pixel (0 outside, 1.. in raster order of
/// each component's first pixel) and each label's pixel count (index `label - 1`).
fn label_components(mask: &[u8], h: usize, w: usize) -> (Vec<u32>, Vec<u64>) {
    let mut labels = vec![0u32; h * w];
    let mut areas = Vec::new();
    let mut stack = Vec::new();
    for start in 0..h * w {
        if mask[start] == 0 || labels[start] != 0 {
            continue;
        }
        areas.push(0u64);
        let label = areas.len() as u32;
        labels[start] = label;
        stack.push(start);
        while let Some(i) = stack.pop() {
            areas[label as usize - 1] += 1;
            let (x, y) = (i % w, i / w);
            for ny in y.saturating_sub(1)..(y + 2).min(h) {
                for nx in x.saturating_sub(1)..(x + 2).min(w) {
                    let j = ny * w + nx;
                    if mask[j] != 0 && labels[j] == 0 {
                        labels[j] = label;
                        stack.push(j);
                    }
                }
            }
        }
    }
    (labels, areas)
}

// Directions, clockwise on screen (y down): east, south, west, north.
const STEP: [(i64, i64); 4] = [(1, 0), (0, 1), (-1, 0), (0, -1)];
// Side bits of a pixel, one per direction of the edge that has the pixel on its right.
const TOP: u8 = 1;
const RIGHT: u8 = 2;
const BOTTOM: u8 = 4;
const LEFT: u8 = 8;

/// Follows the boundary edge that leaves vertex `(x, y)` in direction `d` (the part's pixel on
/// its right) around its ring, marking the edges seen in `seen`, and returns the ring's corners.
/// At a vertex where two part pixels touch only diagonally the walk turns left, joining them
/// (8-connectivity).
fn trace(mask: &[u8], h: usize, w: usize, seen: &mut [u8], start: (i64, i64, usize)) -> Vec<Point> {
    let inside = |x: i64, y: i64| {
        x >= 0
            && y >= 0
            && (x as usize) < w
            && (y as usize) < h
            && mask[y as usize * w + x as usize] != 0
    };
    let (mut x, mut y, mut d) = start;
    let mut corners = Vec::new();
    loop {
        // The pixel on the edge's right and which of its sides the edge is.
        let (px, py, side) = match d {
            0 => (x, y, TOP),
            1 => (x - 1, y, RIGHT),
            2 => (x - 1, y - 1, BOTTOM),
            _ => (x, y - 1, LEFT),
        };
        seen[py as usize * w + px as usize] |= side;
        x += STEP[d].0;
        y += STEP[d].1;
        // The two pixels ahead of the vertex: ahead-left and ahead-right.
        let (al, ar) = match d {
            0 => ((x, y - 1), (x, y)),
            1 => ((x, y), (x - 1, y)),
            2 => ((x - 1, y), (x - 1, y - 1)),
            _ => ((x - 1, y - 1), (x, y - 1)),
        };
        let next = if inside(al.0, al.1) {
            (d + 3) % 4
        } else if inside(ar.0, ar.1) {
            d
        } else {
            (d + 1) % 4
        };
        if next != d {
            corners.push([x as f64, y as f64]);
        }
        d = next;
        if (x, y, d) == start {
            return corners;
        }
    }
}

/// Douglas-Peucker on a closed ring: keeps the first vertex and the vertex farthest from it,
/// then on each of the two chains every vertex farther than `tolerance` from its chord.
/// Returns `None` when fewer than 3 vertices remain.
pub fn simplify_ring(ring: &[Point], tolerance: f64) -> Option<Vec<Point>> {
    let n = ring.len();
    if tolerance <= 0.0 || n <= 3 {
        return (n >= 3).then(|| ring.to_vec());
    }
    let dist2 = |a: Point, b: Point| (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2);
    let far = (1..n)
        .max_by(|&i, &j| dist2(ring[0], ring[i]).total_cmp(&dist2(ring[0], ring[j])))
        .unwrap_or(0);
    let mut keep = vec![false; n];
    keep[0] = true;
    keep[far] = true;
    // Chains as index ranges over the ring closed by index n == 0.
    let at = |i: usize| ring[i % n];
    let mut stack = vec![(0usize, far), (far, n)];
    while let Some((a, b)) = stack.pop() {
        if b <= a + 1 {
            continue;
        }
        let (p, q) = (at(a), at(b));
        let (dx, dy) = (q[0] - p[0], q[1] - p[1]);
        let len = (dx * dx + dy * dy).sqrt();
        let mut best = (0.0, a);
        for i in a + 1..b {
            let r = at(i);
            let d = if len == 0.0 {
                dist2(p, r).sqrt()
            } else {
                ((r[0] - p[0]) * dy - (r[1] - p[1]) * dx).abs() / len
            };
            if d > best.0 {
                best = (d, i);
            }
        }
        if best.0 > tolerance {
            keep[best.1 % n] = true;
            stack.push((a, best.1));
            stack.push((best.1, b));
        }
    }
    let out: Vec<Point> = (0..n).filter(|&i| keep[i]).map(|i| ring[i]).collect();
    (out.len() >= 3).then_some(out)
}

/// The polygons of a row-major `h x w` mask (non-zero = inside): one [`Polygon`] per
/// 8-connected part, in raster order of the parts' first pixels, filtered and simplified as
/// `options` say. An empty mask gives no polygons.
///
/// An exterior that simplification would reduce below 3 vertices is kept unsimplified (a part
/// smaller than the tolerance does not vanish); such a hole is filled.
pub fn mask_to_polygons(
    mask: &[u8],
    h: usize,
    w: usize,
    options: &PolygonOptions,
) -> Result<Vec<Polygon>, PolygonError> {
    check_mask(mask.len(), h, w)?;
    options.validate()?;
    let (labels, areas) = label_components(mask, h, w);
    let largest = areas
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i);
    let wanted = |part: usize| {
        (areas[part] as f64) >= options.min_area && (!options.largest_only || Some(part) == largest)
    };
    let mut parts: Vec<Option<Polygon>> = vec![None; areas.len()];
    let mut holes: Vec<Vec<Vec<Point>>> = vec![Vec::new(); areas.len()];
    let mut seen = vec![0u8; h * w];
    let inside = |x: usize, y: usize| mask[y * w + x] != 0;
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if mask[i] == 0 || !wanted(labels[i] as usize - 1) {
                continue;
            }
            let (xi, yi) = (x as i64, y as i64);
            let sides = [
                (TOP, y == 0 || !inside(x, y - 1), (xi, yi, 0)),
                (RIGHT, x + 1 == w || !inside(x + 1, y), (xi + 1, yi, 1)),
                (BOTTOM, y + 1 == h || !inside(x, y + 1), (xi + 1, yi + 1, 2)),
                (LEFT, x == 0 || !inside(x - 1, y), (xi, yi + 1, 3)),
            ];
            for (bit, boundary, start) in sides {
                if !boundary || seen[i] & bit != 0 {
                    continue;
                }
                let ring = trace(mask, h, w, &mut seen, start);
                let part = labels[i] as usize - 1;
                let area = signed_area(&ring);
                if area > 0.0 {
                    let exterior = simplify_ring(&ring, options.tolerance).unwrap_or(ring);
                    parts[part] = Some(Polygon {
                        exterior,
                        holes: Vec::new(),
                        pixel_area: areas[part],
                    });
                } else if -area >= options.min_area
                    && let Some(hole) = simplify_ring(&ring, options.tolerance)
                {
                    holes[part].push(hole);
                }
            }
        }
    }
    Ok(parts
        .into_iter()
        .zip(holes)
        .filter_map(|(p, hs)| p.map(|p| Polygon { holes: hs, ..p }))
        .collect())
}

/// Fills the rings of one polygon into `out` (row-major `h x w`, set to 1) by the even-odd
/// rule, sampling each pixel at its centre `(x + 0.5, y + 0.5)`.
fn fill_even_odd(rings: &[&[Point]], h: usize, w: usize, out: &mut [u8]) {
    let (mut y_min, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in rings.iter().flat_map(|r| r.iter()) {
        y_min = y_min.min(p[1]);
        y_max = y_max.max(p[1]);
    }
    if y_min >= y_max {
        return;
    }
    let row0 = (y_min - 0.5).ceil().max(0.0) as usize;
    let row1 = ((y_max - 0.5).ceil().max(0.0) as usize).min(h);
    let mut xs = Vec::new();
    for row in row0..row1 {
        let yc = row as f64 + 0.5;
        xs.clear();
        for ring in rings {
            let n = ring.len();
            for i in 0..n {
                let [x0, y0] = ring[i];
                let [x1, y1] = ring[(i + 1) % n];
                if (y0 <= yc) != (y1 <= yc) {
                    xs.push(x0 + (yc - y0) * (x1 - x0) / (y1 - y0));
                }
            }
        }
        xs.sort_by(f64::total_cmp);
        let line = &mut out[row * w..(row + 1) * w];
        for pair in xs.chunks_exact(2) {
            let a = (pair[0] - 0.5).ceil().clamp(0.0, w as f64) as usize;
            let b = (pair[1] - 0.5).ceil().clamp(0.0, w as f64) as usize;
            if a < b {
                line[a..b].fill(1);
            }
        }
    }
}

fn check_points<'a>(
    points: impl Iterator<Item = &'a f64>,
    count: usize,
) -> Result<(), PolygonError> {
    if count > MAX_POLYGON_POINTS {
        return Err(PolygonError::TooManyPoints { count });
    }
    if let Some(&value) = points.into_iter().find(|v| !v.is_finite()) {
        return Err(PolygonError::NotFinite { value });
    }
    Ok(())
}

/// The row-major `h x w` 0/1 mask of `polygons` (the union of the parts; each part's exterior
/// and holes filled by the even-odd rule at pixel centres). The inverse of [`mask_to_polygons`]
/// when nothing was simplified or dropped.
pub fn polygons_to_mask(polygons: &[Polygon], h: usize, w: usize) -> Result<Vec<u8>, PolygonError> {
    let pixels = h
        .checked_mul(w)
        .filter(|&p| p <= MAX_MASK_PIXELS)
        .ok_or(PolygonError::TooLarge { h, w })?;
    let rings = || {
        polygons
            .iter()
            .flat_map(|p| std::iter::once(&p.exterior).chain(&p.holes))
    };
    let count = rings().map(Vec::len).sum();
    check_points(rings().flatten().flatten(), count)?;
    let mut out = vec![0u8; pixels];
    for p in polygons {
        let rings: Vec<&[Point]> = std::iter::once(&p.exterior)
            .chain(&p.holes)
            .map(Vec::as_slice)
            .collect();
        fill_even_odd(&rings, h, w, &mut out);
    }
    Ok(out)
}

/// The row-major `h x w` 0/1 mask of a COCO polygon `segmentation` (flat `[x1, y1, x2, y2, ..]`
/// lists): each list filled by the even-odd rule, the lists united, as pycocotools'
/// `frPyObjects` + `merge` do (up to its rounding at 1/5 pixel).
pub fn coco_to_mask(
    segmentation: &[Vec<f64>],
    h: usize,
    w: usize,
) -> Result<Vec<u8>, PolygonError> {
    let pixels = h
        .checked_mul(w)
        .filter(|&p| p <= MAX_MASK_PIXELS)
        .ok_or(PolygonError::TooLarge { h, w })?;
    let count = segmentation.iter().map(|s| s.len() / 2).sum();
    check_points(segmentation.iter().flatten(), count)?;
    if let Some(s) = segmentation.iter().find(|s| s.len() % 2 != 0) {
        return Err(PolygonError::OddCoordinates { len: s.len() });
    }
    let mut out = vec![0u8; pixels];
    for flat in segmentation {
        let ring: Vec<Point> = flat.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
        fill_even_odd(&[&ring], h, w, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pixel_is_a_unit_square() {
        let mut mask = vec![0u8; 12];
        mask[4 + 2] = 1; // (x 2, y 1) of a 3x4 mask
        let p = mask_to_polygons(&mask, 3, 4, &PolygonOptions::default()).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(signed_area(&p[0].exterior), 1.0);
        let mut ext = p[0].exterior.clone();
        ext.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(ext, vec![[2.0, 1.0], [2.0, 2.0], [3.0, 1.0], [3.0, 2.0]]);
        assert_eq!(polygons_to_mask(&p, 3, 4).unwrap(), mask);
    }

    #[test]
    fn diagonal_pixels_are_one_part() {
        let mask = [1u8, 0, 0, 1];
        let p = mask_to_polygons(&mask, 2, 2, &PolygonOptions::default()).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].pixel_area, 2);
        assert_eq!(polygons_to_mask(&p, 2, 2).unwrap(), mask);
    }
}
