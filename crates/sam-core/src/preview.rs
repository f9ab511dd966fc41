//! A mask drawn by the GPU where it was computed (issue 16): on a wgpu device, a prediction's
//! mask logits are painted into a texture (a canvas's, in the page) by a render pass that reads
//! them from the decoder's own buffer. Nothing comes back to the host: a hover preview costs no
//! readback.
//!
//! - [`gpu_buffer`] finds the wgpu buffer behind an f32 tensor, with the work that computes it
//!   submitted to the device's queue.
//! - [`MaskPainter`] draws `logits > 0` as the demo's 2D canvas does (`web/render.ts`,
//!   `paintMask`): the object's colour at alpha 90/255 inside, 230/255 on its edge (a pixel of
//!   the mask with a 4-neighbour outside it, or on the image's border), premultiplied, and
//!   transparent outside.

use burn::tensor::{DType, Tensor};
#[cfg(feature = "fusion")]
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl::wgpu::{AutoCompiler, WgpuResource, WgpuServer};
use burn_cubecl::{CubeDevice, kernel::into_contiguous, tensor::CubeTensor};
pub use burn_dispatch::devices::wgpu::{WgpuSetup, wgpu};
use cubecl_runtime::storage::ManagedResource;

use crate::{Result, SamError};

/// An f32 tensor's values, row-major, in a buffer of its wgpu device. Held, it keeps the
/// allocation in place: the runtime hands that memory to no other tensor meanwhile.
pub struct GpuBuffer {
    resource: ManagedResource<WgpuResource>,
    len: usize,
}

impl GpuBuffer {
    /// The buffer holding the values.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.resource.resource().buffer
    }

    /// Where the values start in [`Self::buffer`], in bytes.
    pub fn offset(&self) -> u64 {
        self.resource.resource().offset
    }

    /// How many f32 values there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The wgpu buffer behind `t` (made f32 and contiguous first if it is not), once the work that
/// computes it has been submitted to the device's queue: commands submitted to that queue
/// afterwards read its values. `None` when `t` is not on a wgpu device.
pub fn gpu_buffer<const D: usize>(t: Tensor<D>) -> Result<Option<GpuBuffer>> {
    let t = if t.dtype() == DType::F32 {
        t
    } else {
        t.cast(DType::F32)
    };
    let len = t.shape().num_elements();
    let Ok(primitive) = t.try_into_primitive::<burn_dispatch::backends::Cube>() else {
        return Ok(None);
    };
    #[cfg(feature = "fusion")]
    let tensor: CubeTensor = primitive
        .client
        .clone()
        .resolve_tensor_float::<CubeBackend>(primitive);
    #[cfg(not(feature = "fusion"))]
    let tensor: CubeTensor = primitive;
    #[allow(unreachable_patterns)]
    if !matches!(tensor.device, CubeDevice::Wgpu(_)) {
        return Ok(None);
    }
    let tensor = if tensor.is_contiguous() {
        tensor
    } else {
        into_contiguous(tensor)
    };
    let backend =
        |e: &dyn std::fmt::Debug| SamError::Backend(format!("a mask's GPU buffer: {e:?}"));
    let resource = tensor
        .client
        .get_resource::<WgpuServer<AutoCompiler>>(tensor.handle.clone())
        .map_err(|e| backend(&e))?;
    tensor.client.flush().map_err(|e| backend(&e))?;
    Ok(Some(GpuBuffer { resource, len }))
}

/// The render pipeline that paints a mask's logits (see the module's doc) into a texture of one
/// format.
pub struct MaskPainter {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    params: wgpu::Buffer,
}

/// The shader's parameters: the mask's width and height, then the colour (rgb in 0..1).
const PARAMS_BYTES: u64 = 32;

const SHADER: &str = r#"
struct Params { size: vec2<u32>, pad: vec2<u32>, color: vec4<f32> }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;

@vertex
fn vs(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    // One triangle covering the target.
    let p = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    return vec4<f32>(p * 2.0 - 1.0, 0.0, 1.0);
}

fn inside(x: i32, y: i32) -> bool {
    return logits[u32(y) * params.size.x + u32(x)] > 0.0;
}

