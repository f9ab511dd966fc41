//! The fixture writer (`sam_core::fixture`, `checkpoint::writer`) against the reference kit:
//! its checkpoint of the kit's `tiny` architecture reads back through our reader with the
//! kit's keys, shapes and dtypes (in order); every kit `.pth` has the key list the writer
//! gives its detected model type, and its tensors rewritten by the writer read back equal;
//! the output is deterministic and a ViT-B file is detected as `vit_b`.

mod common;

use std::io::Cursor;

use sam_core::ModelType;
use sam_core::fixture::{checkpoint_bytes, official_tensors, write_checkpoint};
use sam_core::io::checkpoint::writer::{TensorSpec, write_pth};
use sam_core::io::checkpoint::{Checkpoint, StoredDType};
use sam_core::modeling::image_encoder::ViTConfig;
use serde_json::Value;

/// `(key, shape, dtype name)` of a checkpoint, in file order.
fn key_list(ckpt: &Checkpoint) -> Vec<(String, Vec<usize>, String)> {
    ckpt.keys()
        .map(|k| {
            let info = ckpt.info(k).unwrap();
            (
                k.to_string(),
                info.shape.clone(),
                info.dtype.name().to_string(),
            )
        })
        .collect()
}

/// The manifest's `checkpoint.keys`: `[[key, shape, dtype], ...]`.
fn manifest_keys(manifest: &Value) -> Vec<(String, Vec<usize>, String)> {
    manifest["checkpoint"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let shape = e[1].as_array().unwrap();
            (
                e[0].as_str().unwrap().to_string(),
                shape.iter().map(|n| n.as_u64().unwrap() as usize).collect(),
                e[2].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn spec_list(model: &ModelType) -> Vec<(String, Vec<usize>, String)> {
    official_tensors(model)
        .into_iter()
        .map(|t| (t.spec.key, t.spec.shape, t.spec.dtype.name().to_string()))
        .collect()
}

/// The kit's `tiny` ViT configuration, from its manifest's `architecture`.
fn tiny_config(manifest: &Value) -> ViTConfig {
    let a = &manifest["architecture"];
    let n = |k: &str| a[k].as_u64().unwrap_or_else(|| panic!("architecture.{k}")) as usize;
    ViTConfig {
        img_size: n("img_size"),
        patch_size: n("patch_size"),
        embed_dim: n("encoder_embed_dim"),
        depth: n("encoder_depth"),
        num_heads: n("encoder_num_heads"),
        mlp_ratio: 4,
        out_chans: 256,
        window_size: n("window_size"),
        global_attn_indexes: a["encoder_global_attn_indexes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap() as usize)
            .collect(),
    }
}

#[test]
fn tiny_fixture_has_the_kits_keys_and_loads() {
    let tag = common::tiny_tag();
    let manifest = common::manifest(&tag);
    let model = ModelType::CustomViT(tiny_config(&manifest));
    let bytes = checkpoint_bytes(&model, 7, "tiny_fixture").unwrap();
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    assert_eq!(key_list(&ckpt), manifest_keys(&manifest), "{tag}");
    assert_eq!(ModelType::detect(&ckpt).unwrap(), model);
    // Every tensor reads, finite and not constant (num_batches_tracked aside).
    for key in ckpt.keys() {
        let v = ckpt.read_f32(key).unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{key}");
        if v.len() > 1 {
            assert!(v.iter().any(|&x| x != v[0]), "{key} is constant");
        }
    }
    // The model builds from it on the CPU.
    let device = common::devices()[0].1.clone();
    sam_core::Sam::from_bytes(&bytes, None, &device).unwrap();
}

#[test]
fn fixture_is_deterministic_and_seeded() {
    let model = ModelType::MobileSam;
    let a = checkpoint_bytes(&model, 1, "m").unwrap();
    let b = checkpoint_bytes(&model, 1, "m").unwrap();
    let c = checkpoint_bytes(&model, 2, "m").unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), c.len());
    assert_ne!(a, c);
    let ckpt = Checkpoint::from_bytes(&a).unwrap();
    assert_eq!(ModelType::detect(&ckpt).unwrap(), ModelType::MobileSam);
    let device = common::devices()[0].1.clone();
    sam_core::Sam::from_bytes(&a, None, &device).unwrap();
}

#[test]
fn kit_checkpoints_round_trip_through_the_writer() {
    for tag in common::model_tags() {
        let bytes = common::read(&format!("{tag}.pth"));
        let kit = Checkpoint::from_bytes(&bytes).unwrap();
        let model = ModelType::detect(&kit).unwrap();
        assert_eq!(
            spec_list(&model),
            key_list(&kit),
            "{tag}: the writer's key list"
        );
        // Rewritten with the kit's values, the file reads back equal.
        let specs: Vec<TensorSpec> = official_tensors(&model)
            .into_iter()
            .map(|t| t.spec)
            .collect();
        let out = write_pth(Cursor::new(Vec::new()), &tag, &specs, 0, |_, s, buf| {
            match s.dtype {
                StoredDType::F32 => {
                    for x in kit.read_f32(&s.key).unwrap() {
                        buf.extend_from_slice(&x.to_le_bytes());
                    }
                }
                _ => {
                    for x in kit.read_i64(&s.key).unwrap() {
                        buf.extend_from_slice(&x.to_le_bytes());
                    }
                }
            }
            Ok(())
        })
        .unwrap()
        .into_inner();
        let back = Checkpoint::from_bytes(&out).unwrap();
        assert_eq!(key_list(&back), key_list(&kit), "{tag}");
        for s in &specs {
            match s.dtype {
                StoredDType::F32 => assert_eq!(
                    back.read_f32(&s.key).unwrap(),
                    kit.read_f32(&s.key).unwrap(),
                    "{tag}: {}",
                    s.key
                ),
                _ => assert_eq!(
                    back.read_i64(&s.key).unwrap(),
                    kit.read_i64(&s.key).unwrap()
                ),
            }
        }
    }
}

#[test]
fn vit_b_fixture_is_detected_as_vit_b() {
    // 375 MB through a temporary file (not kept in memory twice).
    let path = std::env::temp_dir().join(format!("sam_fixture_vit_b_{}.pth", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    write_checkpoint(
        std::io::BufWriter::new(file),
        "sam_vit_b_01ec64",
        &ModelType::VitB,
        0,
    )
    .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    assert_eq!(ModelType::detect(&ckpt).unwrap(), ModelType::VitB);
    assert_eq!(ckpt.len(), official_tensors(&ModelType::VitB).len());
}

/// Keys and element counts of the official builders' `state_dict()` (`sam_model_registry[...]()`,
/// segment-anything 1.0); MobileSAM's from the kit's manifest. With `$SAM_OFFICIAL_KEYS` set to
/// a JSON `{"vit_b": [[key, shape, dtype], ...], ...}` dumped from those builders, the whole
/// key lists are compared too.
#[test]
fn official_model_types_have_the_official_key_lists() {
    let count = |m: &ModelType| -> (usize, usize) {
        let t = official_tensors(m);
        (t.len(), t.iter().map(|t| t.spec.numel()).sum())
    };
    let mobile = common::manifest(&common::mobile_sam_tag());
    assert_eq!(
        count(&ModelType::MobileSam).1 as u64,
        mobile["checkpoint"]["num_state_dict_elements"]
            .as_u64()
            .unwrap()
    );
    assert_eq!(count(&ModelType::VitB), (314, 93_735_728));
    assert_eq!(count(&ModelType::VitL), (482, 312_343_088));
    assert_eq!(count(&ModelType::VitH), (594, 641_090_864));
    if let Ok(path) = std::env::var("SAM_OFFICIAL_KEYS") {
        let official: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        for m in [ModelType::VitB, ModelType::VitL, ModelType::VitH] {
            let keys =
                manifest_keys(&serde_json::json!({"checkpoint": {"keys": official[m.name()]}}));
            assert_eq!(spec_list(&m), keys, "{m}");
        }
    }
}
