//! The `Sam` model (official `modeling/sam.py` + `build_sam.py`): image encoder, prompt
//! encoder and mask decoder built from one checkpoint.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, Tensor};

use super::image_encoder::{ImageEncoderViT, ViTConfig};
use super::mask_decoder::{DecoderOutput, MaskDecoder};
use super::prompt_encoder::PromptEncoder;
use super::tiny_vit::TinyViT;
use super::transformer::ImageKeys;
use crate::error::{Result, SamError};
use crate::io::checkpoint::{ByteSource, Checkpoint};
use crate::weights::WeightLoader;

/// Which SAM: the official registry names, or a ViT configuration given explicitly.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelType {
    /// `vit_h`, the default (`sam_vit_h_4b8939.pth`).
    VitH,
    /// `vit_l` (`sam_vit_l_0b3195.pth`).
    VitL,
    /// `vit_b` (`sam_vit_b_01ec64.pth`).
    VitB,
    /// MobileSAM's TinyViT-5M encoder with SAM's prompt encoder and mask decoder (`mobile_sam.pt`).
    MobileSam,
    /// Any other ViT encoder configuration (e.g. the reference `tiny`).
    CustomViT(ViTConfig),
}

impl ModelType {
    /// The registry name (`vit_h`, `vit_l`, `vit_b`, or `custom_vit`).
    pub fn name(&self) -> &'static str {
        match self {
            ModelType::VitH => "vit_h",
            ModelType::VitL => "vit_l",
            ModelType::VitB => "vit_b",
            ModelType::MobileSam => "mobile_sam",
            ModelType::CustomViT(_) => "custom_vit",
        }
    }

    /// The ViT configuration of a ViT model type (`None` for MobileSAM).
    pub fn vit_config(&self) -> Option<ViTConfig> {
        match self {
            ModelType::VitH => Some(ViTConfig::vit_h()),
            ModelType::VitL => Some(ViTConfig::vit_l()),
            ModelType::VitB => Some(ViTConfig::vit_b()),
            ModelType::MobileSam => None,
            ModelType::CustomViT(c) => Some(c.clone()),
        }
    }

    /// The model type of a checkpoint, read off its keys and shapes.
    pub fn detect(ckpt: &Checkpoint) -> Result<Self> {
        if TinyViT::is_tiny_vit(ckpt, "image_encoder.") {
            return Ok(ModelType::MobileSam);
        }
        let config = ViTConfig::detect(ckpt, "image_encoder.")?;
        Ok(
            match [ViTConfig::vit_h(), ViTConfig::vit_l(), ViTConfig::vit_b()]
                .into_iter()
                .position(|c| c == config)
            {
                Some(0) => ModelType::VitH,
                Some(1) => ModelType::VitL,
                Some(2) => ModelType::VitB,
                _ => ModelType::CustomViT(config),
            },
        )
    }
}

impl fmt::Display for ModelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelType {
    type Err = SamError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "vit_h" | "default" => Ok(ModelType::VitH),
            "vit_l" => Ok(ModelType::VitL),
            "vit_b" => Ok(ModelType::VitB),
            "mobile_sam" | "vit_t" => Ok(ModelType::MobileSam),
            other => Err(SamError::ModelType(format!(
                "unknown model type {other:?} (expected vit_h, vit_l, vit_b, mobile_sam)"
            ))),
        }
    }
}

/// The image encoder of a [`Sam`].
#[derive(Clone, Debug)]
pub enum ImageEncoder {
    ViT(Box<ImageEncoderViT>),
    TinyViT(Box<TinyViT>),
}

impl ImageEncoder {
    /// `[B, 3, 1024, 1024]` → `[B, 256, 64, 64]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            ImageEncoder::ViT(e) => e.forward(x),
            ImageEncoder::TinyViT(e) => e.forward(x),
        }
    }
}

/// Segment Anything: the three modules, loaded from one checkpoint.
#[derive(Clone, Debug)]
pub struct Sam {
    pub model_type: ModelType,
    pub image_encoder: ImageEncoder,
    pub prompt_encoder: PromptEncoder,
    pub mask_decoder: MaskDecoder,
    /// `[1, 256, 64, 64]`, computed once.
    image_pe: Tensor<4>,
    device: Device,
}

impl Sam {
    /// Builds a SAM from checkpoint bytes (`.pth` or `.safetensors`). With `model_type`
    /// `None` the type is detected from the keys; a named type that does not match the
    /// file is an error.
    pub fn from_bytes(
        bytes: &[u8],
        model_type: Option<ModelType>,
        device: &Device,
    ) -> Result<Self> {
        let ckpt = Checkpoint::from_bytes(bytes)?;
        Self::from_checkpoint(&ckpt, model_type, device)
    }

    /// Builds a SAM from a random-access [`ByteSource`] holding the checkpoint, see
    /// [`Sam::from_bytes`]. The source is read one tensor at a time: besides the container's
    /// metadata, no more than the largest tensor's storage is held in memory at once.
    pub fn from_source(
        source: &dyn ByteSource,
        model_type: Option<ModelType>,
        device: &Device,
    ) -> Result<Self> {
        let ckpt = Checkpoint::from_source(source)?;
        Self::from_checkpoint(&ckpt, model_type, device)
    }

