//! `Segmenter`: one model on one backend, and the current image's embedding.

use std::cell::RefCell;

use js_sys::{Promise, Uint8Array};
use sam_core::amg::{SamAutomaticMaskGenerator, records_to_sa1b};
use sam_core::io::checkpoint::{ByteSource, Checkpoint};
use sam_core::io::sa1b;
use sam_core::memory::{MemoryEstimate, MemoryLimits};
use sam_core::predictor::MaskChoice;
use sam_core::preprocess::RgbImage;
use sam_core::readback::read_prediction;
use sam_core::{ImageEmbedding, Sam, SamError};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::backend::{self, Backend};
use crate::blob::{Counted, checkpoint_source};
use crate::convert;
use crate::error::{js_error, sam_error, type_error};

/// The largest image accepted, in pixels: sam-core's limit (a 16384x16384 image), for
/// `setImage` and `importEmbedding` alike.
pub use sam_core::preprocess::MAX_IMAGE_PIXELS;

/// The image being segmented: its embedding and, when set from pixels, the pixels (the
/// automatic mask generator crops them).
#[derive(Default)]
struct ImageState {
    embedding: Option<ImageEmbedding>,
    image: Option<RgbImage>,
}

/// Segment Anything on one backend. Create with `Segmenter.create(bytes, options)`, then
/// `setImage`, then `predict` or `generate` as often as needed; `free()` releases it.
#[wasm_bindgen]
pub struct Segmenter {
    sam: Sam,
    backend: Backend,
    state: RefCell<ImageState>,
    /// The canvas `drawPreview` draws on (`setPreviewCanvas`; WebGPU only).
    #[cfg(all(feature = "webgpu", target_family = "wasm"))]
    preview: RefCell<Option<crate::preview::CanvasPreview>>,
}

#[wasm_bindgen]
impl Segmenter {
    /// Builds the model from a checkpoint (official `.pth`, `mobile_sam.pt` or
    /// `.safetensors`): a `Uint8Array`, or a `Blob` (a `File`, a cached `Response`'s blob)
    /// read in slices, in a worker ([`crate::blob`]). `options`: `{ modelType?, backend?:
    /// "auto" | "webgpu" | "cpu", precision?: "f32" | "f16" | "auto", onProgress?(loaded,
    /// total) }`, progress in bytes of the file.
    #[wasm_bindgen(unchecked_return_type = "Segmenter")]
    pub async fn create(
        #[wasm_bindgen(unchecked_param_type = "Uint8Array | Blob")] checkpoint: JsValue,
        #[wasm_bindgen(unchecked_param_type = "SegmenterOptions | null | undefined")]
        options: JsValue,
    ) -> Result<Segmenter, JsValue> {
        crate::ctors::run_once();
        let convert::SegmenterOptions {
            model_type,
            backend: choice,
            precision,
            on_progress,
        } = convert::segmenter_options(&options)?;
        let mut backend = backend::select(choice).await?;
        backend::set_precision(&mut backend, precision)?;
        let source = Counted::new(checkpoint_source(&checkpoint)?);
        check_memory(&source, &backend)?;
        // Progress in bytes read from the file (the tensors' storages dominate), all of them
        // once every tensor is loaded. Reported only when it goes up: a tensor served from
        // bytes already read (a block read ahead) adds nothing to show.
        let mut reported: Option<u64> = None;
        let mut progress = |tensors: usize, total: usize| {
            if let Some(f) = &on_progress {
                let read = if tensors < total {
                    source.bytes_read()
                } else {
                    source.total_bytes()
                };
                if reported.is_some_and(|last| read <= last) {
                    return;
                }
                reported = Some(read);
                // A throwing progress callback must not stop the load.
                let _ = f.call2(
                    &JsValue::NULL,
                    &JsValue::from(read as f64),
                    &JsValue::from(source.total_bytes() as f64),
                );
            }
        };
        let sam =
            Sam::from_source_with_progress(&source, model_type, &backend.device, &mut progress)
                .map_err(sam_error)?;
        Ok(Segmenter {
            sam,
            backend,
            state: RefCell::default(),
            #[cfg(all(feature = "webgpu", target_family = "wasm"))]
            preview: RefCell::default(),
        })
    }

