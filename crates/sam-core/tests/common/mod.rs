//! Shared helpers of the reference-parity tests: the `../shared/reference` kit, devices, and
//! error measures. The reference tensors are read with the `safetensors` crate directly, not
//! through the code under test.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

/// `$SAM_REFERENCE_DIR`, else `shared/reference` beside the repository.
pub fn reference_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SAM_REFERENCE_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference")
}

pub fn read(name: &str) -> Vec<u8> {
    let path = reference_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn manifest(tag: &str) -> Value {
    serde_json::from_slice(&read(&format!("{tag}_manifest.json"))).unwrap()
}

/// A reference tensor, as f32 (bool tensors as 0/1).
#[derive(Clone, Debug)]
pub struct RefTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl RefTensor {
    pub fn to_device<const D: usize>(&self, device: &Device) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }
}

/// All tensors of a reference safetensors file.
pub struct RefFile(HashMap<String, RefTensor>);

impl RefFile {
    pub fn open(name: &str) -> Self {
        let bytes = read(name);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut map = HashMap::new();
        for (key, view) in st.tensors() {
            let raw = view.data();
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Dtype::BOOL | Dtype::U8 => raw.iter().map(|&b| b as f32).collect(),
                Dtype::I64 => raw
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
                    .collect(),
                other => panic!("{key}: unexpected dtype {other:?}"),
            };
            map.insert(
                key.to_string(),
                RefTensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Self(map)
    }

    pub fn get(&self, key: &str) -> &RefTensor {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("reference tensor {key} missing"))
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
}

/// The devices parity tests run on: burn's CPU backend (`flex`) and wgpu (Mesa lavapipe on
/// CI machines). `SAM_SKIP_WGPU=1` leaves wgpu out on a machine with no Vulkan driver.
pub fn devices() -> Vec<(&'static str, Device)> {
    let mut out = vec![("flex", Device::flex())];
    if std::env::var("SAM_SKIP_WGPU").is_err() {
        out.push(("wgpu", wgpu_device()));
    }
    out
}

pub fn wgpu_device() -> Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            Device::wgpu_options()
                .init()
                .expect("no wgpu adapter: install mesa-vulkan-drivers or set SAM_SKIP_WGPU=1")
        })
        .clone()
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let data = t.into_data();
    let shape = data.shape().to_vec();
    (shape, data.try_to_vec::<f32>().unwrap())
}

/// Max |a - b|, checking shapes agree.
pub fn max_abs_diff<const D: usize>(ours: Tensor<D>, reference: &RefTensor, what: &str) -> f32 {
    let (shape, data) = to_vec(ours);
    let ref_numel: usize = reference.shape.iter().product();
    assert_eq!(
        data.len(),
        ref_numel,
        "{what}: shape {shape:?} vs reference {:?}",
        reference.shape
    );
    data.iter()
        .zip(&reference.data)
        .map(|(a, b)| {
            if a.is_nan() || b.is_nan() {
                f32::INFINITY
            } else {
                (a - b).abs()
            }
        })
        .fold(0.0, f32::max)
}

/// The manifest's suggested tolerance `name` (e.g. `embedding_atol`).
pub fn tolerance(manifest: &Value, name: &str) -> f32 {
    manifest["tolerances"]["suggested"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no tolerance {name}")) as f32
}
