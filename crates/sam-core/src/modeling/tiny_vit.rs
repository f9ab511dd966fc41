//! MobileSAM's image encoder, TinyViT-5M (official `mobile_sam/modeling/tiny_vit_sam.py`):
//! a convolutional patch embedding, one stage of MBConv blocks, three stages of windowed
//! attention blocks with learned per-offset attention biases, patch merging between stages,
//! and SAM's neck. `[B, 3, 1024, 1024]` → `[B, 256, 64, 64]`.
//!
//! Every `Conv2d_BN` (a bias-free convolution followed by an eval-mode `BatchNorm2d`) is folded
//! into one convolution with bias when the weights are loaded, see [`conv2d_bn`].

use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Int, Tensor, TensorData};

use super::common::{Activation, Conv2d, Conv2dSpec, LayerNorm, LayerNorm2d, Linear};
use super::image_encoder::{
    EMBED_GRID, MAX_ENCODER_DEPTH, MAX_ENCODER_WIDTH, MAX_MLP_RATIO, check_sam_io,
    window_partition_filled, window_unpartition,
};
use super::ops::{self, QkvLayout, WindowAttentionSpec, WindowBias, gelu};
use crate::error::{Result, SamError};
use crate::io::checkpoint::Checkpoint;
use crate::weights::{KeyShapes, WeightLoader};

/// `BatchNorm2d` eps (the torch default, used by every `Conv2d_BN`).
const BN_EPS: f64 = 1e-5;
/// `nn.LayerNorm` eps inside the TinyViT blocks (the torch default).
const LN_EPS: f64 = 1e-5;
/// The widest attention window accepted, in tokens per side (MobileSAM's are 7 and 14). A
/// window of `ws` tokens makes an index table of `ws^4` entries, so this bounds it (1 Mi).
/// Enforced by [`TinyViTConfig::validate`].
pub const MAX_TINY_VIT_WINDOW: usize = 32;
/// The largest `local_conv_size` accepted (MobileSAM's is 3). Enforced by
/// [`TinyViTConfig::validate`].
pub const MAX_LOCAL_CONV_SIZE: usize = 31;

/// Hyper-parameters of [`TinyViT`] (the official constructor's arguments).
#[derive(Clone, Debug, PartialEq)]
pub struct TinyViTConfig {
    pub img_size: usize,
    /// Width of each stage; stage 0 is convolutional (MBConv), the others attention.
    pub embed_dims: Vec<usize>,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Attention heads per stage (stage 0's entry is unused; 0 when detected).
    pub num_heads: Vec<usize>,
    /// Attention window side per stage (stage 0's entry is unused; 0 when detected).
    pub window_sizes: Vec<usize>,
    pub mlp_ratio: usize,
    pub mbconv_expand_ratio: usize,
    pub local_conv_size: usize,
    /// Channels of the neck's output (256 for SAM).
    pub out_chans: usize,
}

impl TinyViTConfig {
    /// MobileSAM's `build_sam_vit_t`: TinyViT-5M at 1024 pixels.
    pub fn mobile_sam() -> Self {
        Self {
            img_size: 1024,
            embed_dims: vec![64, 128, 160, 320],
            depths: vec![2, 2, 6, 2],
            num_heads: vec![2, 4, 5, 10],
            window_sizes: vec![7, 7, 14, 7],
            mlp_ratio: 4,
            mbconv_expand_ratio: 4,
            local_conv_size: 3,
            out_chans: 256,
        }
    }

    /// Reads the configuration off the checkpoint's shapes under `prefix` (e.g.
    /// `image_encoder.`): widths from the convolution and norm weights, depths by counting
    /// blocks, heads and window sizes from the `attention_biases` tables `[heads, ws*ws]`.
    pub fn detect(ckpt: &Checkpoint, prefix: &str) -> Result<Self> {
        let keys = KeyShapes { ckpt, prefix };
        Self::from_shapes(|name| keys.shape(name))
    }