    /// `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter, unchecked_return_type = "BackendName")]
    pub fn backend(&self) -> String {
        self.backend.name.into()
    }

    /// The float type the model computes in: `"f32"`, or `"f16"` when `precision` asked for it
    /// (or `"auto"` found it) on a WebGPU adapter with `shader-f16`.
    #[wasm_bindgen(getter, unchecked_return_type = "PrecisionName")]
    pub fn precision(&self) -> String {
        backend::precision_name(&self.backend.device).into()
    }

    /// A description of the backend (the adapter, or why WebGPU is not used).
    #[wasm_bindgen(getter, js_name = backendInfo)]
    pub fn backend_info(&self) -> String {
        self.backend.info.clone()
    }

    /// Why this backend runs, in a few words without its name (for a badge): e.g. "the WebGPU
    /// adapter is SwiftShader, a software fallback" when `"auto"` skipped a software adapter,
    /// "no WebGPU adapter", "a hardware WebGPU adapter"; empty when the caller asked for it.
    #[wasm_bindgen(getter, js_name = backendReason)]
    pub fn backend_reason(&self) -> String {
        self.backend.reason.short()
    }

    /// The model type: `vit_h`, `vit_l`, `vit_b`, `mobile_sam` (or `custom`).
    #[wasm_bindgen(getter, js_name = modelType)]
    pub fn model_type(&self) -> String {
        self.sam.model_type.name().into()
    }

    /// Whether an image (or an imported embedding) is set.
    #[wasm_bindgen(getter, js_name = hasImage)]
    pub fn has_image(&self) -> bool {
        self.state.borrow().embedding.is_some()
    }

    /// Width of the current image (0 without one).
    #[wasm_bindgen(getter, js_name = imageWidth)]
    pub fn image_width(&self) -> usize {
        self.state
            .borrow()
            .embedding
            .as_ref()
            .map_or(0, |e| e.original_size.1)
    }

    /// Height of the current image (0 without one).
    #[wasm_bindgen(getter, js_name = imageHeight)]
    pub fn image_height(&self) -> usize {
        self.state
            .borrow()
            .embedding
            .as_ref()
            .map_or(0, |e| e.original_size.0)
    }

    /// Embeds an image given as RGBA bytes (`width * height * 4`, e.g. `ImageData.data`).
    /// Resolves when the embedding is computed.
    #[wasm_bindgen(js_name = setImage)]
    pub async fn set_image(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array | Uint8ClampedArray")] rgba: JsValue,
        width: usize,
        height: usize,
    ) -> Result<(), JsValue> {
        if !rgba.is_instance_of::<Uint8Array>()
            && !rgba.is_instance_of::<js_sys::Uint8ClampedArray>()
        {
            return Err(type_error(
                "setImage(rgba, width, height) takes a Uint8Array or Uint8ClampedArray",
            ));
        }
        let pixels = width.saturating_mul(height);
        if pixels > MAX_IMAGE_PIXELS {
            return Err(js_error(
                &format!(
                    "the image is too large: {width}x{height} is over {MAX_IMAGE_PIXELS} pixels; \
                     scale it down first (SAM works at 1024 pixels on the long side)"
                ),
                Some("RangeError"),
            ));
        }
        let rgba = Uint8Array::new(&rgba).to_vec();
        if rgba.len() != pixels.saturating_mul(4) {
            return Err(type_error(&format!(
                "a {width}x{height} RGBA image has {} bytes, got {}",
                pixels.saturating_mul(4),
                rgba.len()
            )));
        }
        let image =
            RgbImage::from_rgba(width, height, &rgba).map_err(|e| sam_error(SamError::Image(e)))?;
        drop(rgba);
        // On a thread of the pool in the threaded module (see `threads::on_pool`).
        let sam = &self.sam;
        let embedding = crate::threads::on_pool(|| -> Result<_, SamError> {
            let embedding = sam.set_image(&image)?;
            // The decoder's work that does not depend on the prompt, now: the first click
            // then costs what the later ones do.
            sam.prepare_prompts(&embedding)?;
            Ok(embedding)
        })
        .map_err(sam_error)?;
        // The new image replaces the old one before the warm-up, so that the warm-up's
        // buffers take the places in wasm memory the user's clicks will take (the old
        // embedding's memory is free by then, as it is at a click).
        *self.state.borrow_mut() = ImageState {
            embedding: Some(embedding.clone()),
            image: Some(image),
        };
        self.warm_up(&embedding, width, height).await
    }