@fragment
fn fs(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let x = i32(pos.x);
    let y = i32(pos.y);
    let w = i32(params.size.x);
    let h = i32(params.size.y);
    if (x >= w || y >= h || !inside(x, y)) {
        return vec4<f32>(0.0);
    }
    let edge = x == 0 || y == 0 || x == w - 1 || y == h - 1
        || !inside(x - 1, y) || !inside(x + 1, y) || !inside(x, y - 1) || !inside(x, y + 1);
    let a = select(90.0, 230.0, edge) / 255.0;
    return vec4<f32>(params.color.rgb * a, a);
}
"#;

impl MaskPainter {
    /// The pipeline for targets of `format` on `device`.
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("sam mask painter"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let entry = |binding, ty| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Buffer {
                ty,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("sam mask painter"),
            entries: &[
                entry(0, wgpu::BufferBindingType::Uniform),
                entry(1, wgpu::BufferBindingType::Storage { read_only: true }),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("sam mask painter"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("sam mask painter"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs"),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState {
                    format,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            primitive: Default::default(),
            depth_stencil: None,
            multisample: Default::default(),
            multiview_mask: None,
            cache: None,
        });
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("sam mask painter"),
            size: PARAMS_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self {
            pipeline,
            layout,
            params,
        }
    }

    /// Submits to `queue` the drawing of `logits` (`[height, width]` f32, row-major, as
    /// [`gpu_buffer`] gives a prediction's `[1, 1, H, W]` logits) into `target`, whose size is
    /// `width x height`, in `color`; with `logits` `None`, clears `target` (transparent).
    pub fn paint(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        target: &wgpu::TextureView,
        logits: Option<(&GpuBuffer, u32, u32)>,
        color: [u8; 3],
    ) -> Result<()> {
        let bind_group = match logits {
            Some((values, width, height)) => {
                if values.len() != width as usize * height as usize {
                    return Err(SamError::Input(format!(
                        "a mask of {} values drawn as {width}x{height}",
                        values.len()
                    )));
                }
                let mut params = [0u8; PARAMS_BYTES as usize];
                params[0..4].copy_from_slice(&width.to_le_bytes());
                params[4..8].copy_from_slice(&height.to_le_bytes());
                for (i, c) in color.into_iter().enumerate() {
                    let at = 16 + 4 * i;
                    params[at..at + 4].copy_from_slice(&(c as f32 / 255.0).to_le_bytes());
                }
                queue.write_buffer(&self.params, 0, &params);
                Some(device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("sam mask painter"),
                    layout: &self.layout,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: self.params.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: values.buffer(),
                                offset: values.offset(),
                                size: wgpu::BufferSize::new(values.len() as u64 * 4),
                            }),
                        },
                    ],
                }))
            }
            None => None,
        };
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("sam mask painter"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: target,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                ..Default::default()
            });
            if let Some(bind_group) = &bind_group {
                pass.set_pipeline(&self.pipeline);
                pass.set_bind_group(0, bind_group, &[]);
                pass.draw(0..3, 0..1);
            }
        }
        queue.submit([encoder.finish()]);
        Ok(())
    }
}

/// A `width x height` `Rgba8Unorm` texture to paint into and read back (tests and tools; the
/// page paints into its canvas's texture instead).
pub fn rgba8_target(device: &wgpu::Device, width: u32, height: u32) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some("sam mask painter target"),
        size: wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    })
}

/// The pixels of an [`rgba8_target`], row-major RGBA bytes, read back (tests and tools).
pub async fn read_rgba8(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    texture: &wgpu::Texture,
) -> Result<Vec<u8>> {
    let (w, h) = (texture.width() as usize, texture.height() as usize);
    let row = (w * 4).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as usize);
    let read = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("sam mask painter readback"),
        size: (row * h) as u64,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &read,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(row as u32),
                rows_per_image: None,
            },
        },
        texture.size(),
    );
    queue.submit([encoder.finish()]);
    let (done, mapped) = futures_channel::oneshot::channel();
    read.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = done.send(r);
    });
    // Natively the callback runs from a poll; in the browser, when the GPU is done.
    #[cfg(not(target_family = "wasm"))]
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| SamError::Backend(format!("waiting for the GPU: {e}")))?;
    mapped
        .await
        .map_err(|_| SamError::Backend("the readback was dropped".into()))?
        .map_err(|e| SamError::Backend(format!("mapping the readback: {e}")))?;
    let bytes = read
        .slice(..)
        .get_mapped_range()
        .map_err(|e| SamError::Backend(format!("the readback's bytes: {e:?}")))?;
    Ok((0..h)
        .flat_map(|y| bytes[y * row..][..w * 4].to_vec())
        .collect())
}
