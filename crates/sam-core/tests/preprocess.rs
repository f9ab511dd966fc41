//! Tests of `sam_core::preprocess` against the official-code reference data
//! (`shared/reference/preprocess.safetensors`, made with Pillow 13.0.0) and
//! against Pillow outputs committed in `tests/fixtures/` (see
//! `tests/fixtures/gen_fixtures.py`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use safetensors::SafeTensors;
use sam_core::preprocess::{
    IMG_SIZE, ImageError, MAX_IMAGE_PIXELS, PIXEL_MEAN, PIXEL_STD, RgbImage, apply_boxes,
    apply_boxes_f64, apply_coords, apply_coords_f64, normalize_and_pad, preprocess,
    preprocess_shape, resize_longest_side, resize_rgb,
};
use serde_json::Value;

// ---------------------------------------------------------------- helpers

/// Finds `shared/reference` (env `SAM_REFERENCE_DIR`, else the nearest
/// ancestor of the crate holding `shared/reference/preprocess.json`).
fn reference_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("SAM_REFERENCE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut candidates = manifest
        .ancestors()
        .map(|a| a.join("shared/reference"))
        .chain(std::iter::once(PathBuf::from("/work/shared/reference")));
    candidates.find(|c| c.join("preprocess.json").is_file())
}

/// The reference directory, or `None` (test skipped) when `SAM_SKIP_REFERENCE`
/// is set and the data is missing. Panics when it is missing otherwise.
fn require_reference() -> Option<PathBuf> {
    match reference_dir() {
        Some(d) => Some(d),
        None if std::env::var_os("SAM_SKIP_REFERENCE").is_some() => {
            eprintln!("reference data not found: skipped (SAM_SKIP_REFERENCE set)");
            None
        }
        None => panic!(
            "shared/reference not found (set SAM_REFERENCE_DIR, or SAM_SKIP_REFERENCE=1 to skip)"
        ),
    }
}

fn preprocess_bytes() -> Option<&'static [u8]> {
    static BYTES: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            let dir = require_reference()?;
            Some(
                std::fs::read(dir.join("preprocess.safetensors"))
                    .expect("read preprocess.safetensors"),
            )
        })
        .as_deref()
}

fn preprocess_meta(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("preprocess.json")).expect("read preprocess.json");
    serde_json::from_str(&text).expect("parse preprocess.json")
}

fn tensor<'a>(st: &'a SafeTensors<'a>, key: &str) -> (Vec<usize>, &'a [u8]) {
    let t = st
        .tensor(key)
        .unwrap_or_else(|e| panic!("missing tensor {key}: {e}"));
    (t.shape().to_vec(), t.data())
}

fn json_usize_pair(v: &Value) -> (usize, usize) {
    let a = v.as_array().expect("pair");
    (
        a[0].as_u64().unwrap() as usize,
        a[1].as_u64().unwrap() as usize,
    )
}

