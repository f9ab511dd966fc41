//! Random-weight checkpoints in the official format, for tests and benchmarks (no PyTorch).
//!
//! [`official_tensors`] lists the state-dict keys, shapes and dtypes of an official checkpoint
//! of any [`ModelType`] in `state_dict()` order (`sam_vit_h_4b8939.pth`, `sam_vit_l_0b3195.pth`,
//! `sam_vit_b_01ec64.pth`, `mobile_sam.pt`, or a custom ViT such as the reference kit's
//! `tiny`). [`write_checkpoint`] writes them as a torch `.pth` (see
//! [`checkpoint::writer`](crate::io::checkpoint::writer)) with values drawn deterministically
//! from a seed: the same model type and seed always give the same bytes.
//!
//! The values follow the reference kit's initialisation rules (`make_reference.py`'s
//! `INIT_RULES`: fan-in scaled weights, norms near 1, the mask decoder's output calibration
//! that gives masks with a negative background like a trained SAM), drawn from this module's
//! own generator rather than torch's, so the files equal the kit's in keys, shapes and value
//! statistics, not in values. The generator is a SplitMix64 stream per tensor (seeded from
//! the seed and the key) with Box-Muller normals: written here, not taken from a crate, so
//! that a fixture's bytes never change with a dependency's version.

use std::io::{Seek, Write};

use crate::ModelType;
use crate::io::checkpoint::StoredDType;
use crate::io::checkpoint::writer::{TensorSpec, WriteError, write_pth};
use crate::modeling::image_encoder::ViTConfig;
use crate::modeling::tiny_vit::TinyViTConfig;

/// How a tensor's values are drawn (the kit's rule for its module and attribute).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Init {
    /// `N(0,1) / sqrt(fan_in)` (Linear, Conv2d weights).
    FanIn(usize),
    /// `(a + 0.1 N(0,1)) / sqrt(fan_in)`, `a ~ N(0,1)` of shape `(in, out, 1, 1)` shared by
    /// the taps (ConvTranspose2d weights).
    Transposed(usize),
    /// `scale * N(0,1) + shift` (biases, norms, embeddings, rel-pos tables...).
    Normal { scale: f32, shift: f32 },
    /// `0.75 + 0.5 U(0,1)` (BatchNorm running variance).
    RunningVar,
    /// Zero (int64 `num_batches_tracked`).
    Zero,
}

const BIAS: Init = Init::Normal {
    scale: 0.05,
    shift: 0.0,
};
const NORM_WEIGHT: Init = Init::Normal {
    scale: 0.1,
    shift: 1.0,
};
const NORM_BIAS: Init = Init::Normal {
    scale: 0.1,
    shift: 0.0,
};
const UNIT: Init = Init::Normal {
    scale: 1.0,
    shift: 0.0,
};

/// A tensor of a fixture: its spec and how its values are drawn.
#[derive(Clone, Debug)]
pub struct FixtureTensor {
    /// Key, shape and dtype.
    pub spec: TensorSpec,
    init: Init,
}

/// The tensors of a state dict, built in module order.
#[derive(Default)]
struct Dict(Vec<FixtureTensor>);

