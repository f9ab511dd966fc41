//! Gathers the few reference tensors the browser tests need (`tests/web.rs`) from the
//! reference kit into one small safetensors file in `OUT_DIR`, so the test `.wasm` embeds
//! ~4 MB of reference data instead of the kit's 100 MB. Without the kit (`$SAM_REFERENCE_DIR`
//! or `../shared/reference` beside the repository) the file is empty and the tests say so.

use std::collections::HashMap;
use std::path::PathBuf;

use safetensors::tensor::TensorView;
use safetensors::{SafeTensors, serialize};

/// (file, tensor names) the browser tests compare against.
const WANTED: &[(&str, &[&str])] = &[
    ("preprocess.safetensors", &["image/landscape", "image/tiny"]),
    (
        "tiny_seed0_ref.safetensors",
        &[
            "embed/landscape",
            "pred/point_multi/masks",
            "pred/point_multi/iou_predictions",
            "pred/point_multi/low_res_masks",
            "pred/box_single/masks",
            "pred/box_single/iou_predictions",
            "pred/box_single/low_res_masks",
            "pred/points2_maskin_single/masks",
            "pred/points2_maskin_single/iou_predictions",
            "pred/points2_maskin_single/low_res_masks",
            "pred/points2_maskin_single/mask_input",
        ],
    ),
];

fn main() {
    println!("cargo:rerun-if-env-changed=SAM_REFERENCE_DIR");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let dir = std::env::var("SAM_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest.join("../../../shared/reference"));
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let mut bytes = Vec::new();
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for (file, _) in WANTED {
        let path = dir.join(file);
        println!("cargo:rerun-if-changed={}", path.display());
        match std::fs::read(&path) {
            Ok(b) => files.push((path, b)),
            Err(_) => {
                files.clear();
                break;
            }
        }
    }
    if !files.is_empty() {
        let mut views: HashMap<String, TensorView<'_>> = HashMap::new();
        let parsed: Vec<SafeTensors<'_>> = files
            .iter()
            .map(|(p, b)| {
                SafeTensors::deserialize(b).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            })
            .collect();
        for (st, (_, names)) in parsed.iter().zip(WANTED) {
            for name in *names {
                let t = st
                    .tensor(name)
                    .unwrap_or_else(|e| panic!("reference tensor {name}: {e}"));
                let view = TensorView::new(t.dtype(), t.shape().to_vec(), t.data()).unwrap();
                views.insert((*name).to_string(), view);
            }
        }
        bytes = serialize(views, None).unwrap();
    }
    std::fs::write(out.join("test_reference.safetensors"), bytes).unwrap();
    let ckpt = dir.join("tiny_seed0.pth");
    println!("cargo:rerun-if-changed={}", ckpt.display());
    std::fs::write(
        out.join("tiny_seed0.pth"),
        std::fs::read(&ckpt).unwrap_or_default(),
    )
    .unwrap();
}
