//! The ViT image encoder of SAM (official `modeling/image_encoder.py`): patch embedding,
//! absolute position embedding, windowed and global attention blocks with decomposed
//! relative positions, and the neck. `[1, 3, 1024, 1024]` → `[1, 256, 64, 64]`.

use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Int, Tensor, TensorData};

use super::common::{Activation, Conv2d, Conv2dSpec, LayerNorm, LayerNorm2d, Linear, MlpBlock};
use super::ops::{
    self, QkvLayout, WindowAttentionSpec, WindowBias, matmul, matmul_t, softmax_last,
};
use crate::error::{Result, SamError};
use crate::io::checkpoint::Checkpoint;
use crate::preprocess::IMG_SIZE;
use crate::weights::{KeyShapes, WeightLoader};

/// Hyper-parameters of [`ImageEncoderViT`] (the official constructor's arguments).
#[derive(Clone, Debug, PartialEq)]
pub struct ViTConfig {
    pub img_size: usize,
    pub patch_size: usize,
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_ratio: usize,
    pub out_chans: usize,
    pub window_size: usize,
    pub global_attn_indexes: Vec<usize>,
}

impl ViTConfig {
    fn sam(embed_dim: usize, depth: usize, num_heads: usize, global: [usize; 4]) -> Self {
        Self {
            img_size: 1024,
            patch_size: 16,
            embed_dim,
            depth,
            num_heads,
            mlp_ratio: 4,
            out_chans: 256,
            window_size: 14,
            global_attn_indexes: global.to_vec(),
        }
    }
    /// `sam_vit_h`: 1280 wide, 32 blocks, 16 heads.
    pub fn vit_h() -> Self {
        Self::sam(1280, 32, 16, [7, 15, 23, 31])
    }
    /// `sam_vit_l`: 1024 wide, 24 blocks, 16 heads.
    pub fn vit_l() -> Self {
        Self::sam(1024, 24, 16, [5, 11, 17, 23])
    }
    /// `sam_vit_b`: 768 wide, 12 blocks, 12 heads.
    pub fn vit_b() -> Self {
        Self::sam(768, 12, 12, [2, 5, 8, 11])
    }

