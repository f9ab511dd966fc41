//! Gathers what the browser tests (`tests/web.rs`) need from the reference kit into `OUT_DIR`,
//! so the test `.wasm` embeds ~4 MB of reference data instead of the kit's 100 MB:
//! `tiny.pth` (the kit's ViT test model), `tiny_manifest.json` (its manifest: prompts,
//! tolerances) and `test_reference.safetensors` (the few reference tensors compared).
//!
//! The kit is `$SAM_REFERENCE_DIR` or `../shared/reference` beside the repository, of any
//! seed: the model is the tag of `$SAM_REFERENCE_TAGS` (comma-separated, as sam-core's tests
//! read it) whose manifest says `"config": "tiny"`, else the first such `*_manifest.json` of
//! the kit. Without a kit the files are empty and the tests say so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::{SafeTensors, serialize};

/// The predictor cases the browser tests run (`pred/<case>/*` of the tag's reference file).
const CASES: &[&str] = &["point_multi", "box_single", "points2_maskin_single"];

/// The kit's tag of the `tiny` config, as described above.
fn tiny_tag(dir: &Path) -> Option<String> {
    let mut tags: Vec<String> = match std::env::var("SAM_REFERENCE_TAGS") {
        Ok(list) => list
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        Err(_) => std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix("_manifest.json").map(String::from)
            })
            .collect(),
    };
    tags.sort();
    tags.into_iter().find(|tag| {
        std::fs::read(dir.join(format!("{tag}_manifest.json")))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|m| m["config"] == "tiny")
    })
}

fn main() {
    println!("cargo:rerun-if-env-changed=SAM_REFERENCE_DIR");
    println!("cargo:rerun-if-env-changed=SAM_REFERENCE_TAGS");
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let dir = std::env::var("SAM_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest_dir.join("../../../shared/reference"));
    println!("cargo:rerun-if-changed={}", dir.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let tag = tiny_tag(&dir);
    let (mut bytes, mut ckpt, mut manifest) = (Vec::new(), Vec::new(), Vec::new());
    if let Some(tag) = &tag {
        let mut wanted: Vec<(String, Vec<String>)> = vec![(
            "preprocess.safetensors".into(),
            vec!["image/landscape".into(), "image/tiny".into()],
        )];
        let mut names = vec!["embed/landscape".to_string()];
        for case in CASES {
            for t in ["masks", "iou_predictions", "low_res_masks"] {
                names.push(format!("pred/{case}/{t}"));
            }
        }
        names.push("pred/points2_maskin_single/mask_input".into());
        wanted.push((format!("{tag}_ref.safetensors"), names));
        let files: Vec<(PathBuf, Vec<u8>)> = wanted
            .iter()
            .map(|(file, _)| {
                let path = dir.join(file);
                println!("cargo:rerun-if-changed={}", path.display());
                let b = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                (path, b)
            })
            .collect();
        let parsed: Vec<SafeTensors<'_>> = files
            .iter()
            .map(|(p, b)| {
                SafeTensors::deserialize(b).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            })
            .collect();
        let mut views: HashMap<String, TensorView<'_>> = HashMap::new();
        for (st, (_, names)) in parsed.iter().zip(&wanted) {
            for name in names {
                let t = st
                    .tensor(name)
                    .unwrap_or_else(|e| panic!("reference tensor {name}: {e}"));
                let view = TensorView::new(t.dtype(), t.shape().to_vec(), t.data()).unwrap();
                views.insert(name.clone(), view);
            }
        }
        bytes = serialize(views, None).unwrap();
        for (name, into) in [
            (format!("{tag}.pth"), &mut ckpt),
            (format!("{tag}_manifest.json"), &mut manifest),
        ] {
            let path = dir.join(name);
            println!("cargo:rerun-if-changed={}", path.display());
            *into =
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        }
    }
    std::fs::write(out.join("test_reference.safetensors"), bytes).unwrap();
    std::fs::write(out.join("tiny.pth"), ckpt).unwrap();
    std::fs::write(out.join("tiny_manifest.json"), manifest).unwrap();
}