/// Same formula as `hash_image` in gen_fixtures.py.
fn hash_image(h: usize, w: usize, seed: u64) -> RgbImage {
    let base = seed * 1_000_003;
    let data = (0..(h * w * 3) as u64)
        .map(|i| ((((i + base).wrapping_mul(2_654_435_761)) & 0xFFFF_FFFF) >> 24) as u8)
        .collect();
    RgbImage::new(w, h, data).unwrap()
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn mismatches(a: &[u8], b: &[u8]) -> (usize, u8) {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold((0, 0), |(n, m), (&x, &y)| {
        if x == y {
            (n, m)
        } else {
            (n + 1, m.max(x.abs_diff(y)))
        }
    })
}

// ---------------------------------------------------------------- reference data

#[test]
fn resized_reference_images_are_reproduced_exactly() {
    let Some(bytes) = preprocess_bytes() else {
        return;
    };
    let dir = require_reference().unwrap();
    let meta = preprocess_meta(&dir);
    let st = SafeTensors::deserialize(bytes).unwrap();
    let images = meta["images"].as_object().unwrap();
    for name in ["landscape", "portrait", "tiny", "large"] {
        let m = &images[name];
        let (oh, ow) = json_usize_pair(&m["orig_size"]);
        let (ih, iw) = json_usize_pair(&m["input_size"]);
        let (shape, src) = tensor(&st, m["image_key"].as_str().unwrap());
        assert_eq!(shape, vec![oh, ow, 3]);
        let img = RgbImage::new(ow, oh, src.to_vec()).unwrap();
        assert_eq!(preprocess_shape(oh, ow, IMG_SIZE), (ih, iw), "{name} shape");

        let t = Instant::now();
        let resized = resize_longest_side(&img, IMG_SIZE);
        let dt = t.elapsed();
        let (rshape, want) = tensor(&st, m["resized_key"].as_str().unwrap());
        assert_eq!(rshape, vec![ih, iw, 3]);
        assert_eq!((resized.height, resized.width), (ih, iw));
        let (n, max) = mismatches(&resized.data, want);
        eprintln!(
            "{name}: {oh}x{ow} -> {ih}x{iw}: {n} mismatching bytes (max diff {max}) in {dt:?}"
        );
        assert_eq!(
            n, 0,
            "{name}: {n} bytes differ from Pillow (max abs diff {max})"
        );
    }
}

#[test]
fn model_inputs_are_bit_exact() {
    let Some(bytes) = preprocess_bytes() else {
        return;
    };
    let dir = require_reference().unwrap();
    let meta = preprocess_meta(&dir);
    let st = SafeTensors::deserialize(bytes).unwrap();
    for name in ["landscape", "portrait", "tiny"] {
        let m = &meta["images"][name];
        let (oh, ow) = json_usize_pair(&m["orig_size"]);
        let (_, src) = tensor(&st, m["image_key"].as_str().unwrap());
        let img = RgbImage::new(ow, oh, src.to_vec()).unwrap();
        let (ishape, want) = tensor(&st, m["input_key"].as_str().unwrap());
        assert_eq!(ishape, vec![1, 3, IMG_SIZE, IMG_SIZE]);
        let want: Vec<u32> = want
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();

        let (input, hw) = preprocess(&img);
        assert_eq!(hw, json_usize_pair(&m["input_size"]));
        assert_eq!(input.len(), want.len());
        let bad = input
            .iter()
            .zip(&want)
            .filter(|(a, b)| a.to_bits() != **b)
            .count();
        eprintln!(
            "{name}: {bad} of {} input values differ bitwise",
            input.len()
        );
        assert_eq!(bad, 0, "{name}: input differs");

        // normalize_and_pad alone on the reference resized image
        let (rshape, rdata) = tensor(&st, m["resized_key"].as_str().unwrap());
        let resized = RgbImage::new(rshape[1], rshape[0], rdata.to_vec()).unwrap();
        let input2 = normalize_and_pad(&resized);
        assert!(input2.iter().zip(&want).all(|(a, b)| a.to_bits() == *b));
    }
}

fn check_manifest_coords(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let m: Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for case in m["predictor_cases"].as_array().unwrap() {
        let image = case["image"].as_str().unwrap();
        let orig = json_usize_pair(&m["images"][image]["orig_size"]);
        let inputs = &case["inputs"];
        let transformed = &case["transformed"];
        if let Some(pts) = inputs.get("point_coords").and_then(Value::as_array) {
            let p64: Vec<[f64; 2]> = pts
                .iter()
                .map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()])
                .collect();
            let p32: Vec<[f32; 2]> = p64.iter().map(|p| [p[0] as f32, p[1] as f32]).collect();
            let want = transformed["point_coords"].as_array().unwrap();
            let got64 = apply_coords_f64(&p64, orig, IMG_SIZE);
            let got32 = apply_coords(&p32, orig, IMG_SIZE);
            assert_eq!(want.len(), got64.len());
            for ((w, g64), g32) in want.iter().zip(&got64).zip(&got32) {
                for i in 0..2 {
                    let w = w[i].as_f64().unwrap();
                    assert!(
                        (g64[i] - w).abs() <= 1e-9 * w.abs().max(1.0),
                        "{g64:?} vs {w}"
                    );
                    assert!((f64::from(g32[i]) - w).abs() <= 1e-4, "{g32:?} vs {w}");
                    assert_eq!(g32[i], w as f32, "f32 rounding of {w}");
                }
                checked += 1;
            }
        }
        if let Some(b) = inputs.get("box").and_then(Value::as_array) {
            let b64 = [0, 1, 2, 3].map(|i| b[i].as_f64().unwrap());
            let b32 = b64.map(|v| v as f32);
            let want = &transformed["box"][0];
            let got64 = apply_boxes_f64(&[b64], orig, IMG_SIZE)[0];
            let got32 = apply_boxes(&[b32], orig, IMG_SIZE)[0];
            for i in 0..4 {
                let w = want[i].as_f64().unwrap();
                assert!(
                    (got64[i] - w).abs() <= 1e-9 * w.abs().max(1.0),
                    "{got64:?} vs {w}"
                );
                assert!((f64::from(got32[i]) - w).abs() <= 1e-4, "{got32:?} vs {w}");
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn prompt_transforms_match_the_manifests() {
    let Some(dir) = require_reference() else {
        return;
    };
    let mut total = 0;
    for tag in common::model_tags() {
        let n = check_manifest_coords(&dir.join(format!("{tag}_manifest.json")));
        eprintln!("{tag}: {n} transformed points/boxes match");
        assert!(n > 0, "{tag}: no predictor case with prompts");
        total += n;
    }
    assert!(total > 0, "no manifest with predictor cases found");
}

// ---------------------------------------------------------------- Pillow fixtures

#[test]
fn small_resizes_match_pillow_exactly() {
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("resize_cases.json")).unwrap())
            .unwrap();
    let bytes = std::fs::read(fixture("resize_cases.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let cases = meta["small"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let get = |k: &str| c[k].as_u64().unwrap() as usize;
        let (h, w, nh, nw) = (get("h"), get("w"), get("new_h"), get("new_w"));
        let img = hash_image(h, w, c["seed"].as_u64().unwrap());
        let (shape, want) = tensor(&st, &format!("{}/dst", c["key"].as_str().unwrap()));
        assert_eq!(shape, vec![nh, nw, 3]);
        let got = resize_rgb(&img, nw, nh);
        assert_eq!((got.height, got.width), (nh, nw));
        let (n, max) = mismatches(&got.data, want);
        assert_eq!(n, 0, "{h}x{w} -> {nh}x{nw}: {n} bytes differ (max {max})");
    }
}

#[test]
fn large_resizes_match_pillow_hashes() {
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("resize_cases.json")).unwrap())
            .unwrap();
    for c in meta["large"].as_array().unwrap() {
        let get = |k: &str| c[k].as_u64().unwrap() as usize;
        let (h, w, nh, nw) = (get("h"), get("w"), get("new_h"), get("new_w"));
        let img = hash_image(h, w, c["seed"].as_u64().unwrap());
        let got = resize_rgb(&img, nw, nh);
        let want = u64::from_str_radix(c["fnv1a64"].as_str().unwrap(), 16).unwrap();
        assert_eq!(fnv1a64(&got.data), want, "{h}x{w} -> {nh}x{nw}");
    }
}

