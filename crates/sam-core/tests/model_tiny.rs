//! Parity of the model with the official implementation on the `tiny_seed0` reference kit:
//! image embeddings, encoder intermediates, `image_pe`, and every predictor case's low-res
//! logits and IoU from the reference's transformed prompts, on the CPU and wgpu backends.

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use common::*;
use sam_core::modeling::image_encoder::ImageEncoderViT;
use sam_core::modeling::prompt_encoder::{LABEL_BOX_BOTTOM_RIGHT, LABEL_BOX_TOP_LEFT, LABEL_PAD};
use sam_core::weights::WeightLoader;
use sam_core::{ModelType, Sam};
use serde_json::Value;

const TAG: &str = "tiny_seed0";

fn load(device: &Device, file: &str) -> Sam {
    Sam::from_bytes(&read(file), None, device).expect("tiny checkpoint loads")
}

fn check(name: &str, err: f32, tol: f32) {
    println!("{name}: max abs err {err:.3e} (tol {tol:.1e})");
    assert!(err <= tol, "{name}: max abs err {err:e} > {tol:e}");
}

/// The sparse prompt of a predictor case, as the official predictor builds it: points, then a
/// (0,0)/-1 pad point when there is no box, then the box corners labelled 2 and 3.
fn sparse_prompt(case: &Value) -> (Vec<[f32; 2]>, Vec<i32>) {
    let mut pts = Vec::new();
    let mut labels = Vec::new();
    if let Some(coords) = case["transformed"]["point_coords"].as_array() {
        for (p, l) in coords
            .iter()
            .zip(case["inputs"]["point_labels"].as_array().unwrap())
        {
            pts.push([p[0].as_f64().unwrap() as f32, p[1].as_f64().unwrap() as f32]);
            labels.push(l.as_i64().unwrap() as i32);
        }
    }
    match case["transformed"]["box"].as_array() {
        Some(b) => {
            let b: Vec<f32> = b[0]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            pts.push([b[0], b[1]]);
            pts.push([b[2], b[3]]);
            labels.extend([LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT]);
        }
        None => {
            pts.push([0.0, 0.0]);
            labels.push(LABEL_PAD);
        }
    }
    (pts, labels)
}

fn run_reference(device_name: &str, device: &Device) {
    let manifest = manifest(TAG);
    let refs = RefFile::open(&format!("{TAG}_ref.safetensors"));
    let pre = RefFile::open("preprocess.safetensors");
    let sam = load(device, &format!("{TAG}.pth"));
    assert!(matches!(sam.model_type, ModelType::CustomViT(_)));
    let emb_tol = tolerance(&manifest, "embedding_atol");
    let low_tol = tolerance(&manifest, "low_res_logits_atol");
    let iou_tol = tolerance(&manifest, "iou_atol");

    check(
        &format!("{device_name} image_pe"),
        max_abs_diff(sam.image_pe(), refs.get("image_pe"), "image_pe"),
        emb_tol,
    );

    let mut embeddings = std::collections::HashMap::new();
    for image in ["landscape", "portrait", "tiny"] {
        let input: Tensor<4> = pre.get(&format!("input/{image}")).to_device(device);
        let emb = sam.embed(input).unwrap();
        check(
            &format!("{device_name} embed/{image}"),
            max_abs_diff(emb.clone(), refs.get(&format!("embed/{image}")), image),
            emb_tol,
        );
        embeddings.insert(image.to_string(), emb);
    }

    for case in manifest["predictor_cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let image = case["image"].as_str().unwrap();
        let multimask = case["inputs"]["multimask_output"].as_bool().unwrap();
        let (pts, labels) = sparse_prompt(case);
        let n = pts.len();
        let coords = Tensor::<3>::from_data(
            TensorData::new(pts.into_iter().flatten().collect::<Vec<_>>(), [1, n, 2]),
            device,
        );
        let sparse = sam.prompt_encoder.embed_points(coords, &[labels]).unwrap();
        check(
            &format!("{device_name} {name} sparse"),
            max_abs_diff(
                sparse.clone(),
                refs.get(&format!("pred/{name}/sparse_embeddings")),
                "sparse",
            ),
            emb_tol,
        );
        let dense = match case["inputs"]["mask_input"]["key"].as_str() {
            Some(key) => {
                let m = refs.get(key);
                let m = RefTensor {
                    shape: vec![1, 1, 256, 256],
                    data: m.data.clone(),
                };
                sam.prompt_encoder.embed_masks(m.to_device(device))
            }
            None => sam.prompt_encoder.no_mask_dense(1),
        };
        let out = sam
            .decode(embeddings[image].clone(), sparse, dense)
            .unwrap();
        let (low_res, iou) = out.select(multimask);
        check(
            &format!("{device_name} {name} low_res_masks"),
            max_abs_diff(
                low_res,
                refs.get(&format!("pred/{name}/low_res_masks")),
                "low_res",
            ),
            low_tol,
        );
        check(
            &format!("{device_name} {name} iou"),
            max_abs_diff(
                iou,
                refs.get(&format!("pred/{name}/iou_predictions")),
                "iou",
            ),
            iou_tol,
        );
    }
}

#[test]
fn tiny_reference_cases_on_every_device() {
    for (name, device) in devices() {
        run_reference(name, &device);
    }
}

#[test]
fn encoder_intermediates_match() {
    let manifest = manifest(TAG);
    let refs = RefFile::open(&format!("{TAG}_ref.safetensors"));
    let pre = RefFile::open("preprocess.safetensors");
    let device = Device::flex();
    let bytes = read(&format!("{TAG}.pth"));
    let ckpt = sam_core::checkpoint::Checkpoint::from_bytes(&bytes).unwrap();
    let config = ModelType::detect(&ckpt).unwrap().vit_config().unwrap();
    assert_eq!(
        (config.embed_dim, config.depth, config.num_heads),
        (64, 2, 2)
    );
    assert_eq!(config.global_attn_indexes, vec![1]);
    assert_eq!(config.window_size, 14);
    let w = WeightLoader::new(&ckpt, &device);
    let encoder = ImageEncoderViT::new(&w.pb("image_encoder"), &config).unwrap();
    let tol = tolerance(&manifest, "embedding_atol");
    let input: Tensor<4> = pre.get("input/landscape").to_device(&device);
    let x = encoder.patch_embed(input);
    check(
        "patch_embed",
        max_abs_diff(x.clone(), refs.get("inter/patch_embed"), "patch_embed"),
        tol,
    );
    let x = encoder.block(0, encoder.add_pos_embed(x));
    check(
        "block0",
        max_abs_diff(x.clone(), refs.get("inter/block0"), "block0"),
        tol,
    );
    let x = encoder.block(1, x);
    check(
        "block1",
        max_abs_diff(x.clone(), refs.get("inter/block1"), "block1"),
        tol,
    );
}

#[test]
fn safetensors_and_pth_give_the_same_model() {
    let device = Device::flex();
    let pre = RefFile::open("preprocess.safetensors");
    let a = load(&device, &format!("{TAG}.pth"));
    let b = load(&device, &format!("{TAG}.safetensors"));
    let input: Tensor<4> = pre.get("input/tiny").to_device(&device);
    let ea = to_vec(a.embed(input.clone()).unwrap()).1;
    let eb = to_vec(b.embed(input).unwrap()).1;
    assert_eq!(ea, eb);
}
