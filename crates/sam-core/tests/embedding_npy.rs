//! Image embeddings as `.npy` files: ours round-trip, and a file laid out exactly as numpy's
//! `np.save` writes a `[1, 256, 64, 64]` float32 array drives the decoder to the reference.

mod common;

use burn::tensor::Device;
use common::*;
use pollster::block_on;
use sam_core::preprocess::RgbImage;
use sam_core::readback::read_f32;
use sam_core::{ImageEmbedding, Prompt, Sam, SamError};

/// The header numpy 2.4 writes for `np.save(f, np.zeros((1, 256, 64, 64), np.float32))`,
/// captured from numpy itself (128 bytes, version 1.0).
const NUMPY_HEADER: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1, 256, 64, 64), }                                                \n";

fn numpy_file(values: &[f32]) -> Vec<u8> {
    let mut bytes = NUMPY_HEADER.to_vec();
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

#[test]
fn numpy_embedding_drives_the_decoder() {
    let device = Device::flex();
    let tag = tiny_tag();
    let refs = RefFile::open(&format!("{tag}_ref.safetensors"));
    let manifest = manifest(&tag);
    let sam = Sam::from_bytes(&read(&format!("{tag}.pth")), None, &device).unwrap();
    let case = manifest["predictor_cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "point_multi")
        .unwrap();
    let image = &manifest["images"][case["image"].as_str().unwrap()];
    let pair = |v: &serde_json::Value| {
        (
            v[0].as_u64().unwrap() as usize,
            v[1].as_u64().unwrap() as usize,
        )
    };
    let embed = refs.get(image["embedding_key"].as_str().unwrap());
    let bytes = numpy_file(&embed.data);
    let emb = ImageEmbedding::from_npy(&bytes, pair(&image["orig_size"]), &device).unwrap();
    assert_eq!(emb.input_size, pair(&image["input_size"]));
    // Our writer produces numpy's bytes.
    assert_eq!(block_on(emb.to_npy()).unwrap(), bytes);
    let p = &case["inputs"]["point_coords"][0];
    let prompt = Prompt {
        points: vec![[p[0].as_f64().unwrap() as f32, p[1].as_f64().unwrap() as f32]],
        labels: case["inputs"]["point_labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_i64().unwrap() as i32)
            .collect(),
        multimask_output: case["inputs"]["multimask_output"].as_bool().unwrap(),
        ..Default::default()
    };
    let pred = sam.predict(&emb, &prompt).unwrap();
    let (_, iou) = block_on(read_f32(pred.iou_predictions)).unwrap();
    let (_, low) = block_on(read_f32(pred.low_res_logits)).unwrap();
    let max = |a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len(), "value counts differ");
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    };
    let iou_err = max(&iou, &refs.get("pred/point_multi/iou_predictions").data);
    let low_err = max(&low, &refs.get("pred/point_multi/low_res_masks").data);
    println!("from numpy embedding: iou err {iou_err:.2e}, low-res err {low_err:.2e}");
    assert!(iou_err <= tolerance(&manifest, "iou_atol"));
    assert!(low_err <= tolerance(&manifest, "low_res_logits_atol"));
}

#[test]
fn our_embedding_round_trips() {
    let device = Device::flex();
    let sam = Sam::from_bytes(&read(&format!("{}.pth", tiny_tag())), None, &device).unwrap();
    let img = RgbImage::new(
        53,
        37,
        (0..53 * 37 * 3).map(|i| (i * 7 % 256) as u8).collect(),
    )
    .unwrap();
    let emb = sam.set_image(&img).unwrap();
    let bytes = block_on(emb.to_npy()).unwrap();
    let back = ImageEmbedding::from_npy(&bytes, (37, 53), &device).unwrap();
    assert_eq!(back.input_size, emb.input_size);
    let a = block_on(read_f32(emb.features)).unwrap();
    let b = block_on(read_f32(back.features)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn wrong_embedding_files_are_errors() {
    let device = Device::flex();
    let small = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/f4_embed_1x256x2x2.npy"
    ))
    .unwrap();
    let err = ImageEmbedding::from_npy(&small, (10, 10), &device).unwrap_err();
    assert!(matches!(err, SamError::Input(_)), "{err}");
    println!("{err}");
    let err = ImageEmbedding::from_npy(b"not a numpy file", (10, 10), &device).unwrap_err();
    assert!(matches!(err, SamError::Npy(_)), "{err}");
    let mut truncated = numpy_file(&vec![0.0; 256 * 64 * 64]);
    truncated.truncate(10_000);
    assert!(matches!(
        ImageEmbedding::from_npy(&truncated, (10, 10), &device),
        Err(SamError::Npy(_))
    ));
    let ok = numpy_file(&vec![0.0; 256 * 64 * 64]);
    assert!(matches!(
        ImageEmbedding::from_npy(&ok, (0, 10), &device),
        Err(SamError::Input(_))
    ));
}
