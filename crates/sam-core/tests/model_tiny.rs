//! Parity of the model with the official implementation on the kit's ViT test model (`tiny`
//! config, any seed: `common::tiny_tag`):
//! image embeddings, encoder intermediates, `image_pe`, and every predictor case's low-res
//! logits and IoU from the reference's transformed prompts, on the CPU and wgpu backends.

mod common;

use burn::tensor::{Device, Tensor};
use common::*;
use sam_core::modeling::sam::ImageEncoder;
use sam_core::{ModelType, Sam};

fn load(device: &Device, file: &str) -> Sam {
    Sam::from_bytes(&read(file), None, device).expect("tiny checkpoint loads")
}

fn run_reference(device_name: &str, device: &Device) {
    let tag = tiny_tag();
    let manifest = manifest(&tag);
    let refs = RefFile::open(&format!("{tag}_ref.safetensors"));
    let pre = RefFile::open("preprocess.safetensors");
    let sam = load(device, &format!("{tag}.pth"));
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
    let tag = tiny_tag();
    let manifest = manifest(&tag);
    let refs = RefFile::open(&format!("{tag}_ref.safetensors"));
    let pre = RefFile::open("preprocess.safetensors");
    let device = Device::flex();
    let bytes = read(&format!("{tag}.pth"));
    let ckpt = sam_core::io::checkpoint::Checkpoint::from_bytes(&bytes).unwrap();
    let config = ModelType::detect(&ckpt).unwrap().vit_config().unwrap();
    let arch = &manifest["architecture"];
    let n = |k: &str| {
        arch[k]
            .as_u64()
            .unwrap_or_else(|| panic!("architecture.{k}")) as usize
    };
    assert_eq!(
        (config.embed_dim, config.depth, config.num_heads),
        (
            n("encoder_embed_dim"),
            n("encoder_depth"),
            n("encoder_num_heads")
        )
    );
    let global: Vec<usize> = arch["encoder_global_attn_indexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(config.global_attn_indexes, global);
    assert_eq!(config.window_size, n("window_size"));
    let sam = Sam::from_bytes(&bytes, None, &device).unwrap();
    let ImageEncoder::ViT(encoder) = &sam.image_encoder else {
        panic!("the tiny checkpoint loaded with a TinyViT encoder")
    };
    assert_eq!(encoder.config(), &config);
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
    let tag = tiny_tag();
    let a = load(&device, &format!("{tag}.pth"));
    let b = load(&device, &format!("{tag}.safetensors"));
    let input: Tensor<4> = pre.get("input/tiny").to_device(&device);
    let ea = to_vec(a.embed(input.clone()).unwrap()).1;
    let eb = to_vec(b.embed(input).unwrap()).1;
    assert_eq!(ea, eb);
}