#[test]
fn extreme_aspect_ratios() {
    // 1x5000 (h x w): the official int(0.2048 + 0.5) = 0 rows; we clamp to 1.
    assert_eq!(preprocess_shape(1, 5000, 1024), (1, 1024));
    assert_eq!(preprocess_shape(5000, 1, 1024), (1024, 1));
    let wide = resize_longest_side(&hash_image(1, 5000, 1), IMG_SIZE);
    assert_eq!((wide.height, wide.width), (1, 1024));
    let tall = resize_longest_side(&hash_image(5000, 1, 2), IMG_SIZE);
    assert_eq!((tall.height, tall.width), (1024, 1));
    let (input, hw) = preprocess(&hash_image(1, 5000, 3));
    assert_eq!(hw, (1, 1024));
    assert_eq!(input.len(), 3 * IMG_SIZE * IMG_SIZE);
    // coordinates follow the clamped size
    let p = apply_coords(&[[2500.0, 0.5]], (1, 5000), IMG_SIZE);
    assert_eq!(p[0], [512.0, 0.5]);
}

// ---------------------------------------------------------------- shapes and edge cases

#[test]
fn preprocess_shape_matches_python() {
    assert_eq!(preprocess_shape(37, 53, 1024), (715, 1024));
    assert_eq!(preprocess_shape(480, 640, 1024), (768, 1024));
    assert_eq!(preprocess_shape(640, 480, 1024), (1024, 768));
    assert_eq!(preprocess_shape(1200, 1600, 1024), (768, 1024));
    assert_eq!(preprocess_shape(3000, 4000, 1024), (768, 1024));
    assert_eq!(preprocess_shape(1, 1, 1024), (1024, 1024));
    assert_eq!(preprocess_shape(1024, 1024, 1024), (1024, 1024));
    // 1000 * (1024 / 3000) = 341.33 -> 341; 1500/3000*1024 = 512
    assert_eq!(preprocess_shape(1000, 3000, 1024), (341, 1024));
    assert_eq!(preprocess_shape(1500, 3000, 1024), (512, 1024));
    assert_eq!(preprocess_shape(0, 0, 1024), (0, 0));
    assert_eq!(preprocess_shape(0, 7, 1024), (0, 1024));
}