    /// Decodes a prompt (`{ points?, labels?, box?, maskInput?, multimask? }`, in image
    /// pixels) on the current image: masks at the image size, scores and low-res logits.
    /// `options` (`{ masks?: "all" | "best", lowResLogits?: boolean }`) asks for less: a
    /// hover preview needs the best mask only and no low-res logits.
    #[wasm_bindgen(unchecked_return_type = "PredictResult")]
    pub async fn predict(
        &self,
        #[wasm_bindgen(unchecked_param_type = "PromptInput")] prompt: JsValue,
        #[wasm_bindgen(unchecked_param_type = "PredictOptions | null | undefined")]
        options: JsValue,
    ) -> Result<JsValue, JsValue> {
        let embedding = self.embedding()?;
        let prompt = convert::prompt(&prompt)?;
        let options = convert::predict_options(&options)?;
        self.decode(&embedding, &prompt, options).await
    }

    /// Makes `canvas` (an `OffscreenCanvas` the page transferred to this worker, e.g. from
    /// `transferControlToOffscreen()`) the target of `drawPreview`; `null` drops the current
    /// one. WebGPU backend only (elsewhere a `NotSupportedError`: draw `predict`'s mask, as
    /// on the CPU nothing is read back anyway).
    #[wasm_bindgen(js_name = setPreviewCanvas)]
    pub fn set_preview_canvas(
        &self,
        #[wasm_bindgen(unchecked_param_type = "OffscreenCanvas | null | undefined")]
        canvas: JsValue,
    ) -> Result<(), JsValue> {
        #[cfg(all(feature = "webgpu", target_family = "wasm"))]
        if let Some(setup) = backend::wgpu_setup().filter(|_| self.backend.name == "webgpu") {
            let preview = if canvas.is_null() || canvas.is_undefined() {
                None
            } else {
                let canvas = canvas
                    .dyn_into::<web_sys::OffscreenCanvas>()
                    .map_err(|_| type_error("setPreviewCanvas takes an OffscreenCanvas or null"))?;
                Some(crate::preview::CanvasPreview::new(setup, canvas)?)
            };
            *self.preview.borrow_mut() = preview;
            return Ok(());
        }
        let _ = canvas;
        Err(previews_need_webgpu())
    }

    /// Decodes a prompt (as `predict`'s) and draws its best mask on the preview canvas
    /// (`setPreviewCanvas`) in `color` (`[r, g, b]`, 0-255), as the demo draws a hover preview
    /// (alpha 90 inside, 230 on the edge), without reading anything back: the mask goes from
    /// the decoder's buffer to the canvas on the GPU. Resolves once the GPU has drawn it.
    #[wasm_bindgen(js_name = drawPreview)]
    pub async fn draw_preview(
        &self,
        #[wasm_bindgen(unchecked_param_type = "PromptInput")] prompt: JsValue,
        #[wasm_bindgen(unchecked_param_type = "[number, number, number]")] color: JsValue,
    ) -> Result<(), JsValue> {
        let color = convert::color(&color)?;
        #[cfg(all(feature = "webgpu", target_family = "wasm"))]
        {
            let mut preview = self.take_preview()?;
            let drawn = async {
                let logits = self.preview_logits(&prompt)?;
                preview.draw(Some(logits), color).await
            }
            .await;
            *self.preview.borrow_mut() = Some(preview);
            drawn
        }
        #[cfg(not(all(feature = "webgpu", target_family = "wasm")))]
        {
            let _ = (prompt, color);
            Err(previews_need_webgpu())
        }
    }