impl Dict {
    fn push(&mut self, key: String, shape: &[usize], dtype: StoredDType, init: Init) {
        let spec = TensorSpec {
            key,
            shape: shape.to_vec(),
            dtype,
        };
        self.0.push(FixtureTensor { spec, init });
    }
    fn f32(&mut self, key: String, shape: &[usize], init: Init) {
        self.push(key, shape, StoredDType::F32, init);
    }
    /// `nn.Linear(inp, out)`.
    fn linear(&mut self, p: &str, inp: usize, out: usize) {
        self.f32(format!("{p}.weight"), &[out, inp], Init::FanIn(inp));
        self.f32(format!("{p}.bias"), &[out], BIAS);
    }
    /// `nn.LayerNorm(d)` / `LayerNorm2d(d)`.
    fn norm(&mut self, p: &str, d: usize) {
        self.f32(format!("{p}.weight"), &[d], NORM_WEIGHT);
        self.f32(format!("{p}.bias"), &[d], NORM_BIAS);
    }
    /// `nn.Conv2d(inp, out, k, groups=groups)`, with or without bias.
    fn conv(&mut self, p: &str, inp: usize, out: usize, k: usize, groups: usize, bias: bool) {
        let per_group = inp / groups;
        let fan_in = per_group * k * k;
        self.f32(
            format!("{p}.weight"),
            &[out, per_group, k, k],
            Init::FanIn(fan_in),
        );
        if bias {
            self.f32(format!("{p}.bias"), &[out], BIAS);
        }
    }
    /// `nn.ConvTranspose2d(inp, out, 2, stride=2)`.
    fn conv_transpose2(&mut self, p: &str, inp: usize, out: usize) {
        self.f32(
            format!("{p}.weight"),
            &[inp, out, 2, 2],
            Init::Transposed(inp),
        );
        self.f32(format!("{p}.bias"), &[out], BIAS);
    }
    /// `nn.BatchNorm2d(d)`.
    fn batch_norm(&mut self, p: &str, d: usize) {
        self.norm(p, d);
        self.f32(
            format!("{p}.running_mean"),
            &[d],
            Init::Normal {
                scale: 0.1,
                shift: 0.0,
            },
        );
        self.f32(format!("{p}.running_var"), &[d], Init::RunningVar);
        self.push(
            format!("{p}.num_batches_tracked"),
            &[],
            StoredDType::I64,
            Init::Zero,
        );
    }
    /// TinyViT's `Conv2d_BN(inp, out, k, groups=groups)`.
    fn conv_bn(&mut self, p: &str, inp: usize, out: usize, k: usize, groups: usize) {
        self.conv(&format!("{p}.c"), inp, out, k, groups, false);
        self.batch_norm(&format!("{p}.bn"), out);
    }
    /// `nn.Embedding(n, d)`.
    fn embedding(&mut self, p: &str, n: usize, d: usize) {
        self.f32(format!("{p}.weight"), &[n, d], UNIT);
    }
}

/// The official keys, shapes and dtypes of a `model` checkpoint, in `state_dict()` order,
/// with how the fixture draws each.
pub fn official_tensors(model: &ModelType) -> Vec<FixtureTensor> {
    let mut d = Dict::default();
    match model.vit_config() {
        Some(c) => vit_encoder(&mut d, "image_encoder", &c),
        None => tiny_vit_encoder(&mut d, "image_encoder", &TinyViTConfig::mobile_sam()),
    }
    prompt_encoder(&mut d, "prompt_encoder");
    mask_decoder(&mut d, "mask_decoder");
    d.0
}

/// `ImageEncoderViT` (`segment_anything/modeling/image_encoder.py`).
fn vit_encoder(d: &mut Dict, p: &str, c: &ViTConfig) {
    let (dim, grid) = (c.embed_dim, c.img_size / c.patch_size);
    d.f32(
        format!("{p}.pos_embed"),
        &[1, grid, grid, dim],
        Init::Normal {
            scale: 0.2,
            shift: 0.0,
        },
    );
    d.conv(
        &format!("{p}.patch_embed.proj"),
        3,
        dim,
        c.patch_size,
        1,
        true,
    );
    let head_dim = dim / c.num_heads;
    for i in 0..c.depth {
        let b = format!("{p}.blocks.{i}");
        d.norm(&format!("{b}.norm1"), dim);
        let size = if c.global_attn_indexes.contains(&i) {
            grid
        } else {
            c.window_size
        };
        for axis in ["h", "w"] {
            d.f32(
                format!("{b}.attn.rel_pos_{axis}"),
                &[2 * size - 1, head_dim],
                Init::Normal {
                    scale: 0.1,
                    shift: 0.0,
                },
            );
        }
        d.linear(&format!("{b}.attn.qkv"), dim, 3 * dim);
        d.linear(&format!("{b}.attn.proj"), dim, dim);
        d.norm(&format!("{b}.norm2"), dim);
        d.linear(&format!("{b}.mlp.lin1"), dim, dim * c.mlp_ratio);
        d.linear(&format!("{b}.mlp.lin2"), dim * c.mlp_ratio, dim);
    }
    neck(d, p, dim, c.out_chans);
}

