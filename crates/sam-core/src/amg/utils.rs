//! Host-side helpers of the automatic mask generator, mirroring
//! `segment_anything/utils/amg.py` (and the parts of torchvision / OpenCV it
//! relies on). Masks are row-major `h x w` slices; boxes are `[x0, y0, x1, y1]`
//! unless named `xywh`.

use std::cmp::Ordering;

use crate::io::rle::{CocoRle, Rle, RleError};

/// Regular grid of `n_per_side^2` points in `[0, 1]^2`, offset `1 / (2n)`
/// from the borders, x varying fastest. Points are `[x, y]`.
///
/// Reproduces `np.linspace(offset, 1 - offset, n)` bit for bit.
pub fn build_point_grid(n_per_side: usize) -> Vec<[f64; 2]> {
    let side = linspace_offset(n_per_side);
    let mut out = Vec::with_capacity(n_per_side * n_per_side);
    for &y in &side {
        for &x in &side {
            out.push([x, y]);
        }
    }
    out
}

fn linspace_offset(n: usize) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    let offset = 1.0 / (2.0 * n as f64);
    let (start, stop) = (offset, 1.0 - offset);
    if n == 1 {
        return vec![start];
    }
    let step = (stop - start) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
    v[n - 1] = stop;
    v
}

/// Point grids for the full image (layer 0) and each crop layer `i`, which
/// uses `int(n_per_side / scale_per_layer^i)` points per side.
pub fn build_all_layer_point_grids(
    n_per_side: usize,
    n_layers: usize,
    scale_per_layer: usize,
) -> Vec<Vec<[f64; 2]>> {
    (0..=n_layers)
        .map(|i| {
            let div = u32::try_from(i)
                .ok()
                .and_then(|i| scale_per_layer.checked_pow(i))
                .unwrap_or(usize::MAX);
            build_point_grid(n_per_side.checked_div(div).unwrap_or(0))
        })
        .collect()
}

/// Crop boxes (XYXY) and their layer indices for an image of size
/// `(h, w)`: the full image first, then for layer `i` (1-based) a
/// `2^i x 2^i` grid of overlapping crops in x-major order.
///
/// Overlap is `int(overlap_ratio * short_side * 2 / n_crops)`, crop length
/// `ceil((overlap * (n_crops - 1) + len) / n_crops)`.
pub fn generate_crop_boxes(
    im_size: (usize, usize),
    n_layers: usize,
    overlap_ratio: f64,
) -> (Vec<[usize; 4]>, Vec<usize>) {
    let (im_h, im_w) = im_size;
    let short_side = im_h.min(im_w);
    let mut boxes = vec![[0, 0, im_w, im_h]];
    let mut layers = vec![0];

    let crop_len = |orig_len: usize, n_crops: usize, overlap: i64| -> i64 {
        ((overlap * (n_crops as i64 - 1) + orig_len as i64) as f64 / n_crops as f64).ceil() as i64
    };

    for i_layer in 0..n_layers {
        let n_crops = 1usize << (i_layer + 1).min(usize::BITS as usize - 1);
        let overlap = (overlap_ratio * short_side as f64 * (2.0 / n_crops as f64)) as i64;
        let crop_w = crop_len(im_w, n_crops, overlap);
        let crop_h = crop_len(im_h, n_crops, overlap);
        let starts = |crop: i64| -> Vec<i64> {
            (0..n_crops)
                .map(|i| (crop - overlap).saturating_mul(i as i64))
                .collect()
        };
        let (xs, ys) = (starts(crop_w), starts(crop_h));
        for &x0 in &xs {
            for &y0 in &ys {
                let clamp = |v: i64| v.max(0) as usize;
                boxes.push([
                    clamp(x0),
                    clamp(y0),
                    clamp((x0 + crop_w).min(im_w as i64)),
                    clamp((y0 + crop_h).min(im_h as i64)),
                ]);
                layers.push(i_layer + 1);
            }
        }
    }
    (boxes, layers)
}

/// Shifts crop-frame XYXY boxes into the original image frame.
pub fn uncrop_boxes_xyxy(boxes: &[[f32; 4]], crop_box: [usize; 4]) -> Vec<[f32; 4]> {
    let (x0, y0) = (crop_box[0] as f32, crop_box[1] as f32);
    boxes
        .iter()
        .map(|b| [b[0] + x0, b[1] + y0, b[2] + x0, b[3] + y0])
        .collect()
}

/// Shifts crop-frame `[x, y]` points into the original image frame.
pub fn uncrop_points(points: &[[f64; 2]], crop_box: [usize; 4]) -> Vec<[f64; 2]> {
    let (x0, y0) = (crop_box[0] as f64, crop_box[1] as f64);
    points.iter().map(|p| [p[0] + x0, p[1] + y0]).collect()
}