#[test]
fn one_pixel_image_upscales_to_a_constant() {
    let img = RgbImage::new(1, 1, vec![12, 200, 255]).unwrap();
    let (input, hw) = preprocess(&img);
    assert_eq!(hw, (1024, 1024));
    let r = resize_longest_side(&img, IMG_SIZE);
    assert_eq!((r.width, r.height), (1024, 1024));
    assert!(r.data.chunks_exact(3).all(|p| p == [12, 200, 255]));
    let plane = IMG_SIZE * IMG_SIZE;
    for c in 0..3 {
        let v = (f32::from(img.data[c]) - PIXEL_MEAN[c]) / PIXEL_STD[c];
        assert!(input[c * plane..(c + 1) * plane].iter().all(|&x| x == v));
    }
    // 1x1 -> 1x1 is a copy; zero target sizes are clamped to 1
    assert_eq!(resize_rgb(&img, 1, 1), img);
    assert_eq!(resize_rgb(&img, 0, 0), img);
    let z = resize_rgb(&hash_image(5, 7, 1), 0, 3);
    assert_eq!((z.width, z.height), (1, 3));
}

#[test]
fn identity_resize_is_a_copy() {
    let img = hash_image(37, 53, 5);
    assert_eq!(resize_rgb(&img, 53, 37), img);
    let big = hash_image(768, 1024, 6);
    assert_eq!(resize_longest_side(&big, 1024), big);
}

#[test]
fn constant_images_stay_constant() {
    for &(h, w, nh, nw) in &[(3, 5, 700, 1000), (900, 1300, 31, 17), (2, 999, 1, 3)] {
        let img = RgbImage::new(w, h, [7u8, 128, 255].repeat(w * h)).unwrap();
        let r = resize_rgb(&img, nw, nh);
        assert!(
            r.data.chunks_exact(3).all(|p| p == [7, 128, 255]),
            "{h}x{w}->{nh}x{nw}"
        );
    }
}

#[test]
fn normalize_and_pad_layout_and_padding() {
    let img = hash_image(3, 5, 9);
    let out = normalize_and_pad(&img);
    let plane = IMG_SIZE * IMG_SIZE;
    assert_eq!(out.len(), 3 * plane);
    for y in 0..IMG_SIZE {
        for x in 0..IMG_SIZE {
            for c in 0..3 {
                let got = out[c * plane + y * IMG_SIZE + x];
                if y < 3 && x < 5 {
                    let v = f32::from(img.pixel(x, y)[c]);
                    assert_eq!(
                        got.to_bits(),
                        ((v - PIXEL_MEAN[c]) / PIXEL_STD[c]).to_bits()
                    );
                } else {
                    assert_eq!(got.to_bits(), 0, "padding at ({x}, {y}, {c})");
                }
            }
        }
    }
    // Larger than 1024: cropped (F.pad with a negative amount), no panic.
    let wide = hash_image(2, 1030, 4);
    let out = normalize_and_pad(&wide);
    assert_eq!(out.len(), 3 * plane);
    let v = (f32::from(wide.pixel(1023, 1)[2]) - PIXEL_MEAN[2]) / PIXEL_STD[2];
    assert_eq!(out[2 * plane + IMG_SIZE + 1023], v);
}

#[test]
fn apply_coords_basic() {
    // 37x53 -> 715x1024
    let p = apply_coords_f64(&[[53.0, 37.0], [0.0, 0.0]], (37, 53), 1024);
    assert_eq!(p[0], [1024.0, 715.0]);
    assert_eq!(p[1], [0.0, 0.0]);
    let b = apply_boxes(&[[0.0, 0.0, 640.0, 480.0]], (480, 640), 1024);
    assert_eq!(b[0], [0.0, 0.0, 1024.0, 768.0]);
    assert!(apply_coords(&[], (10, 10), 1024).is_empty());
    // zero-size original: unchanged, no NaN
    assert_eq!(apply_coords(&[[3.0, 4.0]], (0, 0), 1024)[0], [3.0, 4.0]);
}

// ---------------------------------------------------------------- construction

