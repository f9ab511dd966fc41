//! The reference parity on the CPU backend with the host kernels off (burn's own operations
//! everywhere, `ops::set_host_kernels(false)`) and on, for the kit's two models (any seed):
//! image embeddings, `image_pe` and every predictor case's low-res logits and IoU within the
//! manifest's tolerances either way; and the mask postprocessing's host resampling against
//! the official resizes.
//!
//! One test function: the switch is global to the process, so the settings run one after the
//! other.

mod common;

use std::collections::HashMap;

use burn::tensor::{Device, Tensor, TensorData};
use common::*;
use sam_core::Sam;
use sam_core::modeling::ops;
use sam_core::predictor::postprocess_masks;

fn parity(tag: &str, setting: &str) {
    let manifest = manifest(tag);
    let refs = RefFile::open(&format!("{tag}_ref.safetensors"));
    let pre = RefFile::open("preprocess.safetensors");
    let device = Device::flex();
    let sam = Sam::from_bytes(&read(&format!("{tag}.pth")), None, &device).unwrap();
    let emb_tol = tolerance(&manifest, "embedding_atol");
    let name = format!("flex {setting} {tag}");
    check(
        &format!("{name} image_pe"),
        max_abs_diff(sam.image_pe(), refs.get("image_pe"), "image_pe"),
        emb_tol,
    );
    let mut embeddings = HashMap::new();
    for image in ["landscape", "portrait", "tiny"] {
        let input: Tensor<4> = pre.get(&format!("input/{image}")).to_device(&device);
        let emb = sam.embed(input).unwrap();
        check(
            &format!("{name} embed/{image}"),
            max_abs_diff(emb.clone(), refs.get(&format!("embed/{image}")), image),
            emb_tol,
        );
        embeddings.insert(image.to_string(), emb);
    }
    check_predictor_cases(&sam, &manifest, &refs, &embeddings, &name, &device);
}

/// `postprocess_masks` of random logits with the host resampling (on) and the official
/// bilinear resizes (off), for a landscape, a portrait and a small original size.
fn postprocess_host_equals_official() {
    let device = Device::flex();
    let values: Vec<f32> = (0..3 * 256 * 256)
        .map(|i| ((i as u64 * 2_654_435_761 % 1_000_003) as f32 / 1_000_003.0 - 0.5) * 40.0)
        .collect();
    let low = Tensor::<4>::from_data(TensorData::new(values, [1, 3, 256, 256]), &device);
    for (input_size, original) in [
        ((768, 1024), (480, 640)),
        ((1024, 683), (1500, 1000)),
        ((1024, 1024), (7, 7)),
    ] {
        ops::set_host_kernels(true);
        let ours = to_vec(postprocess_masks(low.clone(), input_size, original));
        ops::set_host_kernels(false);
        let official = to_vec(postprocess_masks(low.clone(), input_size, original));
        assert_eq!(ours.0, official.0);
        let max = ours
            .1
            .iter()
            .zip(&official.1)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        // Logits up to 20 in magnitude, the same linear map summed in another order.
        assert!(max < 1e-4, "{original:?}: max |host - official| = {max}");
    }
    ops::set_host_kernels(true);
}

#[test]
fn reference_parity_with_host_kernels_off_and_on() {
    postprocess_host_equals_official();
    for tag in model_tags() {
        for (on, setting) in [(false, "burn ops"), (true, "host kernels")] {
            ops::set_host_kernels(on);
            assert_eq!(ops::host_kernels(), on);
            parity(&tag, setting);
        }
    }
    ops::set_host_kernels(true);
}