/// Pads a crop-size mask (`(y1 - y0) x (x1 - x0)`, row-major) into the
/// `orig_h x orig_w` frame, filling with `T::default()` (false / 0.0).
///
/// # Panics
/// If `mask` does not have the crop's size or the crop exceeds the image.
pub fn uncrop_mask<T: Copy + Default>(
    mask: &[T],
    crop_box: [usize; 4],
    orig_h: usize,
    orig_w: usize,
) -> Vec<T> {
    let [x0, y0, x1, y1] = crop_box;
    let (cw, ch) = (x1 - x0, y1 - y0);
    assert_eq!(mask.len(), cw * ch, "mask must have the crop's size");
    assert!(x1 <= orig_w && y1 <= orig_h, "crop box exceeds the image");
    if x0 == 0 && y0 == 0 && x1 == orig_w && y1 == orig_h {
        return mask.to_vec();
    }
    let mut out = vec![T::default(); orig_h * orig_w];
    for (r, row) in mask.chunks_exact(cw.max(1)).take(ch).enumerate() {
        let start = (y0 + r) * orig_w + x0;
        out[start..start + cw].copy_from_slice(&row[..cw]);
    }
    out
}

/// For each XYXY crop-frame box: is it within `atol` of a crop edge that is
/// not also an image edge (`orig_box`)? Same as amg.py (float32 `isclose`
/// with `rtol = 0`). The official default `atol` is 20.
pub fn is_box_near_crop_edge(
    boxes: &[[f32; 4]],
    crop_box: [usize; 4],
    orig_box: [usize; 4],
    atol: f32,
) -> Vec<bool> {
    let cb = crop_box.map(|v| v as f32);
    let ob = orig_box.map(|v| v as f32);
    let close = |a: f32, b: f32| {
        let d = (a - b).abs();
        d.is_finite() && d <= atol
    };
    uncrop_boxes_xyxy(boxes, crop_box)
        .iter()
        .map(|b| (0..4).any(|k| close(b[k], cb[k]) && !close(b[k], ob[k])))
        .collect()
}

/// `[x0, y0, x1, y1]` to `[x0, y0, x1 - x0, y1 - y0]` (no `+ 1`).
pub fn box_xyxy_to_xywh<T: Copy + std::ops::Sub<Output = T>>(b: [T; 4]) -> [T; 4] {
    [b[0], b[1], b[2] - b[0], b[3] - b[1]]
}

/// Tight XYXY box of a row-major mask, max coordinates inclusive; an empty
/// mask gives `[0, 0, 0, 0]`.
pub fn batched_mask_to_box(mask: &[bool], h: usize, w: usize) -> [f32; 4] {
    debug_assert_eq!(mask.len(), h * w);
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0usize, 0usize);
    let mut any = false;
    for (y, row) in mask.chunks_exact(w.max(1)).take(h).enumerate() {
        let Some(first) = row.iter().position(|&v| v) else {
            continue;
        };
        let last = row.iter().rposition(|&v| v).unwrap_or(first);
        any = true;
        y0 = y0.min(y);
        y1 = y;
        x0 = x0.min(first);
        x1 = x1.max(last);
    }
    if !any {
        return [0.0; 4];
    }
    [x0 as f32, y0 as f32, x1 as f32, y1 as f32]
}

/// Stability score of one mask's logits:
/// `count(logit > thr + offset) / count(logit > thr - offset)` in float32.
/// NaN (0/0) when no logit exceeds `thr - offset`.
pub fn calculate_stability_score(logits: &[f32], mask_threshold: f32, offset: f32) -> f32 {
    // Python adds the two floats in double, torch compares in float32.
    let hi = (f64::from(mask_threshold) + f64::from(offset)) as f32;
    let lo = (f64::from(mask_threshold) - f64::from(offset)) as f32;
    let (mut inter, mut union) = (0u32, 0u32);
    for &v in logits {
        inter += u32::from(v > hi);
        union += u32::from(v > lo);
    }
    inter as f32 / union as f32
}

/// Which small regions [`remove_small_regions`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionMode {
    /// Fill background components smaller than the threshold (including
    /// small background pieces touching the border, as in amg.py).
    Holes,
    /// Remove foreground components smaller than the threshold; if all are
    /// small, keep the largest (first in label order on ties).
    Islands,
}