    /// Clears the preview canvas (transparent).
    #[wasm_bindgen(js_name = clearPreview)]
    pub async fn clear_preview(&self) -> Result<(), JsValue> {
        #[cfg(all(feature = "webgpu", target_family = "wasm"))]
        {
            let mut preview = self.take_preview()?;
            let cleared = preview.draw(None, [0; 3]).await;
            *self.preview.borrow_mut() = Some(preview);
            cleared
        }
        #[cfg(not(all(feature = "webgpu", target_family = "wasm")))]
        Err(previews_need_webgpu())
    }

    /// Segments everything in the current image (the official automatic mask generator) and
    /// resolves to an SA-1B JSON string (COCO RLE). `onProgress(p)` is called before each
    /// crop and after each batch; returning `false` (or a promise of `false`) cancels with
    /// an `AbortError`.
    #[wasm_bindgen(unchecked_return_type = "string")]
    pub async fn generate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "GenerateOptions | null | undefined")]
        options: JsValue,
        #[wasm_bindgen(
            js_name = onProgress,
            unchecked_param_type = "((p: GenerateProgress) => boolean | void | Promise<boolean | void>) | null | undefined"
        )]
        on_progress: JsValue,
    ) -> Result<JsValue, JsValue> {
        let (options, file_name) = convert::generate_options(&options)?;
        let on_progress = if on_progress.is_undefined() || on_progress.is_null() {
            None
        } else {
            Some(
                on_progress
                    .dyn_into::<js_sys::Function>()
                    .map_err(|_| type_error("onProgress must be a function"))?,
            )
        };
        let embedding = self.embedding()?;
        let image = self.state.borrow().image.clone().ok_or_else(|| {
            js_error(
                "generate() needs the image's pixels: call setImage (an imported embedding \
                 alone is not enough to crop the image)",
                None,
            )
        })?;
        let generator = SamAutomaticMaskGenerator::new(&self.sam, options).map_err(sam_error)?;
        let thrown: RefCell<Option<JsValue>> = RefCell::new(None);
        let result = generator
            .generate_with(&image, Some(&embedding), |p| {
                let call = on_progress
                    .as_ref()
                    .map(|f| f.call1(&JsValue::NULL, &convert::progress_object(p)));
                let thrown = &thrown;
                async move {
                    let value = match call {
                        None => return true,
                        Some(Err(e)) => {
                            *thrown.borrow_mut() = Some(e);
                            return false;
                        }
                        Some(Ok(v)) => v,
                    };
                    let value = if value.is_instance_of::<Promise>() {
                        match JsFuture::from(Promise::from(value)).await {
                            Ok(v) => v,
                            Err(e) => {
                                *thrown.borrow_mut() = Some(e);
                                return false;
                            }
                        }
                    } else {
                        value
                    };
                    value.as_bool() != Some(false)
                }
            })
            .await;
        if let Some(e) = thrown.take() {
            return Err(e);
        }
        let records = result.map_err(sam_error)?;
        let file = records_to_sa1b(
            &records,
            embedding.original_size,
            0,
            &file_name,
            &generator.options,
        )
        .map_err(sam_error)?;
        Ok(sa1b::to_json(&file).into())
    }

    /// The current image's embedding as `.npy` bytes (`[1, 256, 64, 64]` float32).
    #[wasm_bindgen(js_name = exportEmbedding)]
    pub async fn export_embedding(&self) -> Result<Vec<u8>, JsValue> {
        self.embedding()?.to_npy().await.map_err(sam_error)
    }

    /// Sets the current image from an embedding (`.npy` bytes) of a `width x height` image.
    /// `predict` works at once; `generate` needs the pixels (`setImage`). The size is held to
    /// `MAX_IMAGE_PIXELS` like `setImage`'s (an `ImageError`).
    #[wasm_bindgen(js_name = importEmbedding)]
    pub fn import_embedding(&self, npy: &[u8], width: usize, height: usize) -> Result<(), JsValue> {
        let embedding =
            ImageEmbedding::from_npy(npy, (height, width), self.sam.device()).map_err(sam_error)?;
        self.sam.prepare_prompts(&embedding).map_err(sam_error)?;
        *self.state.borrow_mut() = ImageState {
            embedding: Some(embedding),
            image: None,
        };
        Ok(())
    }

    /// Drops the current image and its embedding.
    #[wasm_bindgen(js_name = clearImage)]
    pub fn clear_image(&self) {
        *self.state.borrow_mut() = ImageState::default();
    }
}