    /// Reads the configuration off the checkpoint's shapes: width from the patch embedding,
    /// depth from the block count, head dim and window size from the rel-pos tables.
    /// `ckpt` keys are read under `prefix` (e.g. `image_encoder.`). Every shape read is
    /// checked (rank, non-zero sizes, consistency between blocks) and the result goes through
    /// [`ViTConfig::validate`]: a checkpoint whose encoder this code cannot run is a
    /// [`SamError::ModelType`], never a panic later.
    pub fn detect(ckpt: &Checkpoint, prefix: &str) -> Result<Self> {
        let w = KeyShapes { ckpt, prefix };
        let bad =
            |what: String| SamError::ModelType(format!("not a SAM ViT image encoder: {what}"));
        let shape = |name: &str| w.shape(name).ok_or_else(|| bad(format!("no {name}")));
        let pe = shape("patch_embed.proj.weight")?;
        let pos = shape("pos_embed")?;
        let (embed_dim, patch_size, grid) = match (pe.as_slice(), pos.as_slice()) {
            (&[e, 3, p, q], &[1, g, g2, e2]) if p == q && g == g2 && e == e2 && e > 0 && p > 0 => {
                (e, p, g)
            }
            _ => {
                return Err(bad(format!(
                    "patch_embed.proj.weight {pe:?} and pos_embed {pos:?} are not \
                     [C, 3, P, P] and [1, G, G, C] with C, P > 0"
                )));
            }
        };
        let img_size = grid
            .checked_mul(patch_size)
            .ok_or_else(|| bad(format!("image size {grid} x {patch_size} overflows")))?;
        let mut depth = 0;
        while w.contains(&format!("blocks.{depth}.norm1.weight")) {
            depth += 1;
            if depth > MAX_ENCODER_DEPTH {
                return Err(bad(format!("more than {MAX_ENCODER_DEPTH} blocks")));
            }
        }
        if depth == 0 {
            return Err(bad("no blocks".into()));
        }
        // A table of length `2 * grid - 1` is a global block's; the others are windowed.
        let global_len = (2 * grid).saturating_sub(1);
        let mut window_size = None;
        let mut global = Vec::new();
        let mut head_dim = None;
        for i in 0..depth {
            let name = format!("blocks.{i}.attn.rel_pos_h");
            let rp = w
                .shape(&name)
                .ok_or_else(|| bad(format!("no {name} (use_rel_pos=False is not supported)")))?;
            let &[len, hd] = rp.as_slice() else {
                return Err(bad(format!(
                    "{name} has shape {rp:?}, not [2 * size - 1, head_dim]"
                )));
            };
            let rp_w = shape(&format!("blocks.{i}.attn.rel_pos_w"))?;
            if rp_w != rp {
                return Err(bad(format!(
                    "blocks.{i}: rel_pos_w {rp_w:?} differs from rel_pos_h {rp:?}"
                )));
            }
            if len == 0 || len % 2 == 0 || hd == 0 {
                return Err(bad(format!(
                    "{name} has shape {rp:?}: its length must be odd (2 * size - 1), its head dim > 0"
                )));
            }
            if *head_dim.get_or_insert(hd) != hd {
                return Err(bad(format!(
                    "blocks.{i}: head dim {hd} differs from block 0's"
                )));
            }
            if len == global_len {
                global.push(i);
            } else {
                let ws = len.div_ceil(2);
                if *window_size.get_or_insert(ws) != ws {
                    return Err(bad(format!(
                        "blocks.{i}: window size {ws} differs from an earlier block's"
                    )));
                }
            }
        }
        let head_dim = head_dim.unwrap_or(0);
        let out_chans = match shape("neck.0.weight")?.as_slice() {
            &[o, c, 1, 1] if c == embed_dim => o,
            s => {
                return Err(bad(format!(
                    "neck.0.weight has shape {s:?}, not [out_chans, {embed_dim}, 1, 1]"
                )));
            }
        };
        let mlp_dim = match shape("blocks.0.mlp.lin1.weight")?.as_slice() {
            &[m, c] if c == embed_dim => m,
            s => {
                return Err(bad(format!(
                    "blocks.0.mlp.lin1.weight has shape {s:?}, not [mlp_dim, {embed_dim}]"
                )));
            }
        };
        if !embed_dim.is_multiple_of(head_dim) || mlp_dim == 0 || !mlp_dim.is_multiple_of(embed_dim)
        {
            return Err(bad(format!(
                "inconsistent widths: embed_dim {embed_dim}, head dim {head_dim}, mlp_dim {mlp_dim}"
            )));
        }
        let config = Self {
            img_size,
            patch_size,
            embed_dim,
            depth,
            num_heads: embed_dim / head_dim,
            mlp_ratio: mlp_dim / embed_dim,
            out_chans,
            // Every block global: unused, any positive value runs.
            window_size: window_size.unwrap_or(grid),
            global_attn_indexes: global,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks that the configuration is one this encoder runs and whose output the rest of
    /// SAM takes: a [`IMG_SIZE`]-pixel input cut into a [`EMBED_GRID`] x [`EMBED_GRID`]
    /// grid, [`EMBED_CHANNELS`] output channels (the prompt encoder's and mask decoder's
    /// width), positive widths with heads dividing the width, a positive window, global
    /// block indexes inside the depth, and at most [`MAX_ENCODER_DEPTH`] blocks of at most
    /// [`MAX_ENCODER_WIDTH`] channels (MLP at most [`MAX_MLP_RATIO`] times wider).
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| {
            SamError::ModelType(format!("unsupported ViT image encoder {self:?}: {what}"))
        };
        check_sam_io(self.img_size, self.out_chans).map_err(bad)?;
        if self.patch_size == 0
            || self.img_size / self.patch_size != EMBED_GRID
            || !self.img_size.is_multiple_of(self.patch_size)
        {
            return Err(bad(format!(
                "patch size {} does not give SAM's {EMBED_GRID}x{EMBED_GRID} embedding grid",
                self.patch_size
            )));
        }
        if self.embed_dim == 0 || self.embed_dim > MAX_ENCODER_WIDTH {
            return Err(bad(format!("width must be in 1..={MAX_ENCODER_WIDTH}")));
        }
        if self.num_heads == 0 || !self.embed_dim.is_multiple_of(self.num_heads) {
            return Err(bad("the heads must divide the width".into()));
        }
        if self.mlp_ratio == 0 || self.mlp_ratio > MAX_MLP_RATIO {
            return Err(bad(format!("MLP ratio must be in 1..={MAX_MLP_RATIO}")));
        }
        if self.depth == 0 || self.depth > MAX_ENCODER_DEPTH {
            return Err(bad(format!("depth must be in 1..={MAX_ENCODER_DEPTH}")));
        }
        if self.window_size == 0 || self.window_size > EMBED_GRID {
            return Err(bad(format!("window size must be in 1..={EMBED_GRID}")));
        }
        if self.global_attn_indexes.iter().any(|&i| i >= self.depth) {
            return Err(bad("a global attention index is past the last block".into()));
        }
        Ok(())
    }
}

/// What every SAM image encoder (ViT or TinyViT) must take and give: a
/// [`IMG_SIZE`]-pixel input and [`EMBED_CHANNELS`] output channels. `Err` says which is off.
pub(crate) fn check_sam_io(img_size: usize, out_chans: usize) -> std::result::Result<(), String> {
    if img_size != IMG_SIZE {
        return Err(format!("image size {img_size}, SAM takes {IMG_SIZE}"));
    }
    if out_chans != EMBED_CHANNELS {
        return Err(format!(
            "{out_chans} output channels, SAM's prompt encoder and mask decoder take {EMBED_CHANNELS}"
        ));
    }
    Ok(())
}

/// Side of SAM's image embedding grid (`[1, 256, 64, 64]`): the ViT's `img_size / patch_size`.
pub const EMBED_GRID: usize = 64;
/// Channels of SAM's image embedding: the neck's `out_chans`, which the prompt encoder and
/// the mask decoder are built for.
pub const EMBED_CHANNELS: usize = 256;
/// The most transformer blocks a ViT image encoder may have (SAM's largest, ViT-H, has 32).
/// Enforced by [`ViTConfig::detect`] and [`ViTConfig::validate`].
pub const MAX_ENCODER_DEPTH: usize = 128;
/// The widest ViT image encoder accepted, in channels (ViT-H is 1280 wide). Enforced by
/// [`ViTConfig::validate`].
pub const MAX_ENCODER_WIDTH: usize = 8192;
/// The largest MLP ratio accepted (SAM's is 4). Enforced by [`ViTConfig::validate`].
pub const MAX_MLP_RATIO: usize = 16;

/// The official `ImageEncoderViT`.
#[derive(Clone, Debug)]
pub struct ImageEncoderViT {
    patch_embed: Conv2d,
    /// `[1, H/16, W/16, C]`, added in BHWC layout.
    pos_embed: Tensor<4>,
    blocks: Vec<Block>,
    neck_conv0: Conv2d,
    neck_norm1: LayerNorm2d,
    neck_conv2: Conv2d,
    neck_norm3: LayerNorm2d,
    config: ViTConfig,
}

impl ImageEncoderViT {
    /// Loads from `image_encoder.*` keys.
    pub fn new(w: &WeightLoader, c: &ViTConfig) -> Result<Self> {
        c.validate()?;
        let grid = c.img_size / c.patch_size;
        let patch_embed = Conv2d::new(
            &w.pb("patch_embed").pb("proj"),
            Conv2dSpec::new(3, c.embed_dim, c.patch_size).stride(c.patch_size),
        )?;
        let pos_embed = w.tensor("pos_embed", [1, grid, grid, c.embed_dim])?;
        let blocks = (0..c.depth)
            .map(|i| {
                let window = if c.global_attn_indexes.contains(&i) {
                    0
                } else {
                    c.window_size
                };
                Block::new(&w.pb("blocks").pb(i), c, window, grid)
            })
            .collect::<Result<Vec<_>>>()?;
        let neck = w.pb("neck");
        Ok(Self {
            patch_embed,
            pos_embed,
            blocks,
            neck_conv0: Conv2d::new(
                &neck.pb(0),
                Conv2dSpec::new(c.embed_dim, c.out_chans, 1).bias(false),
            )?,
            neck_norm1: LayerNorm2d::new(&neck.pb(1), c.out_chans)?,
            neck_conv2: Conv2d::new(
                &neck.pb(2),
                Conv2dSpec::new(c.out_chans, c.out_chans, 3)
                    .padding(1)
                    .bias(false),
            )?,
            neck_norm3: LayerNorm2d::new(&neck.pb(3), c.out_chans)?,
            config: c.clone(),
        })
    }