#[test]
fn channel_conversions() {
    let rgba = [1u8, 2, 3, 4, 5, 6, 7, 0];
    let img = RgbImage::from_rgba(2, 1, &rgba).unwrap();
    assert_eq!(img.data, vec![1, 2, 3, 5, 6, 7]); // alpha dropped, no premultiply
    let g = RgbImage::from_gray(1, 2, &[9, 250]).unwrap();
    assert_eq!(g.data, vec![9, 9, 9, 250, 250, 250]);
    let la = RgbImage::from_channels(2, 1, 2, &[10, 0, 20, 255]).unwrap();
    assert_eq!(la.data, vec![10, 10, 10, 20, 20, 20]);
    let rgb = RgbImage::from_channels(1, 1, 3, &[1, 2, 3]).unwrap();
    assert_eq!(rgb, RgbImage::new(1, 1, vec![1, 2, 3]).unwrap());
    assert_eq!(
        RgbImage::from_channels(1, 1, 4, &[1, 2, 3, 4])
            .unwrap()
            .data,
        vec![1, 2, 3]
    );
    for ch in [0, 5, 17] {
        assert_eq!(
            RgbImage::from_channels(1, 1, ch, &[0; 17]),
            Err(ImageError::UnsupportedChannels(ch))
        );
    }
    assert!(img.validate().is_ok());
    let broken = RgbImage {
        width: 2,
        height: 2,
        data: vec![0; 3],
    };
    assert_eq!(
        broken.validate(),
        Err(ImageError::BadBuffer {
            expected: 12,
            found: 3
        })
    );
}

#[test]
fn construction_errors() {
    assert_eq!(
        RgbImage::new(0, 5, vec![]),
        Err(ImageError::Empty {
            width: 0,
            height: 5
        })
    );
    assert_eq!(
        RgbImage::new(5, 0, vec![]),
        Err(ImageError::Empty {
            width: 5,
            height: 0
        })
    );
    assert_eq!(
        RgbImage::from_gray(0, 0, &[]),
        Err(ImageError::Empty {
            width: 0,
            height: 0
        })
    );
    assert_eq!(
        RgbImage::new(2, 2, vec![0; 11]),
        Err(ImageError::BadBuffer {
            expected: 12,
            found: 11
        })
    );
    assert_eq!(
        RgbImage::from_rgba(2, 2, &[0; 12]),
        Err(ImageError::BadBuffer {
            expected: 16,
            found: 12
        })
    );
    let too_large = |w: usize, h: usize| ImageError::TooLarge {
        width: w,
        height: h,
        max: MAX_IMAGE_PIXELS,
    };
    assert_eq!(
        RgbImage::new(16385, 16384, vec![]),
        Err(too_large(16385, 16384))
    );
    assert_eq!(
        RgbImage::new(usize::MAX, 2, vec![]),
        Err(too_large(usize::MAX, 2))
    );
    assert_eq!(
        RgbImage::from_gray(usize::MAX, usize::MAX, &[]),
        Err(too_large(usize::MAX, usize::MAX))
    );
    assert_eq!(
        RgbImage::new(MAX_IMAGE_PIXELS + 1, 1, vec![]),
        Err(too_large(MAX_IMAGE_PIXELS + 1, 1))
    );
    // exactly the limit is accepted (buffer length is then the only error)
    assert_eq!(
        RgbImage::new(MAX_IMAGE_PIXELS, 1, vec![]),
        Err(ImageError::BadBuffer {
            expected: MAX_IMAGE_PIXELS * 3,
            found: 0
        })
    );
    // errors display
    assert!(too_large(3, 4).to_string().contains("3x4"));
}

// ---------------------------------------------------------------- timing

/// `cargo test --release --test preprocess -- --ignored --nocapture timing`
#[test]
#[ignore = "timing; run in release"]
fn timing_resize_4000x3000() {
    let img = hash_image(3000, 4000, 21);
    let _ = resize_longest_side(&img, IMG_SIZE); // warm-up
    let runs = 5;
    let t = Instant::now();
    let mut out = None;
    for _ in 0..runs {
        out = Some(resize_longest_side(&img, IMG_SIZE));
    }
    let per = t.elapsed() / runs;
    let out = out.unwrap();
    assert_eq!((out.height, out.width), (768, 1024));
    let t = Instant::now();
    let (input, _) = preprocess(&img);
    let full = t.elapsed();
    assert_eq!(input.len(), 3 * IMG_SIZE * IMG_SIZE);
    eprintln!("4000x3000 -> 1024x768 resize: {per:?} per run; full preprocess: {full:?}");
    assert!(per.as_secs_f64() < 1.0);
}