    /// [`Sam::from_source`], calling `progress(loaded, total)` after each tensor is loaded
    /// onto the device: `total` is the number of tensors in the checkpoint and `loaded` never
    /// exceeds it. When the model uses fewer tensors than the checkpoint holds, a last call
    /// `(total, total)` is made once it is built.
    pub fn from_source_with_progress(
        source: &dyn ByteSource,
        model_type: Option<ModelType>,
        device: &Device,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let ckpt = Checkpoint::from_source(source)?;
        let total = ckpt.len();
        let loaded = Cell::new(0usize);
        let progress = RefCell::new(progress);
        let on_tensor = || {
            let n = (loaded.get() + 1).min(total);
            loaded.set(n);
            (progress.borrow_mut())(n, total);
        };
        let sam = Self::build(&ckpt, model_type, device, Some(&on_tensor))?;
        if loaded.get() < total {
            (progress.borrow_mut())(total, total);
        }
        Ok(sam)
    }

    /// Builds a SAM from an opened checkpoint, see [`Sam::from_bytes`].
    pub fn from_checkpoint(
        ckpt: &Checkpoint,
        model_type: Option<ModelType>,
        device: &Device,
    ) -> Result<Self> {
        Self::build(ckpt, model_type, device, None)
    }

    fn build(
        ckpt: &Checkpoint,
        model_type: Option<ModelType>,
        device: &Device,
        on_tensor: Option<&dyn Fn()>,
    ) -> Result<Self> {
        let detected = ModelType::detect(ckpt)?;
        let model_type = match model_type {
            None => detected,
            Some(named) if named.vit_config() == detected.vit_config() => named,
            Some(named) => {
                return Err(SamError::ModelType(format!(
                    "the checkpoint holds a {detected} model, not {named}{}",
                    detected
                        .vit_config()
                        .map(|c| format!(" (its image encoder: {c:?})"))
                        .unwrap_or_default()
                )));
            }
        };
        let mut w = WeightLoader::new(ckpt, device);
        if let Some(on_tensor) = on_tensor {
            w = w.with_on_tensor(on_tensor);
        }
        let we = w.pb("image_encoder");
        let image_encoder = match model_type.vit_config() {
            Some(config) => ImageEncoder::ViT(Box::new(ImageEncoderViT::new(&we, &config)?)),
            None => ImageEncoder::TinyViT(Box::new(TinyViT::new(&we)?)),
        };
        let prompt_encoder = PromptEncoder::new(&w.pb("prompt_encoder"))?;
        let mask_decoder = MaskDecoder::new(&w.pb("mask_decoder"))?;
        let image_pe = prompt_encoder.get_dense_pe();
        Ok(Self {
            model_type,
            image_encoder,
            prompt_encoder,
            mask_decoder,
            image_pe,
            device: device.clone(),
        })
    }

    /// The device the model lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The image embedding of a preprocessed image: `[B, 3, 1024, 1024]` → `[B, 256, 64, 64]`.
    pub fn embed(&self, input: Tensor<4>) -> Result<Tensor<4>> {
        let dims = input.dims();
        if dims[1..] != [3, 1024, 1024] {
            return Err(SamError::Input(format!(
                "image input must be [B, 3, 1024, 1024], got {dims:?}"
            )));
        }
        Ok(self.image_encoder.forward(input))
    }

    /// The dense positional encoding `[1, 256, 64, 64]` (the official `get_dense_pe()`).
    pub fn image_pe(&self) -> Tensor<4> {
        self.image_pe.clone()
    }

    /// The prompt-independent decoder work for one image embedding `[1, 256, 64, 64]` without
    /// a mask input (see [`Sam::decode_with`]).
    pub fn image_keys(&self, embedding: Tensor<4>) -> Result<ImageKeys> {
        let e = embedding.dims();
        if e != [1, 256, 64, 64] {
            return Err(SamError::Input(format!(
                "image embedding {e:?} (expected [1, 256, 64, 64])"
            )));
        }
        Ok(self.mask_decoder.image_keys(
            embedding,
            self.image_pe(),
            self.prompt_encoder.no_mask_dense(1),
        ))
    }

    /// [`Sam::decode`] with no mask input, on an image prepared once by [`Sam::image_keys`]:
    /// `sparse` `[B, N, 256]`. Same outputs, without the first layer's image-side work.
    pub fn decode_with(&self, image: &ImageKeys, sparse: Tensor<3>) -> Result<DecoderOutput> {
        let s = sparse.dims();
        if s[2] != 256 {
            return Err(SamError::Input(format!(
                "decoder sparse prompts {s:?} (expected [B, N, 256])"
            )));
        }
        Ok(self.mask_decoder.forward_with(image, sparse))
    }

    /// Decodes `B` prompts on one image embedding: all four mask tokens. `sparse`
    /// `[B, N, 256]`, `dense` `[B, 256, 64, 64]`.
    pub fn decode(
        &self,
        embedding: Tensor<4>,
        sparse: Tensor<3>,
        dense: Tensor<4>,
    ) -> Result<DecoderOutput> {
        let e = embedding.dims();
        let (s, d) = (sparse.dims(), dense.dims());
        if e[1..] != [256, 64, 64]
            || d[1..] != [256, 64, 64]
            || s[2] != 256
            || s[0] != d[0]
            || (e[0] != 1 && e[0] != s[0])
        {
            return Err(SamError::Input(format!(
                "decoder inputs: embedding {e:?}, sparse {s:?}, dense {d:?} (expected [1|B,256,64,64], [B,N,256], [B,256,64,64])"
            )));
        }
        Ok(self
            .mask_decoder
            .forward(embedding, self.image_pe(), sparse, dense))
    }
}