/// The encoders' neck: conv 1x1, LayerNorm2d, conv 3x3, LayerNorm2d.
fn neck(d: &mut Dict, p: &str, dim: usize, out: usize) {
    d.conv(&format!("{p}.neck.0"), dim, out, 1, 1, false);
    d.norm(&format!("{p}.neck.1"), out);
    d.conv(&format!("{p}.neck.2"), out, out, 3, 1, false);
    d.norm(&format!("{p}.neck.3"), out);
}

/// MobileSAM's `TinyViT` (`mobile_sam/modeling/tiny_vit_sam.py`).
fn tiny_vit_encoder(d: &mut Dict, p: &str, c: &TinyViTConfig) {
    let e = &c.embed_dims;
    d.conv_bn(&format!("{p}.patch_embed.seq.0"), 3, e[0] / 2, 3, 1);
    d.conv_bn(&format!("{p}.patch_embed.seq.2"), e[0] / 2, e[0], 3, 1);
    for (i, &dim) in e.iter().enumerate() {
        let l = format!("{p}.layers.{i}");
        for j in 0..c.depths[i] {
            let b = format!("{l}.blocks.{j}");
            if i == 0 {
                // MBConv
                let hidden = dim * c.mbconv_expand_ratio;
                d.conv_bn(&format!("{b}.conv1"), dim, hidden, 1, 1);
                d.conv_bn(&format!("{b}.conv2"), hidden, hidden, 3, hidden);
                d.conv_bn(&format!("{b}.conv3"), hidden, dim, 1, 1);
            } else {
                let (heads, ws) = (c.num_heads[i], c.window_sizes[i]);
                d.f32(
                    format!("{b}.attn.attention_biases"),
                    &[heads, ws * ws],
                    Init::Normal {
                        scale: 0.3,
                        shift: 0.0,
                    },
                );
                d.norm(&format!("{b}.attn.norm"), dim);
                d.linear(&format!("{b}.attn.qkv"), dim, 3 * dim);
                d.linear(&format!("{b}.attn.proj"), dim, dim);
                d.norm(&format!("{b}.mlp.norm"), dim);
                d.linear(&format!("{b}.mlp.fc1"), dim, dim * c.mlp_ratio);
                d.linear(&format!("{b}.mlp.fc2"), dim * c.mlp_ratio, dim);
                let k = c.local_conv_size;
                d.conv_bn(&format!("{b}.local_conv"), dim, dim, k, dim);
            }
        }
        if let Some(&out) = e.get(i + 1) {
            let m = format!("{l}.downsample");
            d.conv_bn(&format!("{m}.conv1"), dim, out, 1, 1);
            d.conv_bn(&format!("{m}.conv2"), out, out, 3, out);
            d.conv_bn(&format!("{m}.conv3"), out, out, 1, 1);
        }
    }
    let last = e[e.len() - 1];
    d.norm(&format!("{p}.norm_head"), last);
    d.linear(&format!("{p}.head"), last, 1000);
    neck(d, p, last, c.out_chans);
}

/// `PromptEncoder` (embed_dim 256, mask_in_chans 16).
fn prompt_encoder(d: &mut Dict, p: &str) {
    d.f32(
        format!("{p}.pe_layer.positional_encoding_gaussian_matrix"),
        &[2, 128],
        UNIT,
    );
    for i in 0..4 {
        d.embedding(&format!("{p}.point_embeddings.{i}"), 1, 256);
    }
    d.embedding(&format!("{p}.not_a_point_embed"), 1, 256);
    let m = format!("{p}.mask_downscaling");
    d.conv(&format!("{m}.0"), 1, 4, 2, 1, true);
    d.norm(&format!("{m}.1"), 4);
    d.conv(&format!("{m}.3"), 4, 16, 2, 1, true);
    d.norm(&format!("{m}.4"), 16);
    d.conv(&format!("{m}.6"), 16, 256, 1, 1, true);
    d.embedding(&format!("{p}.no_mask_embed"), 1, 256);
}

