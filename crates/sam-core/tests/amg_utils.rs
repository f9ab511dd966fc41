//! amg.py host utilities: grids and crop boxes against the reference
//! manifests, NMS, stability score, small-region removal.

mod common;

use common::reference_dir;
use sam_core::amg::utils::*;
use serde_json::Value;

/// The manifests of the kit's models (`common::model_tags`), any seed.
fn manifests() -> Vec<(String, Value)> {
    common::model_tags()
        .into_iter()
        .map(|tag| {
            let m = common::manifest(&tag);
            (tag, m)
        })
        .collect()
}

fn parse_box(s: &str) -> [usize; 4] {
    let v: Vec<usize> = serde_json::from_str(s).unwrap();
    v.try_into().unwrap()
}

#[test]
fn point_grids_match_manifest() {
    let mut n_cases = 0;
    for (tag, m) in manifests() {
        for case in m["amg_cases"].as_array().unwrap() {
            let s = &case["settings"];
            let grids = build_all_layer_point_grids(
                s["points_per_side"].as_u64().unwrap() as usize,
                s["crop_n_layers"].as_u64().unwrap() as usize,
                s["crop_n_points_downscale_factor"].as_u64().unwrap() as usize,
            );
            let expected = case["point_grids"].as_array().unwrap();
            assert_eq!(grids.len(), expected.len(), "{tag}");
            for (g, e) in grids.iter().zip(expected) {
                let e: Vec<[f64; 2]> = serde_json::from_value(e.clone()).unwrap();
                // exact (bit-identical) equality with numpy's linspace
                assert_eq!(g, &e, "{tag} {}", case["name"]);
            }
            n_cases += 1;
        }
    }
    // Every model of the kit has AMG cases (the generator writes `nofilter` and `filtered`).
    assert!(n_cases >= 2, "{n_cases} AMG cases in the manifests");
}