    pub fn config(&self) -> &ViTConfig {
        &self.config
    }

    /// The official `patch_embed` module: `[B, 3, 1024, 1024]` → `[B, 64, 64, C]` (BHWC).
    pub fn patch_embed(&self, x: Tensor<4>) -> Tensor<4> {
        self.patch_embed.forward(x).permute([0, 2, 3, 1])
    }

    /// Adds the absolute position embedding to patch embeddings `[B, 64, 64, C]`.
    pub fn add_pos_embed(&self, x: Tensor<4>) -> Tensor<4> {
        x + self.pos_embed.clone()
    }

    /// Runs block `i`: `[B, 64, 64, C]` → `[B, 64, 64, C]`.
    pub fn block(&self, i: usize, x: Tensor<4>) -> Tensor<4> {
        self.blocks[i].forward(x)
    }

    /// The neck: `[B, 64, 64, C]` → `[B, 256, 64, 64]`.
    pub fn neck(&self, x: Tensor<4>) -> Tensor<4> {
        let x = x.permute([0, 3, 1, 2]);
        let x = self.neck_norm1.forward(self.neck_conv0.forward(x));
        self.neck_norm3.forward(self.neck_conv2.forward(x))
    }

    /// `[B, 3, 1024, 1024]` → `[B, 256, 64, 64]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.add_pos_embed(self.patch_embed(x));
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.neck(x)
    }
}

