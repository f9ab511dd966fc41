//! Hover previews drawn by the GPU (issue 16): an `OffscreenCanvas` the page transferred to
//! the worker becomes a WebGPU surface of the model's own device, and `drawPreview` paints the
//! decoder's mask logits on it where they were computed (`sam_core::preview::MaskPainter`).
//! No byte comes back to wasm memory or JS: the only wait is for the GPU to finish the frame.

use burn::tensor::Tensor;
use sam_core::preview::{GpuBuffer, MaskPainter, WgpuSetup, gpu_buffer, wgpu};
use wasm_bindgen::prelude::*;
use web_sys::OffscreenCanvas;

use crate::error::{js_error, sam_error};

/// A canvas of the page, drawn on by the model's WebGPU device.
pub struct CanvasPreview {
    setup: WgpuSetup,
    surface: wgpu::Surface<'static>,
    painter: MaskPainter,
    config: wgpu::SurfaceConfiguration,
    /// The size the surface is configured at (`None`: not yet).
    configured: Option<(u32, u32)>,
}

fn gpu_error(what: &str, e: impl std::fmt::Display) -> JsValue {
    js_error(&format!("{what}: {e}"), Some("GpuError"))
}

impl CanvasPreview {
    /// A WebGPU surface on `canvas` for the device of `setup`.
    pub fn new(setup: WgpuSetup, canvas: OffscreenCanvas) -> Result<Self, JsValue> {
        let surface = setup
            .instance
            .create_surface(wgpu::SurfaceTarget::OffscreenCanvas(canvas))
            .map_err(|e| gpu_error("the preview canvas has no WebGPU context", e))?;
        let mut config = surface
            .get_default_config(&setup.adapter, 1, 1)
            .ok_or_else(|| gpu_error("the preview canvas", "the adapter cannot draw on it"))?;
        // Transparent where there is no mask: the canvas lies over the image.
        config.alpha_mode = wgpu::CompositeAlphaMode::PreMultiplied;
        let painter = MaskPainter::new(&setup.device, config.format);
        Ok(Self {
            setup,
            surface,
            painter,
            config,
            configured: None,
        })
    }

    /// Draws `logits` (`[1, 1, H, W]`, a prediction's best mask) in `color`, the canvas
    /// resized to `W x H`; with `None`, clears the canvas. Resolves when the GPU has drawn it.
    pub async fn draw(&mut self, logits: Option<Tensor<4>>, color: [u8; 3]) -> Result<(), JsValue> {
        let scope = self
            .setup
            .device
            .push_error_scope(wgpu::ErrorFilter::Validation);
        let submitted = self.submit(logits, color);
        let (done, finished) = futures_channel::oneshot::channel();
        self.setup.queue.on_submitted_work_done(move || {
            let _ = done.send(());
        });
        if let Some(e) = scope.pop().await {
            return Err(gpu_error("drawing the preview", e));
        }
        let values = submitted?;
        // The GPU has drawn the frame (and read the logits: their buffer may be reused now).
        let _ = finished.await;
        drop(values);
        Ok(())
    }

    /// [`Self::draw`]'s work up to its submission, without waiting. Returns the logits'
    /// buffer, which must be held until the GPU has drawn it.
    fn submit(
        &mut self,
        logits: Option<Tensor<4>>,
        color: [u8; 3],
    ) -> Result<Option<GpuBuffer>, JsValue> {
        let values = match logits {
            Some(t) => {
                let [_, _, h, w] = t.dims();
                let size = (
                    u32::try_from(w).map_err(|_| gpu_error("the preview", "too wide"))?,
                    u32::try_from(h).map_err(|_| gpu_error("the preview", "too tall"))?,
                );
                let values = gpu_buffer(t).map_err(sam_error)?.ok_or_else(|| {
                    gpu_error("the preview", "the mask is not on the WebGPU device")
                })?;
                Some((values, size))
            }
            None => None,
        };
        let device = &self.setup.device;
        if let Some((_, size)) = &values
            && self.configured != Some(*size)
        {
            let limit = device.limits().max_texture_dimension_2d;
            if size.0 > limit || size.1 > limit {
                return Err(gpu_error(
                    "the preview",
                    format!(
                        "{}x{} is over the adapter's {limit} pixels a side",
                        size.0, size.1
                    ),
                ));
            }
            (self.config.width, self.config.height) = *size;
            self.surface.configure(device, &self.config);
            self.configured = Some(*size);
        }
        if self.configured.is_none() {
            // Nothing was ever drawn: nothing to clear.
            return Ok(None);
        }
        let frame = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(f)
            | wgpu::CurrentSurfaceTexture::Suboptimal(f) => f,
            other => return Err(gpu_error("the preview canvas", format!("{other:?}"))),
        };
        let view = frame.texture.create_view(&Default::default());
        self.painter
            .paint(
                device,
                &self.setup.queue,
                &view,
                values.as_ref().map(|(v, (w, h))| (v, *w, *h)),
                color,
            )
            .map_err(sam_error)?;
        self.setup.queue.present(frame);
        Ok(values.map(|(v, _)| v))
    }
}