    fn from_shapes(shape: impl Fn(&str) -> Option<Vec<usize>>) -> Result<Self> {
        let bad =
            |what: String| SamError::ModelType(format!("not a TinyViT image encoder: {what}"));
        // Dimension `i` of tensor `name`.
        let dim = |name: &str, i: usize| -> Result<usize> {
            let s = shape(name).ok_or_else(|| bad(format!("no {name}")))?;
            s.get(i)
                .copied()
                .ok_or_else(|| bad(format!("{name} has shape {s:?}")))
        };
        // `a / b` when it is exact.
        let ratio = |a: usize, b: usize, what: &str| -> Result<usize> {
            match (a.checked_rem(b), a.checked_div(b)) {
                (Some(0), Some(r)) if r > 0 => Ok(r),
                _ => Err(bad(format!("{what}: {a} is not a multiple of {b}"))),
            }
        };
        let count = |layer: usize, key: &str| {
            (0..)
                .take_while(|j| shape(&format!("layers.{layer}.blocks.{j}.{key}")).is_some())
                .count()
        };

        // Stage 0: MBConv blocks on the patch embedding.
        let e0 = dim("patch_embed.seq.2.c.weight", 0)?;
        if dim("layers.0.blocks.0.conv1.c.weight", 1)? != e0 {
            return Err(bad("stage 0 width differs from the patch embedding".into()));
        }
        let hidden = dim("layers.0.blocks.0.conv1.c.weight", 0)?;
        let mbconv_expand_ratio = ratio(hidden, e0, "MBConv width")?;
        let mut embed_dims = vec![e0];
        let mut depths = vec![count(0, "conv1.c.weight")];
        // Not stored for the convolutional stage (the official arguments have unused values).
        let mut num_heads = vec![0];
        let mut window_sizes = vec![0];
        let (mut mlp_ratio, mut local_conv_size) = (0, 0);

        // Stages 1..: attention blocks.
        for i in 1.. {
            let p = format!("layers.{i}.blocks.0.");
            if shape(&format!("{p}attn.qkv.weight")).is_none() {
                break;
            }
            let d = dim(&format!("{p}attn.norm.weight"), 0)?;
            let biases = format!("{p}attn.attention_biases");
            let heads = dim(&biases, 0)?;
            let offsets = dim(&biases, 1)?;
            let ws = (offsets as f64).sqrt().round() as usize;
            if ws == 0 || ws.checked_mul(ws) != Some(offsets) {
                return Err(bad(format!(
                    "{biases}: {offsets} offsets is not a square window"
                )));
            }
            ratio(d, heads, &format!("layers.{i} heads"))?;
            let r = ratio(dim(&format!("{p}mlp.fc1.weight"), 0)?, d, "MLP width")?;
            let k = dim(&format!("{p}local_conv.c.weight"), 2)?;
            if (mlp_ratio != 0 && r != mlp_ratio) || (local_conv_size != 0 && k != local_conv_size)
            {
                return Err(bad(format!(
                    "layers.{i}: MLP ratio or local_conv size differs between stages"
                )));
            }
            (mlp_ratio, local_conv_size) = (r, k);
            embed_dims.push(d);
            depths.push(count(i, "attn.qkv.weight"));
            num_heads.push(heads);
            window_sizes.push(ws);
        }
        let n = embed_dims.len();
        if n < 2 {
            return Err(bad("no attention stages".into()));
        }
        // Every stage but the last ends with a PatchMerging to the next stage's width.
        for i in 0..n {
            let merge = shape(&format!("layers.{i}.downsample.conv1.c.weight"));
            match (merge.as_deref(), embed_dims.get(i + 1)) {
                (Some([out, d, 1, 1]), Some(next)) if out == next && *d == embed_dims[i] => {}
                (None, None) => {}
                _ => return Err(bad(format!("layers.{i}: unexpected downsample {merge:?}"))),
            }
        }
        let config = Self {
            img_size: 1024,
            embed_dims,
            depths,
            num_heads,
            window_sizes,
            mlp_ratio,
            mbconv_expand_ratio,
            local_conv_size,
            out_chans: dim("neck.0.weight", 0)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks that the configuration describes a buildable TinyViT whose output is SAM's
    /// 64x64 embedding grid.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |what: String| SamError::ModelType(format!("TinyViT configuration {self:?}: {what}"));
        let n = self.embed_dims.len();
        if n < 2
            || [&self.depths, &self.num_heads, &self.window_sizes]
                .iter()
                .any(|v| v.len() != n)
        {
            return Err(bad(
                "needs at least two stages, each with a depth, heads and window".into(),
            ));
        }
        check_sam_io(self.img_size, self.out_chans).map_err(bad)?;
        if self.embed_dims.contains(&0) || !self.embed_dims[0].is_multiple_of(2) {
            return Err(bad("widths must be positive, the first even".into()));
        }
        if self.embed_dims.iter().any(|&d| d > MAX_ENCODER_WIDTH) {
            return Err(bad(format!("widths must be at most {MAX_ENCODER_WIDTH}")));
        }
        if self.depths.contains(&0)
            || self
                .depths
                .iter()
                .try_fold(0usize, |a, &d| a.checked_add(d))
                > Some(MAX_ENCODER_DEPTH)
        {
            return Err(bad(format!(
                "every stage needs a block, and all stages at most {MAX_ENCODER_DEPTH} together"
            )));
        }
        if !(1..=MAX_MLP_RATIO).contains(&self.mlp_ratio)
            || !(1..=MAX_MLP_RATIO).contains(&self.mbconv_expand_ratio)
            || self.local_conv_size.is_multiple_of(2)
            || self.local_conv_size > MAX_LOCAL_CONV_SIZE
        {
            return Err(bad(format!(
                "ratios must be in 1..={MAX_MLP_RATIO}, local_conv_size odd and at most \
                 {MAX_LOCAL_CONV_SIZE}"
            )));
        }
        for i in 1..n {
            let (d, h, ws) = (self.embed_dims[i], self.num_heads[i], self.window_sizes[i]);
            if h == 0 || d % h != 0 || ws == 0 || ws > MAX_TINY_VIT_WINDOW {
                return Err(bad(format!(
                    "stage {i}: {h} heads for width {d}, window {ws} (heads must divide the \
                     width; the window must be in 1..={MAX_TINY_VIT_WINDOW})"
                )));
            }
        }
        let grid = self.output_grid();
        if grid != EMBED_GRID {
            return Err(bad(format!(
                "output grid {grid}x{grid}, SAM needs {EMBED_GRID}x{EMBED_GRID}"
            )));
        }
        Ok(())
    }

    /// Side of the final feature grid: `img_size / 4` after the patch embedding's two
    /// stride-2 convolutions, then each PatchMerging's stride.
    pub fn output_grid(&self) -> usize {
        let conv_out = |size: usize, stride: usize| size.saturating_sub(1) / stride + 1;
        let grid = conv_out(conv_out(self.img_size, 2), 2);
        self.embed_dims
            .iter()
            .skip(1)
            .fold(grid, |g, &out_dim| conv_out(g, Self::merge_stride(out_dim)))
    }

    /// The official `PatchMerging` quirk of MobileSAM: no spatial downsampling into a
    /// stage of width 320, 448 or 576 (the last stage of TinyViT-5M/11M/21M), so the encoder
    /// ends at 1/16 of the input like SAM's ViT.
    pub fn merge_stride(out_dim: usize) -> usize {
        if matches!(out_dim, 320 | 448 | 576) {
            1
        } else {
            2
        }
    }
}

/// `Conv2d_BN`: `c.weight` (a convolution without bias) then the eval-mode BatchNorm2d
/// `bn.{weight, bias, running_mean, running_var}` (eps 1e-5; `num_batches_tracked` is unused),
/// folded into one convolution: with `s = weight / sqrt(running_var + eps)`,
/// `w' = c.weight * s` per output channel and `b' = bias - running_mean * s`. This is the
/// official `Conv2d_BN.fuse()`; torch's CPU eval BatchNorm itself applies `x * s + b'`. The fold
/// runs once at load time in f32 on the device (loading needs no read-back, which WebGPU
/// cannot do synchronously); its rounding is far below the parity tolerance.
pub fn conv2d_bn(w: &WeightLoader, s: Conv2dSpec) -> Result<Conv2d> {
    let c = s.c_out;
    let weight: Tensor<4> = w
        .pb("c")
        .tensor("weight", [c, s.c_in / s.groups, s.kernel, s.kernel])?;
    let bn = w.pb("bn");
    let gamma: Tensor<1> = bn.tensor("weight", [c])?;
    let beta: Tensor<1> = bn.tensor("bias", [c])?;
    let mean: Tensor<1> = bn.tensor("running_mean", [c])?;
    let var: Tensor<1> = bn.tensor("running_var", [c])?;
    let scale = gamma / var.add_scalar(BN_EPS).sqrt();
    let bias = beta - mean * scale.clone();
    let weight = weight * scale.reshape([c, 1, 1, 1]);
    Ok(Conv2d::from_parts(weight, Some(bias), s.bias(true)))
}

/// The official `PatchEmbed`: `seq.0` Conv2d_BN 3→C/2 (3x3, stride 2), GELU, `seq.2`
/// Conv2d_BN C/2→C (3x3, stride 2). `[B, 3, H, W]` → `[B, C, H/4, W/4]`.
#[derive(Clone, Debug)]
struct PatchEmbed {
    conv0: Conv2d,
    conv2: Conv2d,
}

impl PatchEmbed {
    fn new(w: &WeightLoader, dim: usize) -> Result<Self> {
        let seq = w.pb("seq");
        let half = dim / 2;
        Ok(Self {
            conv0: conv2d_bn(&seq.pb(0), Conv2dSpec::new(3, half, 3).stride(2).padding(1))?,
            conv2: conv2d_bn(
                &seq.pb(2),
                Conv2dSpec::new(half, dim, 3).stride(2).padding(1),
            )?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv2.forward(self.conv0.forward_gelu(x))
    }
}

/// The official `MBConv`: 1x1 expand, GELU, 3x3 depthwise, GELU, 1x1 project, residual add,
/// GELU. `[B, C, H, W]` → `[B, C, H, W]`.
#[derive(Clone, Debug)]
struct MBConv {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
}

impl MBConv {
    fn new(w: &WeightLoader, dim: usize, expand_ratio: usize) -> Result<Self> {
        let hidden = dim * expand_ratio;
        Ok(Self {
            conv1: conv2d_bn(&w.pb("conv1"), Conv2dSpec::new(dim, hidden, 1))?,
            conv2: conv2d_bn(
                &w.pb("conv2"),
                Conv2dSpec::new(hidden, hidden, 3).padding(1).groups(hidden),
            )?,
            conv3: conv2d_bn(&w.pb("conv3"), Conv2dSpec::new(hidden, dim, 1))?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.conv1.forward_gelu(x.clone());
        let y = self.conv2.forward_gelu(y);
        gelu(self.conv3.forward(y) + x)
    }
}

/// The official `PatchMerging`: 1x1 conv, GELU, 3x3 depthwise conv (stride
/// [`TinyViTConfig::merge_stride`]), GELU, 1x1 conv. `[B, C, H, W]` → `[B, C', H', W']`.
#[derive(Clone, Debug)]
struct PatchMerging {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
}

impl PatchMerging {
    fn new(w: &WeightLoader, dim: usize, out_dim: usize) -> Result<Self> {
        let stride = TinyViTConfig::merge_stride(out_dim);
        Ok(Self {
            conv1: conv2d_bn(&w.pb("conv1"), Conv2dSpec::new(dim, out_dim, 1))?,
            conv2: conv2d_bn(
                &w.pb("conv2"),
                Conv2dSpec::new(out_dim, out_dim, 3)
                    .stride(stride)
                    .padding(1)
                    .groups(out_dim),
            )?,
            conv3: conv2d_bn(&w.pb("conv3"), Conv2dSpec::new(out_dim, out_dim, 1))?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv1.forward_gelu(x);
        let x = self.conv2.forward_gelu(x);
        self.conv3.forward(x)
    }
}

/// The official TinyViT `Attention` over windows of `ws x ws` tokens: its own LayerNorm,
/// qkv split per head as `[key_dim, key_dim, d]`, logits `q·kᵀ · key_dim^-0.5` plus a learned
/// bias per head and (|dy|, |dx|) offset, softmax, projection.
#[derive(Clone, Debug)]
struct Attention {
    norm: LayerNorm,
    qkv: Linear,
    proj: Linear,
    num_heads: usize,
    key_dim: usize,
    d: usize,
    scale: f64,
    /// `attention_biases[:, attention_bias_idxs]`: `[1, heads, ws*ws, ws*ws]`.
    bias: Tensor<4>,
}

impl Attention {
    fn new(w: &WeightLoader, dim: usize, num_heads: usize, ws: usize) -> Result<Self> {
        // TinyViTBlock uses key_dim = dim / heads and attn_ratio 1, so d = key_dim.
        let key_dim = dim / num_heads;
        let d = key_dim;
        let n = ws * ws;
        let biases: Tensor<2> = w.tensor("attention_biases", [num_heads, n])?;
        // The official offsets are numbered in order of first appearance over all point
        // pairs; the first query (0, 0) already meets every offset (dy, dx) in row-major
        // order, so the index is |dy| * ws + |dx|.
        let mut idxs = Vec::with_capacity(n * n);
        for p in 0..n {
            for q in 0..n {
                let (dy, dx) = ((p / ws).abs_diff(q / ws), (p % ws).abs_diff(q % ws));
                idxs.push((dy * ws + dx) as i64);
            }
        }
        let idxs = Tensor::<1, Int>::from_data(TensorData::new(idxs, [n * n]), w.device());
        let bias = biases.select(1, idxs).reshape([1, num_heads, n, n]);
        let h = num_heads * (2 * key_dim + d);
        Ok(Self {
            norm: LayerNorm::new(&w.pb("norm"), dim, LN_EPS)?,
            qkv: Linear::new(&w.pb("qkv"), dim, h, true)?,
            proj: Linear::new(&w.pb("proj"), num_heads * d, dim, true)?,
            num_heads,
            key_dim,
            d,
            scale: (key_dim as f64).powf(-0.5),
            bias,
        })
    }

    /// The attention over the `ws x ws` windows of `x` `[B, H, W, C]` → `[B, H, W, C]`, as the
    /// official block calls it: `x` zero-padded to whole windows, partitioned, attended, and
    /// the padding's outputs dropped.
    ///
    /// The LayerNorm, the qkv projection and the output projection act token by token, so they
    /// run on the grid's tokens only; a padding token's q, k and v are those of one zero token,
    /// projected once. The same values, with ~20% fewer products in the last two stages of
    /// MobileSAM (64x64 tokens in windows of 14 and 7: 70x70 padded).
    fn forward(&self, x: Tensor<4>, ws: usize) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let (nh, kd, d) = (self.num_heads, self.key_dim, self.d);
        let qkv = self.qkv.forward(self.norm.forward(x.clone()));
        let zero = Tensor::<2>::zeros([1, c], &x.device());
        let pad = self.qkv.forward(self.norm.forward(zero));
        let spec = WindowAttentionSpec {
            heads: nh,
            key_dim: kd,
            val_dim: d,
            window: ws,
            scale: self.scale,
            layout: QkvLayout::PerHead,
        };
        let heads = match ops::window_attention(&qkv, &pad, WindowBias::Table(&self.bias), spec) {
            Some(heads) => heads,
            None => {
                let (windows, pad_hw) = window_partition_filled(qkv, ws, pad);
                let [nw, _, _, row] = windows.dims();
                let n = ws * ws;
                // (nW, N, heads, 2kd+d) → (nW, heads, N, 2kd+d)
                let qkv = windows.reshape([nw, n, nh, row / nh]).swap_dims(1, 2);
                let q = qkv.clone().narrow(3, 0, kd);
                let k = qkv.clone().narrow(3, kd, kd);
                let v = qkv.narrow(3, 2 * kd, d);
                let options = AttentionModuleOptions {
                    scale: Some(self.scale),
                    softcap: None,
                    is_causal: false,
                };
                let out = attention(q, k, v, None, Some(self.bias.clone()), options);
                let out = out.swap_dims(1, 2).reshape([nw, ws, ws, nh * d]);
                window_unpartition(out, ws, pad_hw, (h, w))
            }
        };
        debug_assert_eq!(heads.dims(), [b, h, w, nh * d]);
        self.proj.forward(heads)
    }
}

/// The official TinyViT `Mlp`: LayerNorm, `fc1`, GELU, `fc2`. `[..., C]` → `[..., C]`.
#[derive(Clone, Debug)]
struct Mlp {
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn new(w: &WeightLoader, dim: usize, hidden: usize) -> Result<Self> {
        Ok(Self {
            norm: LayerNorm::new(&w.pb("norm"), dim, LN_EPS)?,
            fc1: Linear::new(&w.pb("fc1"), dim, hidden, true)?,
            fc2: Linear::new(&w.pb("fc2"), hidden, dim, true)?,
        })
    }

    fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.fc2
            .forward(self.fc1.forward_act(self.norm.forward(x), Activation::Gelu))
    }
}

/// The official `TinyViTBlock`: windowed attention (windows zero-padded before the
/// attention's LayerNorm) with residual, a depthwise `local_conv` Conv2d_BN (no residual),
/// then the MLP with residual. `[B, H, W, C]` → `[B, H, W, C]`.
#[derive(Clone, Debug)]
struct TinyViTBlock {
    attn: Attention,
    local_conv: Conv2d,
    mlp: Mlp,
    window_size: usize,
}

impl TinyViTBlock {
    fn new(w: &WeightLoader, c: &TinyViTConfig, stage: usize) -> Result<Self> {
        let dim = c.embed_dims[stage];
        let ws = c.window_sizes[stage];
        let k = c.local_conv_size;
        Ok(Self {
            attn: Attention::new(&w.pb("attn"), dim, c.num_heads[stage], ws)?,
            local_conv: conv2d_bn(
                &w.pb("local_conv"),
                Conv2dSpec::new(dim, dim, k).padding(k / 2).groups(dim),
            )?,
            mlp: Mlp::new(&w.pb("mlp"), dim, dim * c.mlp_ratio)?,
            window_size: ws,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = x.clone() + self.attn.forward(x, self.window_size);
        let x = self.local_conv.forward_channels_last(x);
        x.clone() + self.mlp.forward(x)
    }
}

/// The blocks of one stage: MBConvs (stage 0, `ConvLayer`) or attention blocks (`BasicLayer`).
#[derive(Clone, Debug)]
enum Blocks {
    Conv(Vec<MBConv>),
    Attn(Vec<TinyViTBlock>),
}

/// One stage (`layers.i`): its blocks and the optional `downsample` PatchMerging.
#[derive(Clone, Debug)]
struct Layer {
    blocks: Blocks,
    downsample: Option<PatchMerging>,
}

impl Layer {
    fn new(w: &WeightLoader, c: &TinyViTConfig, i: usize) -> Result<Self> {
        let dim = c.embed_dims[i];
        let bw = w.pb("blocks");
        let blocks = if i == 0 {
            Blocks::Conv(
                (0..c.depths[i])
                    .map(|j| MBConv::new(&bw.pb(j), dim, c.mbconv_expand_ratio))
                    .collect::<Result<_>>()?,
            )
        } else {
            Blocks::Attn(
                (0..c.depths[i])
                    .map(|j| TinyViTBlock::new(&bw.pb(j), c, i))
                    .collect::<Result<_>>()?,
            )
        };
        let downsample = match c.embed_dims.get(i + 1) {
            Some(&out_dim) => Some(PatchMerging::new(&w.pb("downsample"), dim, out_dim)?),
            None => None,
        };
        Ok(Self { blocks, downsample })
    }

    /// `ConvLayer`: `[B, C, H, W]`; `BasicLayer`: `[B, H, W, C]`. Returns `[B, H', W', C']`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (x, nchw) = match &self.blocks {
            Blocks::Conv(blocks) => (blocks.iter().fold(x, |x, b| b.forward(x)), true),
            Blocks::Attn(blocks) => (blocks.iter().fold(x, |x, b| b.forward(x)), false),
        };
        match &self.downsample {
            Some(merge) => {
                let x = if nchw { x } else { x.permute([0, 3, 1, 2]) };
                merge.forward(x).permute([0, 2, 3, 1])
            }
            None if nchw => x.permute([0, 2, 3, 1]),
            None => x,
        }
    }
}

/// MobileSAM's image encoder (the official `TinyViT` with SAM's neck; the classifier
/// `norm_head`/`head` in the checkpoint is not used).
#[derive(Clone, Debug)]
pub struct TinyViT {
    patch_embed: PatchEmbed,
    layers: Vec<Layer>,
    neck_conv0: Conv2d,
    neck_norm1: LayerNorm2d,
    neck_conv2: Conv2d,
    neck_norm3: LayerNorm2d,
    config: TinyViTConfig,
}

impl TinyViT {
    /// Whether the image encoder under `prefix` (e.g. `image_encoder.`) is a TinyViT: it has
    /// the convolutional patch embedding `patch_embed.seq.0.c.weight`. The rest of the
    /// structure is checked by [`TinyViT::new`].
    pub fn is_tiny_vit(ckpt: &Checkpoint, prefix: &str) -> bool {
        KeyShapes { ckpt, prefix }.contains("patch_embed.seq.0.c.weight")
    }

    /// Loads from `image_encoder.*` keys, the configuration read off the shapes.
    pub fn new(w: &WeightLoader) -> Result<Self> {
        let c = TinyViTConfig::from_shapes(|name| w.shape(name))?;
        Self::with_config(w, &c)
    }

    /// Loads with a given configuration; every tensor's shape is checked against it.
    pub fn with_config(w: &WeightLoader, c: &TinyViTConfig) -> Result<Self> {
        c.validate()?;
        let n = c.embed_dims.len();
        let last = c.embed_dims[n - 1];
        let neck = w.pb("neck");
        Ok(Self {
            patch_embed: PatchEmbed::new(&w.pb("patch_embed"), c.embed_dims[0])?,
            layers: (0..n)
                .map(|i| Layer::new(&w.pb("layers").pb(i), c, i))
                .collect::<Result<_>>()?,
            neck_conv0: Conv2d::new(
                &neck.pb(0),
                Conv2dSpec::new(last, c.out_chans, 1).bias(false),
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

    pub fn config(&self) -> &TinyViTConfig {
        &self.config
    }

    /// Number of stages (`layers`).
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The patch embedding: `[B, 3, 1024, 1024]` → `[B, C0, 256, 256]`.
    pub fn patch_embed(&self, x: Tensor<4>) -> Tensor<4> {
        self.patch_embed.forward(x)
    }

    /// Runs stage `i` (`layers.i`, including its downsample). Stage 0 takes the
    /// `[B, C, H, W]` patch embedding, the others the previous stage's output. Returns
    /// `[B, H', W', C']`: the official `(B, L, C)` output viewed on its grid. Panics if
    /// `i >= num_layers()`.
    pub fn layer(&self, i: usize, x: Tensor<4>) -> Tensor<4> {
        self.layers[i].forward(x)
    }

    /// The neck: `[B, 64, 64, C]` → `[B, 256, 64, 64]`.
    pub fn neck(&self, x: Tensor<4>) -> Tensor<4> {
        let x = x.permute([0, 3, 1, 2]);
        let x = self.neck_norm1.forward(self.neck_conv0.forward(x));
        self.neck_norm3.forward(self.neck_conv2.forward(x))
    }

    /// `[B, 3, 1024, 1024]` → `[B, 256, 64, 64]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.patch_embed(x);
        let x = self.layers.iter().fold(x, |x, layer| layer.forward(x));
        self.neck(x)
    }
}