#[test]
fn point_grid_basics() {
    assert_eq!(build_point_grid(1), vec![[0.5, 0.5]]);
    assert_eq!(
        build_point_grid(2),
        vec![[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]
    );
    assert!(build_point_grid(0).is_empty());
    let g = build_all_layer_point_grids(32, 2, 2);
    assert_eq!(
        g.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![1024, 256, 64]
    );
    // int(5 / 2^i): 5, 2, 1
    let g = build_all_layer_point_grids(5, 2, 2);
    assert_eq!(g.iter().map(Vec::len).collect::<Vec<_>>(), vec![25, 4, 1]);
}

#[test]
fn crop_boxes_match_manifest() {
    let pre = reference_dir().join("preprocess.json");
    let pre: Value = serde_json::from_str(&std::fs::read_to_string(&pre).unwrap()).unwrap();
    let img = &pre["amg_image"]["orig_size"];
    for (tag, m) in manifests() {
        let (h, w) = (
            img[0].as_u64().unwrap() as usize,
            img[1].as_u64().unwrap() as usize,
        );
        assert_eq!((h, w), (480, 640));
        for case in m["amg_cases"].as_array().unwrap() {
            let s = &case["settings"];
            let (boxes, layers) = generate_crop_boxes(
                (h, w),
                s["crop_n_layers"].as_u64().unwrap() as usize,
                s["crop_overlap_ratio"].as_f64().unwrap(),
            );
            assert_eq!(layers, vec![0, 1, 1, 1, 1]);
            if let Some(xyxy) = case.get("crop_boxes_xyxy") {
                let e: Vec<[usize; 4]> = serde_json::from_value(xyxy.clone()).unwrap();
                assert_eq!(boxes, e, "{tag}");
            }
            // masks_per_crop_box keys are the annotations' XYWH crop boxes
            let xywh: Vec<[usize; 4]> = boxes.iter().map(|&b| box_xyxy_to_xywh(b)).collect();
            for key in case["summary"]["masks_per_crop_box"]
                .as_object()
                .unwrap()
                .keys()
            {
                assert!(
                    xywh.contains(&parse_box(key)),
                    "{tag}: {key} not in {xywh:?}"
                );
            }
        }
    }
}

#[test]
fn crop_boxes_formula() {
    // 480x640, ratio 512/1500: overlap int(163.84) = 163,
    // crop_w = ceil((163 + 640) / 2) = 402, crop_h = ceil((163 + 480) / 2) = 322
    let (boxes, layers) = generate_crop_boxes((480, 640), 1, 512.0 / 1500.0);
    assert_eq!(
        boxes,
        vec![
            [0, 0, 640, 480],
            [0, 0, 402, 322],
            [0, 159, 402, 480],
            [239, 0, 640, 322],
            [239, 159, 640, 480],
        ]
    );
    assert_eq!(layers, vec![0, 1, 1, 1, 1]);
    let (boxes, layers) = generate_crop_boxes((100, 200), 2, 0.5);
    assert_eq!(boxes.len(), 1 + 4 + 16);
    assert_eq!(layers.iter().filter(|&&l| l == 2).count(), 16);
    assert!(boxes.iter().all(|b| b[2] <= 200 && b[3] <= 100));
    let (boxes, _) = generate_crop_boxes((100, 200), 0, 0.5);
    assert_eq!(boxes, vec![[0, 0, 200, 100]]);
}

#[test]
fn uncrop_helpers() {
    let crop = [239, 159, 640, 480];
    assert_eq!(
        uncrop_boxes_xyxy(&[[1.0, 2.0, 3.0, 4.0]], crop),
        vec![[240.0, 161.0, 242.0, 163.0]]
    );
    assert_eq!(uncrop_points(&[[0.5, 1.25]], crop), vec![[239.5, 160.25]]);
    // 2x3 crop at (x=1, y=2) inside a 5x4 image
    let m = [true, false, true, false, true, true];
    let out = uncrop_mask(&m, [1, 2, 4, 4], 5, 4);
    #[rustfmt::skip]
    let expected = [
        false, false, false, false,
        false, false, false, false,
        false, true, false, true,
        false, false, true, true,
        false, false, false, false,
    ];
    assert_eq!(out, expected);
    let logits = [1.5f32, -2.0];
    assert_eq!(
        uncrop_mask(&logits, [0, 0, 1, 2], 2, 2),
        vec![1.5, 0.0, -2.0, 0.0]
    );
    assert_eq!(uncrop_mask(&m, [0, 0, 3, 2], 2, 3), m.to_vec());
}

#[test]
fn near_crop_edge() {
    let crop = [239, 159, 640, 480];
    let orig = [0, 0, 640, 480];
    let boxes = [
        [0.0, 0.0, 0.0, 0.0],         // empty mask: uncropped to the crop corner
        [100.0, 100.0, 200.0, 200.0], // interior
        [100.0, 100.0, 401.0, 321.0], // touches the image's right/bottom edges only
        [21.0, 30.0, 50.0, 60.0],     // 21 px from the crop's left edge
        [20.0, 30.0, 50.0, 60.0],     // exactly atol from the crop's left edge
    ];
    assert_eq!(
        is_box_near_crop_edge(&boxes, crop, orig, 20.0),
        vec![true, false, false, false, true]
    );
    // full-image crop: crop edges are image edges
    assert_eq!(
        is_box_near_crop_edge(&[[0.0, 0.0, 5.0, 5.0]], orig, orig, 20.0),
        vec![false]
    );
    // crop at the origin: empty box [0,0,0,0] is kept (image edge)
    assert_eq!(
        is_box_near_crop_edge(&[[0.0; 4]], [0, 0, 402, 322], orig, 20.0),
        vec![false]
    );
}

#[test]
fn mask_to_box() {
    #[rustfmt::skip]
    let m = [
        false, false, false, false,
        false, true,  false, false,
        false, false, true,  false,
    ];
    assert_eq!(batched_mask_to_box(&m, 3, 4), [1.0, 1.0, 2.0, 2.0]);
    assert_eq!(
        box_xyxy_to_xywh([1.0f32, 1.0, 2.0, 2.0]),
        [1.0, 1.0, 1.0, 1.0]
    );
    assert_eq!(batched_mask_to_box(&[false; 12], 3, 4), [0.0; 4]);
    assert_eq!(batched_mask_to_box(&[true], 1, 1), [0.0; 4]);
    assert_eq!(batched_mask_to_box(&[], 0, 4), [0.0; 4]);
    assert_eq!(batched_mask_to_box(&[true; 12], 3, 4), [0.0, 0.0, 3.0, 2.0]);
}

#[test]
fn stability_score() {
    let logits = [2.0f32, 1.5, 1.0, 0.5, -0.5, -1.0, -3.0];
    // > 1: {2, 1.5} = 2; > -1: {2, 1.5, 1, 0.5, -0.5} = 5
    assert_eq!(calculate_stability_score(&logits, 0.0, 1.0), 2.0 / 5.0);
    assert_eq!(calculate_stability_score(&[5.0; 4], 0.0, 1.0), 1.0);
    assert_eq!(calculate_stability_score(&[0.0, 0.5], 0.0, 1.0), 0.0);
    // nothing above -1: 0 / 0 = NaN
    assert!(calculate_stability_score(&[-1.0, -2.0, -7.5], 0.0, 1.0).is_nan());
    assert!(calculate_stability_score(&[], 0.0, 1.0).is_nan());
    // float32 division like torch
    let l: Vec<f32> = (0..7).map(|i| if i < 1 { 3.0 } else { 0.0 }).collect();
    assert_eq!(calculate_stability_score(&l, 0.0, 1.0), 1.0f32 / 7.0f32);
}

#[test]
fn nms_overlap_and_categories() {
    let boxes = [
        [0.0, 0.0, 10.0, 10.0],
        [1.0, 1.0, 11.0, 11.0], // IoU 81/119 = 0.68 with box 0
        [0.0, 0.0, 10.0, 9.0],  // IoU 0.9 with box 0
        [50.0, 50.0, 60.0, 60.0],
    ];
    let scores = [0.9, 0.8, 0.95, 0.1];
    let keep = batched_nms(&boxes, &scores, &[0; 4], 0.7);
    // 2 (best) suppresses 0; 1 vs 2: inter 8*9=72 / (90+100-72) = 0.61 kept
    assert_eq!(keep, vec![2, 1, 3]);
    // stricter threshold: 1 is suppressed by 2
    assert_eq!(batched_nms(&boxes, &scores, &[0; 4], 0.5f32), vec![2, 3]);
    // different categories never suppress each other
    assert_eq!(
        batched_nms(&boxes, &scores, &[0, 1, 2, 0], 0.5),
        vec![2, 0, 1, 3]
    );
    assert!(batched_nms(&[], &[], &[], 0.7).is_empty());
}

#[test]
fn nms_drops_only_strictly_greater_iou() {
    // IoU exactly 0.5: [0,0,2,1] vs [0,0,1,1] -> 1 / 2
    let boxes = [[0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0]];
    assert_eq!(batched_nms(&boxes, &[1.0, 0.5], &[0, 0], 0.5), vec![0, 1]);
    assert_eq!(batched_nms(&boxes, &[1.0, 0.5], &[0, 0], 0.49), vec![0]);
    // degenerate zero-area boxes: 0/0 = NaN is never > thr
    let z = [[3.0, 3.0, 3.0, 3.0], [3.0, 3.0, 3.0, 3.0]];
    assert_eq!(batched_nms(&z, &[1.0, 1.0], &[0, 0], 0.0), vec![0, 1]);
}

#[test]
fn nms_ties_keep_index_order() {
    let boxes = [
        [0.0, 0.0, 10.0, 10.0],
        [0.0, 0.0, 10.0, 10.0],
        [0.0, 0.0, 10.0, 10.0],
        [20.0, 20.0, 30.0, 30.0],
        [20.0, 20.0, 30.0, 30.0],
    ];
    let scores = [1.0, 1.0, 1.0, 1.0, 1.0];
    assert_eq!(batched_nms(&boxes, &scores, &[0; 5], 0.7), vec![0, 3]);
    let scores = [0.0, 1.0, 1.0, 0.0, 1.0];
    assert_eq!(batched_nms(&boxes, &scores, &[0; 5], 0.7), vec![1, 4]);
    // disjoint boxes with tied scores come out in index order
    let boxes: Vec<[f32; 4]> = (0..6)
        .map(|i| {
            let x = i as f32 * 10.0;
            [x, 0.0, x + 5.0, 5.0]
        })
        .collect();
    let scores = [0.5, 0.9, 0.5, 0.9, 0.5, 0.9];
    assert_eq!(
        batched_nms(&boxes, &scores, &[0; 6], 0.7),
        vec![1, 3, 5, 0, 2, 4]
    );
}

#[test]
fn crop_nms_scores_prefer_small_crops() {
    assert_eq!(crop_nms_score([0, 0, 640, 480]), 1.0 / 307200.0f32);
    assert!(crop_nms_score([0, 0, 402, 322]) > crop_nms_score([0, 0, 640, 480]));
}

fn grid(rows: &[&str]) -> (Vec<bool>, usize, usize) {
    let h = rows.len();
    let w = rows[0].len();
    let m = rows
        .iter()
        .flat_map(|r| r.bytes().map(|b| b == b'#'))
        .collect();
    (m, h, w)
}

#[test]
fn small_hole_is_filled() {
    let (m, h, w) = grid(&[
        "........", //
        ".######.", //
        ".#..###.", //
        ".#..###.", //
        ".######.", //
        "........",
    ]);
    let (out, changed) = remove_small_regions(&m, h, w, 5.0, RegionMode::Holes);
    assert!(changed);
    let (expected, _, _) = grid(&[
        "........", //
        ".######.", //
        ".######.", //
        ".######.", //
        ".######.", //
        "........",
    ]);
    assert_eq!(out, expected);
    // a threshold of 4 keeps the 4-pixel hole (area < thresh is strict)
    let (out, changed) = remove_small_regions(&m, h, w, 4.0, RegionMode::Holes);
    assert!(!changed);
    assert_eq!(out, m);
}

#[test]
fn small_island_is_removed() {
    let (m, h, w) = grid(&[
        "###.....", //
        "###....#", //
        "###.....", //
        "........",
    ]);
    let (out, changed) = remove_small_regions(&m, h, w, 2.0, RegionMode::Islands);
    assert!(changed);
    let (expected, _, _) = grid(&[
        "###.....", //
        "###.....", //
        "###.....", //
        "........",
    ]);
    assert_eq!(out, expected);
    let (out, changed) = remove_small_regions(&m, h, w, 1.0, RegionMode::Islands);
    assert!(!changed);
    assert_eq!(out, m);
}

#[test]
fn diagonal_pixels_are_connected() {
    // a diagonal line is one 8-connected island of 4 pixels
    let (m, h, w) = grid(&[
        "#.....", //
        ".#....", //
        "..#...", //
        "...#..", //
        "......",
    ]);
    let (out, changed) = remove_small_regions(&m, h, w, 4.0, RegionMode::Islands);
    assert!(!changed);
    assert_eq!(out, m);
    // with 4-connectivity these would be 4 islands of 1 pixel
    let (labels, areas) = connected_components_8(&m, h, w);
    assert_eq!(areas, vec![4]);
    assert_eq!(labels.iter().filter(|&&l| l == 1).count(), 4);
    // a background pixel enclosed only diagonally is NOT enclosed: the
    // background around it is 8-connected to the outside
    let (m, h, w) = grid(&[
        ".#.", //
        "#.#", //
        ".#.",
    ]);
    let (_, areas) = connected_components_8(&m.iter().map(|v| !v).collect::<Vec<_>>(), h, w);
    assert_eq!(areas, vec![5]);
    let (out, changed) = remove_small_regions(&m, h, w, 2.0, RegionMode::Holes);
    assert!(!changed);
    assert_eq!(out, m);
}

#[test]
fn all_islands_small_keeps_largest_first_in_label_order() {
    // three islands: sizes 2, 3, 3; the two 3-pixel ones tie. OpenCV numbers
    // components by their first 2x2 block in block-raster order, so the
    // island at (row 1, col 0) (block 0) precedes the one at (row 0, col 4).
    let (m, h, w) = grid(&[
        "....###.#", //
        "#.......#", //
        "#........", //
        "#........",
    ]);
    let (labels, areas) = connected_components_8(&m, h, w);
    assert_eq!(areas, vec![3, 3, 2]);
    assert_eq!(labels[w], 1); // (1, 0)
    assert_eq!(labels[4], 2); // (0, 4)
    let (out, changed) = remove_small_regions(&m, h, w, 10.0, RegionMode::Islands);
    assert!(changed);
    let kept: Vec<usize> = (0..h * w).filter(|&i| out[i]).collect();
    assert_eq!(kept, vec![w, 2 * w, 3 * w]);
}

#[test]
fn holes_mode_also_fills_small_border_background() {
    // amg.py's holes mode fills every small background component, including
    // one cut off at the image border
    let (m, h, w) = grid(&[
        ".#....", //
        "##....", //
        "......",
    ]);
    let (out, changed) = remove_small_regions(&m, h, w, 2.0, RegionMode::Holes);
    assert!(changed);
    assert!(out[0]);
    assert_eq!(out.iter().filter(|&&v| v).count(), 4);
}

#[test]
fn empty_and_full_masks_are_unchanged() {
    for v in [false, true] {
        let m = vec![v; 12];
        for mode in [RegionMode::Holes, RegionMode::Islands] {
            let (out, changed) = remove_small_regions(&m, 3, 4, 100.0, mode);
            // full mask in holes mode / empty mask in islands mode: no
            // component; otherwise one component of 12 < 100 ...
            let expect_changed = !matches!(
                (v, mode),
                (false, RegionMode::Islands) | (true, RegionMode::Holes)
            );
            assert_eq!(changed, expect_changed, "{v} {mode:?}");
            if mode == RegionMode::Islands {
                // ... which is kept as the largest island
                assert_eq!(out, m);
            }
        }
    }
    // holes mode on an empty image: the whole background is a small "hole"
    let (out, _) = remove_small_regions(&[false; 12], 3, 4, 100.0, RegionMode::Holes);
    assert_eq!(out, vec![true; 12]);
}

#[test]
fn postprocess_small_regions_updates_changed_masks() {
    use sam_core::io::rle::Rle;
    let (a, h, w) = grid(&[
        "###.....", //
        "#.#....#", //
        "###.....", //
        "........",
    ]);
    let (b, _, _) = grid(&[
        "........", //
        "....###.", //
        "....###.", //
        "........",
    ]);
    let mut rles = vec![Rle::encode(&a, h, w), Rle::encode(&b, h, w)];
    let mut boxes = vec![batched_mask_to_box(&a, h, w), batched_mask_to_box(&b, h, w)];
    let keep = postprocess_small_regions(&mut rles, &mut boxes, 3.0, 0.7).unwrap();
    // b is unchanged (score 1) and comes first; a lost its hole and island
    assert_eq!(keep, vec![1, 0]);
    let (a_fixed, _, _) = grid(&[
        "###.....", //
        "###.....", //
        "###.....", //
        "........",
    ]);
    assert_eq!(rles[0], Rle::encode(&a_fixed, h, w));
    assert_eq!(boxes[0], [0.0, 0.0, 2.0, 2.0]);
    assert_eq!(rles[1], Rle::encode(&b, h, w));
}