/// A transformer block with windowed (window > 0) or global attention.
#[derive(Clone, Debug)]
struct Block {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    mlp: MlpBlock,
    window_size: usize,
}

impl Block {
    fn new(w: &WeightLoader, c: &ViTConfig, window_size: usize, grid: usize) -> Result<Self> {
        let size = if window_size > 0 { window_size } else { grid };
        Ok(Self {
            norm1: LayerNorm::new(&w.pb("norm1"), c.embed_dim, 1e-6)?,
            attn: Attention::new(&w.pb("attn"), c.embed_dim, c.num_heads, size)?,
            norm2: LayerNorm::new(&w.pb("norm2"), c.embed_dim, 1e-6)?,
            mlp: MlpBlock::new(
                &w.pb("mlp"),
                c.embed_dim,
                c.embed_dim * c.mlp_ratio,
                Activation::Gelu,
            )?,
            window_size,
        })
    }

    /// `[B, H, W, C]` → `[B, H, W, C]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = x.clone();
        let x = self.attn.forward(self.norm1.forward(x), self.window_size);
        let x = shortcut + x;
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }
}

/// Multi-head attention with decomposed relative position embeddings, over one window or
/// the whole grid (the official `Attention` with `use_rel_pos=True`).
#[derive(Clone, Debug)]
struct Attention {
    qkv: Linear,
    proj: Linear,
    num_heads: usize,
    scale: f64,
    /// `get_rel_pos(size, size, rel_pos_h)`: `[size, size, head_dim]`.
    rh: Tensor<3>,
    /// `get_rel_pos(size, size, rel_pos_w)`: `[size, size, head_dim]`.
    rw: Tensor<3>,
}

impl Attention {
    fn new(w: &WeightLoader, dim: usize, num_heads: usize, size: usize) -> Result<Self> {
        let head_dim = dim / num_heads;
        let table = |name: &str| -> Result<Tensor<3>> {
            let len = w
                .shape(name)
                .and_then(|s| s.first().copied())
                .unwrap_or(2 * size - 1);
            let rel_pos = w.tensor(name, [len, head_dim])?;
            Ok(get_rel_pos(size, size, rel_pos))
        };
        Ok(Self {
            qkv: Linear::new(&w.pb("qkv"), dim, 3 * dim, true)?,
            proj: Linear::new(&w.pb("proj"), dim, dim, true)?,
            num_heads,
            scale: (head_dim as f64).powf(-0.5),
            rh: table("rel_pos_h")?,
            rw: table("rel_pos_w")?,
        })
    }

    /// The official block's attention over `x` `[B, H, W, C]` (after `norm1`): in windows of
    /// `window_size` tokens (the grid padded with zero tokens to whole windows, whose outputs
    /// are cropped), or over the whole grid for 0. `[B, H, W, C]` → `[B, H, W, C]`.
    ///
    /// A zero token's qkv projection is the projection's bias, so the grid's tokens are
    /// projected and the windows padded after the projection, with that row; the output
    /// projection takes the grid's tokens only. The values are those of the official order.
    fn forward(&self, x: Tensor<4>, window_size: usize) -> Tensor<4> {
        let [_, h, w, c] = x.dims();
        let qkv = self.qkv.forward(x);
        let pad = self.qkv.forward(Tensor::zeros([1, c], &qkv.device()));
        let window = if window_size > 0 { window_size } else { h };
        let spec = WindowAttentionSpec {
            heads: self.num_heads,
            key_dim: c / self.num_heads,
            val_dim: c / self.num_heads,
            window,
            scale: self.scale,
            layout: QkvLayout::Split,
        };
        // Global attention is one window if the grid is square and the tables fit it.
        let fused = if (window_size > 0 || h == w) && self.rh.dims()[0] == window {
            let bias = WindowBias::RelPos(&self.rh, &self.rw);
            ops::window_attention(&qkv, &pad, bias, spec)
        } else {
            None
        };
        let heads = match fused {
            Some(heads) => heads,
            None if window_size > 0 => {
                let (windows, pad_hw) = window_partition_filled(qkv, window_size, pad);
                window_unpartition(self.attend(windows), window_size, pad_hw, (h, w))
            }
            None => self.attend(qkv),
        };
        self.proj.forward(heads)
    }