/// 8-connected components of the `true` pixels, labelled like OpenCV's
/// `connectedComponentsWithStats(.., 8)`: `0` is background, components are
/// numbered `1..` in the order of their first 2x2 block in block-raster
/// order (OpenCV's block-based algorithms). Returns `(labels, areas)`, with
/// `areas[k]` the pixel count of label `k + 1`.
pub fn connected_components_8(mask: &[bool], h: usize, w: usize) -> (Vec<u32>, Vec<u64>) {
    assert_eq!(mask.len(), h * w, "mask length must be h * w");
    let n = h * w;
    const NONE: u32 = u32::MAX;
    let mut parent: Vec<u32> = vec![NONE; n];
    fn find(p: &mut [u32], mut i: u32) -> u32 {
        while p[i as usize] != i {
            let g = p[p[i as usize] as usize];
            p[i as usize] = g;
            i = g;
        }
        i
    }
    fn union(p: &mut [u32], a: u32, b: u32) {
        let (ra, rb) = (find(p, a), find(p, b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            p[hi as usize] = lo;
        }
    }
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if !mask[i] {
                continue;
            }
            parent[i] = i as u32;
            if x > 0 && mask[i - 1] {
                union(&mut parent, i as u32, (i - 1) as u32);
            }
            if y > 0 {
                let up = i - w;
                if mask[up] {
                    union(&mut parent, i as u32, up as u32);
                }
                if x > 0 && mask[up - 1] {
                    union(&mut parent, i as u32, (up - 1) as u32);
                }
                if x + 1 < w && mask[up + 1] {
                    union(&mut parent, i as u32, (up + 1) as u32);
                }
            }
        }
    }
    // Component per root, with its first 2x2 block and area.
    let blocks_per_row = w.div_ceil(2);
    let mut comp_of_root: Vec<u32> = vec![NONE; n];
    let mut first_block: Vec<usize> = Vec::new();
    let mut areas: Vec<u64> = Vec::new();
    let mut labels = vec![0u32; n];
    for i in 0..n {
        if !mask[i] {
            continue;
        }
        let r = find(&mut parent, i as u32) as usize;
        let block = (i / w / 2) * blocks_per_row + (i % w) / 2;
        let c = if comp_of_root[r] == NONE {
            comp_of_root[r] = first_block.len() as u32;
            first_block.push(block);
            areas.push(0);
            first_block.len() - 1
        } else {
            let c = comp_of_root[r] as usize;
            first_block[c] = first_block[c].min(block);
            c
        };
        areas[c] += 1;
        labels[i] = c as u32;
    }
    // Renumber by first block (distinct per component: a 2x2 block is
    // always 8-connected).
    let mut order: Vec<usize> = (0..areas.len()).collect();
    order.sort_by_key(|&c| first_block[c]);
    let mut new_label = vec![0u32; areas.len()];
    for (k, &c) in order.iter().enumerate() {
        new_label[c] = k as u32 + 1;
    }
    for i in 0..n {
        if mask[i] {
            labels[i] = new_label[labels[i] as usize];
        }
    }
    let sorted_areas = order.iter().map(|&c| areas[c]).collect();
    (labels, sorted_areas)
}

/// amg.py `remove_small_regions`: removes small disconnected regions
/// (`Islands`) or fills small holes (`Holes`), 8-connectivity, components
/// with area `< area_thresh`. Returns the mask and whether it changed
/// (`false` returns the input unchanged).
pub fn remove_small_regions(
    mask: &[bool],
    h: usize,
    w: usize,
    area_thresh: f64,
    mode: RegionMode,
) -> (Vec<bool>, bool) {
    let holes = mode == RegionMode::Holes;
    let working: Vec<bool> = mask.iter().map(|&m| m ^ holes).collect();
    let (labels, sizes) = connected_components_8(&working, h, w);
    let n_labels = sizes.len() + 1;
    // small[l] for label l (index 0 = background, never "small")
    let mut small = vec![false; n_labels];
    let mut any_small = false;
    for (k, &s) in sizes.iter().enumerate() {
        if (s as f64) < area_thresh {
            small[k + 1] = true;
            any_small = true;
        }
    }
    if !any_small {
        return (mask.to_vec(), false);
    }
    let fill: Vec<bool> = if holes {
        // labels [0] + small
        let mut f = small;
        f[0] = true;
        f
    } else {
        let mut f: Vec<bool> = (0..n_labels).map(|l| l != 0 && !small[l]).collect();
        if !f.iter().any(|&v| v) {
            // all regions small: keep the largest (np.argmax: first max)
            let mut best = 0;
            for (k, &s) in sizes.iter().enumerate() {
                if s > sizes[best] {
                    best = k;
                }
            }
            f[best + 1] = true;
        }
        f
    };
    let out = labels.iter().map(|&l| fill[l as usize]).collect();
    (out, true)
}

