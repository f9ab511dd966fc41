//! Parity of the model with the official implementation on the `tiny_seed0` reference kit:
//! image embeddings, encoder intermediates, `image_pe`, and every predictor case's low-res
//! logits and IoU from the reference's transformed prompts, on the CPU and wgpu backends.

mod common;

use burn::tensor::{Device, Tensor};
use common::*;
use sam_core::modeling::image_encoder::ImageEncoderViT;
use sam_core::weights::WeightLoader;
use sam_core::{ModelType, Sam};

const TAG: &str = "tiny_seed0";

fn load(device: &Device, file: &str) -> Sam {
    Sam::from_bytes(&read(file), None, device).expect("tiny checkpoint loads")
}

fn run_reference(device_name: &str, device: &Device) {
    let manifest = manifest(TAG);
    let refs = RefFile::open(&format!("{TAG}_ref.safetensors"));
    let pre = RefFile::open("preprocess.safetensors");
    let sam = load(device, &format!("{TAG}.pth"));
    assert!(matches!(sam.model_type, ModelType::CustomViT(_)));
    let emb_tol = tolerance(&manifest, "embedding_atol");

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

    check_predictor_cases(&sam, &manifest, &refs, &embeddings, device_name, device);
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