    /// The attention core of each window of `qkv` `[B, H, W, 3C]` (the qkv projection of its
    /// tokens), without the output projection: `[B, H, W, C]`.
    fn attend(&self, qkv: Tensor<4>) -> Tensor<4> {
        let [b, h, w, c3] = qkv.dims();
        let c = c3 / 3;
        let nh = self.num_heads;
        let hd = c / nh;
        // (B, HW, 3, heads, hd) → (3, B, heads, HW, hd) → (3, B*heads, HW, hd)
        let qkv = qkv
            .reshape([b, h * w, 3, nh, hd])
            .permute([2, 0, 3, 1, 4])
            .reshape([3, b * nh, h * w, hd]);
        let q: Tensor<3> = qkv.clone().narrow(0, 0, 1).squeeze_dim(0);
        let k: Tensor<3> = qkv.clone().narrow(0, 1, 1).squeeze_dim(0);
        let v: Tensor<3> = qkv.narrow(0, 2, 1).squeeze_dim(0);

        // The attention matrix is [B*heads, HW, HW]: 800 MB for ViT-B's global blocks, more
        // than WebGPU lets one buffer hold. Computed in slices of (batch x head) of at most
        // ATTN_CHUNK_BYTES each; the arithmetic per slice is unchanged.
        let per_slice = (h * w * h * w * 4).max(1);
        let chunk = (ATTN_CHUNK_BYTES / per_slice).max(1);
        let bn = b * nh;
        let out = if chunk >= bn {
            self.attend_heads(q, k, v, (h, w))
        } else {
            let slices = (0..bn)
                .step_by(chunk)
                .map(|start| {
                    let len = chunk.min(bn - start);
                    self.attend_heads(
                        q.clone().narrow(0, start, len),
                        k.clone().narrow(0, start, len),
                        v.clone().narrow(0, start, len),
                        (h, w),
                    )
                })
                .collect();
            Tensor::cat(slices, 0)
        };
        out.reshape([b, nh, h, w, hd])
            .permute([0, 2, 3, 1, 4])
            .reshape([b, h, w, c])
    }

    /// softmax(q·scale·kᵀ + rel-pos) · v for `[n, HW, hd]` slices of (batch x heads).
    fn attend_heads(
        &self,
        q: Tensor<3>,
        k: Tensor<3>,
        v: Tensor<3>,
        hw: (usize, usize),
    ) -> Tensor<3> {
        let attn = matmul_t(q.clone(), k, self.scale);
        let attn = self.add_decomposed_rel_pos(attn, q, hw);
        matmul(softmax_last(attn), v)
    }

    /// `attn` `[B*heads, HW, HW]` plus the decomposed rel-pos terms of the unscaled `q`
    /// `[B*heads, HW, hd]`.
    fn add_decomposed_rel_pos(
        &self,
        attn: Tensor<3>,
        q: Tensor<3>,
        (h, w): (usize, usize),
    ) -> Tensor<3> {
        let [bn, _, hd] = q.dims();
        let r_q = q.reshape([bn, h, w, hd]);
        // einsum("bhwc,hkc->bhwk"): per row h, (B*w, c) @ (c, k)
        let rel_h = matmul(
            r_q.clone().permute([1, 0, 2, 3]).reshape([h, bn * w, hd]),
            self.rh.clone().swap_dims(1, 2),
        )
        .reshape([h, bn, w, h])
        .permute([1, 0, 2, 3]);
        // einsum("bhwc,wkc->bhwk"): per column w, (B*h, c) @ (c, k)
        let rel_w = matmul(
            r_q.permute([2, 0, 1, 3]).reshape([w, bn * h, hd]),
            self.rw.clone().swap_dims(1, 2),
        )
        .reshape([w, bn, h, w])
        .permute([1, 2, 0, 3]);
        // attn.view(B, q_h, q_w, k_h, k_w) + rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]
        let attn: Tensor<5> = attn.reshape([bn, h, w, h, w]);
        let attn = attn + rel_h.unsqueeze_dim::<5>(4) + rel_w.unsqueeze_dim::<5>(3);
        attn.reshape([bn, h * w, h * w])
    }
}