impl Segmenter {
    /// `predict`'s work on a checked prompt: decodes it, reads the masks, scores and (when
    /// asked) low-res logits back in one transaction (one GPU round trip on WebGPU) and
    /// makes the JS `PredictResult`.
    async fn decode(
        &self,
        embedding: &ImageEmbedding,
        prompt: &sam_core::Prompt,
        options: convert::PredictOptions,
    ) -> Result<JsValue, JsValue> {
        // On a thread of the pool in the threaded module, as the embedding (`threads::on_pool`):
        // called from here, each of the decoder's parallel operations woke the pool and put
        // this thread to sleep, and the operations between them ran here while the pool slept.
        let sam = &self.sam;
        let pred = crate::threads::on_pool(|| sam.predict_masks(embedding, prompt, options.masks))
            .map_err(sam_error)?;
        let host = read_prediction(pred, options.low_res_logits)
            .await
            .map_err(sam_error)?;
        Ok(convert::predict_result(
            embedding.original_size,
            &host.masks,
            &host.scores,
            host.low_res_logits.as_deref(),
        ))
    }

    /// Warm-up clicks at the centre of a `width x height` image, made through `predict`'s
    /// own path (JS result included) and dropped, so that the user's first click costs what
    /// the later ones do: the click's buffers are allocated (wasm memory grown, pages
    /// touched), and the engine has compiled what a click runs. Both requests the demo makes
    /// are warmed: a click (all masks and the low-res logits) and a hover preview (the best
    /// mask only). Two decodes also give V8 the second call it needs: it compiles a function
    /// lazily with its baseline compiler (Liftoff) and swaps in the optimised (TurboFan)
    /// code only at a later call, after the function has used its tiering budget; with one
    /// warm-up decode the decoder's largest functions (burn's `unary_op`, the block_on
    /// future) were still baseline code at the user's first click. On WebGPU the second
    /// request compiles the hover's own kernels (argmax, gather) before the first hover.
    /// The readback waits for the device, so `setImage` resolves once the embedding exists.
    async fn warm_up(
        &self,
        embedding: &ImageEmbedding,
        width: usize,
        height: usize,
    ) -> Result<(), JsValue> {
        let centre = sam_core::Prompt {
            points: vec![[width as f32 / 2.0, height as f32 / 2.0]],
            labels: vec![1],
            multimask_output: true,
            ..Default::default()
        };
        let hover = convert::PredictOptions {
            masks: MaskChoice::Best,
            low_res_logits: false,
        };
        for options in [convert::PredictOptions::default(), hover] {
            self.decode(embedding, &centre, options).await?;
        }
        Ok(())
    }