/// `MaskDecoder` with its `TwoWayTransformer` (depth 2, width 256, MLP 2048, 8 heads,
/// cross-attention downsampled to 128).
fn mask_decoder(d: &mut Dict, p: &str) {
    let attention = |d: &mut Dict, a: &str, internal: usize| {
        d.linear(&format!("{a}.q_proj"), 256, internal);
        d.linear(&format!("{a}.k_proj"), 256, internal);
        d.linear(&format!("{a}.v_proj"), 256, internal);
        d.linear(&format!("{a}.out_proj"), internal, 256);
    };
    let t = format!("{p}.transformer");
    for i in 0..2 {
        let l = format!("{t}.layers.{i}");
        attention(d, &format!("{l}.self_attn"), 256);
        d.norm(&format!("{l}.norm1"), 256);
        attention(d, &format!("{l}.cross_attn_token_to_image"), 128);
        d.norm(&format!("{l}.norm2"), 256);
        d.linear(&format!("{l}.mlp.lin1"), 256, 2048);
        d.linear(&format!("{l}.mlp.lin2"), 2048, 256);
        d.norm(&format!("{l}.norm3"), 256);
        d.norm(&format!("{l}.norm4"), 256);
        attention(d, &format!("{l}.cross_attn_image_to_token"), 128);
    }
    attention(d, &format!("{t}.final_attn_token_to_image"), 128);
    d.norm(&format!("{t}.norm_final_attn"), 256);
    d.embedding(&format!("{p}.iou_token"), 1, 256);
    d.embedding(&format!("{p}.mask_tokens"), 4, 256);
    d.conv_transpose2(&format!("{p}.output_upscaling.0"), 256, 64);
    d.norm(&format!("{p}.output_upscaling.1"), 64);
    d.conv_transpose2(&format!("{p}.output_upscaling.3"), 64, 32);
    for i in 0..4 {
        let m = format!("{p}.output_hypernetworks_mlps.{i}.layers");
        d.linear(&format!("{m}.0"), 256, 256);
        d.linear(&format!("{m}.1"), 256, 256);
        d.linear(&format!("{m}.2"), 256, 32);
    }
    let h = format!("{p}.iou_prediction_head.layers");
    d.linear(&format!("{h}.0"), 256, 256);
    d.linear(&format!("{h}.1"), 256, 256);
    d.linear(&format!("{h}.2"), 256, 4);
}

/// A SplitMix64 stream.
struct SplitMix64(u64);