/// The largest attention matrix slice computed at once (64 MiB: one 64x64-token head), so
/// that no buffer exceeds what WebGPU adapters allow (often 128 or 256 MiB).
pub const ATTN_CHUNK_BYTES: usize = 64 << 20;

/// The official `get_rel_pos`: relative positional embeddings for every (query, key) pair,
/// `[q_size, k_size, hd]`, interpolating the table linearly when its length differs from
/// `2 * max(q_size, k_size) - 1`.
pub fn get_rel_pos(q_size: usize, k_size: usize, rel_pos: Tensor<2>) -> Tensor<3> {
    let max_rel_dist = 2 * q_size.max(k_size) - 1;
    let [len, hd] = rel_pos.dims();
    let device = rel_pos.device();
    let rel_pos = if len != max_rel_dist {
        // F.interpolate(rel_pos.reshape(1, L, -1).permute(0, 2, 1), size=max, mode="linear")
        let x = rel_pos.swap_dims(0, 1).reshape([1, hd, 1, len]);
        let mut opts = InterpolateOptions::new(InterpolateMode::Bilinear);
        opts.align_corners = false;
        opts.output_size = Some([1, max_rel_dist]);
        interpolate(x, opts)
            .reshape([hd, max_rel_dist])
            .swap_dims(0, 1)
    } else {
        rel_pos
    };
    let qs = (k_size as f64 / q_size as f64).max(1.0);
    let ks = (q_size as f64 / k_size as f64).max(1.0);
    let mut idx = Vec::with_capacity(q_size * k_size);
    for i in 0..q_size {
        for j in 0..k_size {
            let c = i as f64 * qs - j as f64 * ks + (k_size as f64 - 1.0) * ks;
            idx.push(c as i64);
        }
    }
    let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [q_size * k_size]), &device);
    rel_pos.select(0, idx).reshape([q_size, k_size, hd])
}

/// The official `window_partition`, but padded with copies of `fill` `[1, C]` instead of
/// zeros: pads `[B, H, W, C]` to multiples of `ws` and cuts it into windows `[B * nWin, ws, ws,
/// C]`; returns the padded size too. The encoders partition their qkv projections, whose
/// padding rows are the projection of a zero token.
pub fn window_partition_filled(
    x: Tensor<4>,
    ws: usize,
    fill: Tensor<2>,
) -> (Tensor<4>, (usize, usize)) {
    let [b, h, w, c] = x.dims();
    let pad_h = (ws - h % ws) % ws;
    let pad_w = (ws - w % ws) % ws;
    let padding = |shape: [usize; 4]| fill.clone().reshape([1, 1, 1, c]).expand(shape);
    let mut x = x;
    if pad_h > 0 {
        x = Tensor::cat(vec![x, padding([b, pad_h, w, c])], 1);
    }
    if pad_w > 0 {
        x = Tensor::cat(vec![x, padding([b, h + pad_h, pad_w, c])], 2);
    }
    let (hp, wp) = (h + pad_h, w + pad_w);
    let x: Tensor<6> = x.reshape([b, hp / ws, ws, wp / ws, ws, c]);
    let windows = x
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([b * (hp / ws) * (wp / ws), ws, ws, c]);
    (windows, (hp, wp))
}

/// Inverse of [`window_partition_filled`]: `[B * nWin, ws, ws, C]` → `[B, H, W, C]`.
pub fn window_unpartition(
    windows: Tensor<4>,
    ws: usize,
    (hp, wp): (usize, usize),
    (h, w): (usize, usize),
) -> Tensor<4> {
    let [n, _, _, c] = windows.dims();
    let b = n / ((hp / ws) * (wp / ws));
    let x: Tensor<6> = windows.reshape([b, hp / ws, wp / ws, ws, ws, c]);
    let x = x.permute([0, 1, 3, 2, 4, 5]).reshape([b, hp, wp, c]);
    if hp > h || wp > w {
        x.slice([0..b, 0..h, 0..w, 0..c])
    } else {
        x
    }
}