/// Official `SamAutomaticMaskGenerator.postprocess_small_regions`: holes then
/// islands on every mask, score 1 for unchanged / 0 for changed masks, NMS
/// on the new boxes. For kept changed masks the RLE and the XYXY box are
/// updated in place. Returns the kept indices in NMS order (the order the
/// official code filters the data into).
pub fn postprocess_small_regions(
    rles: &mut [Rle],
    boxes: &mut [[f32; 4]],
    min_area: f64,
    nms_thresh: f64,
) -> Result<Vec<usize>, RleError> {
    assert_eq!(rles.len(), boxes.len(), "one box per RLE");
    if rles.is_empty() {
        return Ok(Vec::new());
    }
    let mut new_masks = Vec::with_capacity(rles.len());
    let mut scores = Vec::with_capacity(rles.len());
    let mut new_boxes = Vec::with_capacity(rles.len());
    for rle in rles.iter() {
        let [h, w] = rle.size;
        let mask = rle.decode()?;
        let (mask, c1) = remove_small_regions(&mask, h, w, min_area, RegionMode::Holes);
        let (mask, c2) = remove_small_regions(&mask, h, w, min_area, RegionMode::Islands);
        scores.push(if c1 || c2 { 0.0f32 } else { 1.0 });
        new_boxes.push(batched_mask_to_box(&mask, h, w));
        new_masks.push(mask);
    }
    let keep = batched_nms(&new_boxes, &scores, &vec![0; rles.len()], nms_thresh);
    for &i in &keep {
        if scores[i] == 0.0 {
            let [h, w] = rles[i].size;
            rles[i] = Rle::encode(&new_masks[i], h, w);
            boxes[i] = new_boxes[i];
        }
    }
    Ok(keep)
}

/// torchvision `batched_nms` (per category in `idxs`): visits boxes by
/// descending score (ties keep index order, NaN first like `torch.sort`),
/// drops boxes whose IoU with a kept box of the same category is
/// `> iou_threshold`. Areas have no `+ 1`; arithmetic in float32, the
/// comparison in double as in torchvision's kernel. Returns kept indices
/// in visiting order.
///
/// # Panics
/// If the three slices have different lengths.
pub fn batched_nms(
    boxes: &[[f32; 4]],
    scores: &[f32],
    idxs: &[usize],
    iou_threshold: impl Into<f64>,
) -> Vec<usize> {
    let thr: f64 = iou_threshold.into();
    let n = boxes.len();
    assert!(
        scores.len() == n && idxs.len() == n,
        "boxes, scores and idxs must have the same length"
    );
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| score_desc(scores[a], scores[b]));
    let areas: Vec<f32> = boxes
        .iter()
        .map(|b| (b[2] - b[0]) * (b[3] - b[1]))
        .collect();
    let mut suppressed = vec![false; n];
    let mut keep = Vec::new();
    for (oi, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let bi = boxes[i];
        for &j in &order[oi + 1..] {
            if suppressed[j] || idxs[j] != idxs[i] {
                continue;
            }
            let bj = boxes[j];
            let xx1 = bi[0].max(bj[0]);
            let yy1 = bi[1].max(bj[1]);
            let xx2 = bi[2].min(bj[2]);
            let yy2 = bi[3].min(bj[3]);
            let iw = (xx2 - xx1).max(0.0);
            let ih = (yy2 - yy1).max(0.0);
            let inter = iw * ih;
            let ovr = inter / (areas[i] + areas[j] - inter);
            if f64::from(ovr) > thr {
                suppressed[j] = true;
            }
        }
    }
    keep
}

fn score_desc(a: f32, b: f32) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
    }
}

/// Score used by the AMG's cross-crop NMS: `1 / box_area(crop_box)`
/// (float32), so smaller crops win.
pub fn crop_nms_score(crop_box: [usize; 4]) -> f32 {
    let area = (crop_box[2] - crop_box[0]) * (crop_box[3] - crop_box[1]);
    1.0 / area as f32
}

/// amg.py `mask_to_rle_pytorch` for one mask.
pub fn mask_to_rle(mask: &[bool], h: usize, w: usize) -> Rle {
    Rle::encode(mask, h, w)
}

/// amg.py `rle_to_mask` (row-major).
pub fn rle_to_mask(rle: &Rle) -> Result<Vec<bool>, RleError> {
    rle.decode()
}

/// amg.py `area_from_rle`.
pub fn area_from_rle(rle: &Rle) -> u64 {
    rle.area()
}

/// amg.py `coco_encode_rle`.
pub fn coco_encode_rle(rle: &Rle) -> CocoRle {
    rle.to_coco()
}