impl SplitMix64 {
    /// The stream of tensor `key` under `seed` (FNV-1a of the key mixed with the seed).
    fn for_key(seed: u64, key: &str) -> Self {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in key.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self(h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` (53 bits).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `n` standard normal values (Box-Muller, both outputs used).
    fn normals(&mut self, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let u1 = 1.0 - self.uniform(); // (0, 1]
            let u2 = self.uniform();
            let r = (-2.0 * u1.ln()).sqrt();
            let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
            out.push((r * c) as f32);
            out.push((r * s) as f32);
        }
        out.truncate(n);
        out
    }
}

/// The values of one fixture tensor (f32 tensors; `Zero` gives zeros).
fn values(t: &FixtureTensor, seed: u64) -> Vec<f32> {
    let (key, shape, n) = (&t.spec.key, &t.spec.shape, t.spec.numel());
    let mut rng = SplitMix64::for_key(seed, key);
    let mut v = match t.init {
        Init::FanIn(fan_in) => {
            let k = 1.0 / (fan_in as f32).sqrt();
            rng.normals(n).into_iter().map(|x| x * k).collect()
        }
        Init::Transposed(fan_in) => {
            // [in, out, kh, kw]: one shared value per (in, out), plus 0.1 x per-tap noise.
            let taps = shape[2] * shape[3];
            let shared = SplitMix64::for_key(seed, &format!("{key}#shared")).normals(n / taps);
            let k = 1.0 / (fan_in as f32).sqrt();
            rng.normals(n)
                .into_iter()
                .enumerate()
                .map(|(i, x)| (shared[i / taps] + 0.1 * x) * k)
                .collect()
        }
        Init::Normal { scale, shift } => rng
            .normals(n)
            .into_iter()
            .map(|x| shift + scale * x)
            .collect(),
        Init::RunningVar => (0..n)
            .map(|_| 0.75 + 0.5 * rng.uniform() as f32)
            .collect::<Vec<_>>(),
        Init::Zero => vec![0.0; n],
    };
    calibrate(key, shape, &mut v);
    v
}

/// The kit's mask decoder output calibration: mask logits of about +-30 with a negative
/// background, IoU predictions around 0.5 (see `make_reference.py`'s `INIT_RULES`).
fn calibrate(key: &str, shape: &[usize], v: &mut [f32]) {
    let hyper = key.starts_with("mask_decoder.output_hypernetworks_mlps.");
    if hyper && key.ends_with(".layers.2.weight") {
        let row = shape[1];
        for (i, x) in v.iter_mut().enumerate() {
            *x *= if i < row { 1.2 } else { 12.0 };
        }
    } else if hyper && key.ends_with(".layers.2.bias") {
        v[0] -= 1.5;
    } else if key == "mask_decoder.output_upscaling.3.weight" {
        // [in, out, 2, 2]: output channel 0 x 0.1.
        let (out, taps) = (shape[1], shape[2] * shape[3]);
        for (i, x) in v.iter_mut().enumerate() {
            if (i / taps) % out == 0 {
                *x *= 0.1;
            }
        }
    } else if key == "mask_decoder.output_upscaling.3.bias" {
        v[0] += 3.0;
    } else if key == "mask_decoder.iou_prediction_head.layers.2.bias" {
        // 0.5 + 0.05 N(0,1) (the bias rule gave 0.05 N(0,1)).
        v.iter_mut().for_each(|x| *x += 0.5);
    }
}

/// Writes a random-weight checkpoint of `model` drawn from `seed` as a torch `.pth` whose
/// entries lie under `archive/` (torch names it after the file: `sam_vit_b_01ec64`).
/// Deterministic: the same arguments give the same bytes.
pub fn write_checkpoint<W: Write + Seek>(
    out: W,
    archive: &str,
    model: &ModelType,
    seed: u64,
) -> Result<W, WriteError> {
    let tensors = official_tensors(model);
    let specs: Vec<TensorSpec> = tensors.iter().map(|t| t.spec.clone()).collect();
    let id = u128::from(SplitMix64::for_key(seed, archive).next_u64());
    write_pth(out, archive, &specs, id, |i, spec, buf| {
        let t = &tensors[i];
        match spec.dtype {
            StoredDType::F32 => {
                buf.reserve(spec.byte_len());
                for x in values(t, seed) {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
            }
            StoredDType::I64 => buf.resize(spec.byte_len(), 0),
            other => {
                return Err(WriteError::Tensor {
                    key: spec.key.clone(),
                    what: format!("the fixture writes no {other} tensor"),
                });
            }
        }
        Ok(())
    })
}

/// [`write_checkpoint`] into memory.
pub fn checkpoint_bytes(
    model: &ModelType,
    seed: u64,
    archive: &str,
) -> Result<Vec<u8>, WriteError> {
    let out = write_checkpoint(std::io::Cursor::new(Vec::new()), archive, model, seed)?;
    Ok(out.into_inner())
}