    /// The preview canvas, taken out while a draw awaits the GPU.
    #[cfg(all(feature = "webgpu", target_family = "wasm"))]
    fn take_preview(&self) -> Result<crate::preview::CanvasPreview, JsValue> {
        if self.backend.name != "webgpu" {
            return Err(previews_need_webgpu());
        }
        self.preview.borrow_mut().take().ok_or_else(|| {
            js_error(
                "no preview canvas: call setPreviewCanvas first (or a draw is in progress)",
                Some("InvalidStateError"),
            )
        })
    }

    fn embedding(&self) -> Result<ImageEmbedding, JsValue> {
        self.state.borrow().embedding.clone().ok_or_else(|| {
            js_error(
                "no image: call setImage (or importEmbedding) first",
                Some("InvalidStateError"),
            )
        })
    }

    /// The logits of `prompt`'s best mask on the device (`[1, 1, H, W]`), as `drawPreview`
    /// paints them (for tests and Rust callers).
    pub fn preview_logits(&self, prompt: &JsValue) -> Result<burn::tensor::Tensor<4>, JsValue> {
        let embedding = self.embedding()?;
        let prompt = convert::prompt(prompt)?;
        let sam = &self.sam;
        let pred =
            crate::threads::on_pool(|| sam.predict_masks(&embedding, &prompt, MaskChoice::Best))
                .map_err(sam_error)?;
        Ok(pred.logits)
    }

    /// The model (for tests and Rust callers).
    pub fn sam(&self) -> &Sam {
        &self.sam
    }
}

/// `setPreviewCanvas` and `drawPreview` off the WebGPU backend.
fn previews_need_webgpu() -> JsValue {
    js_error(
        "previews drawn on the GPU need the WebGPU backend; draw predict()'s mask instead",
        Some("NotSupportedError"),
    )
}

/// Refuses a model that does not fit the backend, before any weight is copied: the estimate
/// comes from the checkpoint's directory alone (`sam_core::memory`). On the CPU backend the
/// weights and activations must fit in what wasm32's 4 GiB leaves beside the memory already
/// grown (counted whole: freed blocks inside it are not known here, so a model loaded beside
/// another is judged conservatively); on WebGPU every tensor must fit the adapter's largest
/// buffer. A refusal is an `Error` named `ModelTooLargeError` whose message names the model,
/// the memory it needs and what to do.
fn check_memory(source: &dyn ByteSource, backend: &Backend) -> Result<(), JsValue> {
    let ckpt = Checkpoint::from_source(source).map_err(|e| sam_error(e.into()))?;
    let estimate = MemoryEstimate::of(&ckpt).map_err(sam_error)?;
    let limits = match sam_core::amg::max_buffer_bytes(&backend.device) {
        Some(max_buffer) => MemoryLimits::Gpu {
            max_buffer,
            total: None,
        },
        None => MemoryLimits::Cpu {
            available: cpu_memory_available(),
        },
    };
    estimate
        .check(limits)
        .map_err(|e| js_error(&e.to_string(), Some("ModelTooLargeError")))
}

/// Bytes the wasm32 heap can still grow by: 4 GiB less the linear memory already grown (the
/// test hook `setMemoryLimit` lowers the 4 GiB).
fn cpu_memory_available() -> u64 {
    let limit = MEMORY_LIMIT
        .get()
        .unwrap_or(sam_core::memory::WASM32_MAX_MEMORY);
    #[cfg(target_arch = "wasm32")]
    let grown = core::arch::wasm32::memory_size(0) as u64 * 65536;
    #[cfg(not(target_arch = "wasm32"))]
    let grown = 0u64;
    limit.saturating_sub(grown)
}

thread_local! {
    static MEMORY_LIMIT: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Tests only: the CPU backend's memory limit in bytes, in place of wasm32's 4 GiB (`null`
/// restores it), so that the refusal path of `Segmenter.create` can be driven with a small
/// model. Not part of the npm package's API.
#[wasm_bindgen(js_name = setMemoryLimit)]
pub fn set_memory_limit(bytes: Option<f64>) {
    MEMORY_LIMIT.set(bytes.map(|b| b.max(0.0) as u64));
}
