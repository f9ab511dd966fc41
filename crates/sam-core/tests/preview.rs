//! The GPU's mask painter (`sam_core::preview`) against the demo's 2D canvas rule, on wgpu
//! (Mesa lavapipe on CI machines; `SAM_SKIP_WGPU=1` skips it): mask logits painted into a
//! texture, read back here, pixel by pixel. Its own test binary: it starts the wgpu runtime
//! with its setup (the handles the painter needs), which a binary can do once.
#![cfg(feature = "wgpu")]

use burn::tensor::{Device, Tensor, TensorData};
use sam_core::preview::{MaskPainter, WgpuSetup, gpu_buffer, read_rgba8, rgba8_target};

/// The rule of `web/render.ts` `paintMask` (outline on): `color` at alpha 90 inside, 230 on
/// the edge (a 4-neighbour outside, or the image border), nothing outside; premultiplied.
fn expected(inside: &[bool], w: usize, h: usize, color: [u8; 3]) -> Vec<[f32; 4]> {
    let at = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < w
            && (y as usize) < h
            && inside[y as usize * w + x as usize]
    };
    let mut out = vec![[0.0; 4]; w * h];
    for y in 0..h as isize {
        for x in 0..w as isize {
            if !at(x, y) {
                continue;
            }
            let edge = !at(x - 1, y) || !at(x + 1, y) || !at(x, y - 1) || !at(x, y + 1);
            let a = if edge { 230.0 } else { 90.0 } / 255.0;
            let c = |i: usize| color[i] as f32 / 255.0 * a * 255.0;
            out[y as usize * w + x as usize] = [c(0), c(1), c(2), a * 255.0];
        }
    }
    out
}

/// Paints `logits` (`[1, 1, h, w]`) into a fresh `w x h` RGBA texture and reads it back.
fn paint(setup: &WgpuSetup, logits: Option<Tensor<4>>, w: u32, h: u32, color: [u8; 3]) -> Vec<u8> {
    let texture = rgba8_target(&setup.device, w, h);
    let view = texture.create_view(&Default::default());
    let painter = MaskPainter::new(&setup.device, texture.format());
    let values = logits.map(|t| gpu_buffer(t).unwrap().expect("a wgpu tensor has a buffer"));
    painter
        .paint(
            &setup.device,
            &setup.queue,
            &view,
            values.as_ref().map(|v| (v, w, h)),
            color,
        )
        .unwrap();
    pollster::block_on(read_rgba8(&setup.device, &setup.queue, &texture)).unwrap()
}

#[test]
fn painted_masks_follow_the_canvas_rule() {
    if std::env::var("SAM_SKIP_WGPU").is_ok() {
        return;
    }
    let (device, setup) = Device::wgpu_options()
        .init_with_setup()
        .expect("no wgpu adapter: install mesa-vulkan-drivers or set SAM_SKIP_WGPU=1");
    let (w, h) = (53usize, 37usize);
    // Blobs, holes, pixels exactly at the threshold (0: outside) and the borders touched.
    let logits: Vec<f32> = (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as f32, (i / w) as f32);
            let v = (x * 0.31).sin() + (y * 0.23).cos() - 0.4;
            if i % 17 == 0 { 0.0 } else { v }
        })
        .collect();
    let inside: Vec<bool> = logits.iter().map(|&v| v > 0.0).collect();
    let color = [250, 120, 7];
    let want = expected(&inside, w, h, color);
    let tensor = Tensor::<4>::from_data(TensorData::new(logits.clone(), [1, 1, h, w]), &device);
    // The same values laid out transposed: the painter gets a contiguous copy.
    let transposed: Vec<f32> = (0..w * h).map(|i| logits[(i % h) * w + i / h]).collect();
    let strided =
        Tensor::<4>::from_data(TensorData::new(transposed, [1, 1, w, h]), &device).swap_dims(2, 3);
    for (what, t) in [("contiguous", tensor), ("transposed", strided)] {
        let got = paint(&setup, Some(t), w as u32, h as u32, color);
        for (i, (g, e)) in got.chunks(4).zip(&want).enumerate() {
            for c in 0..4 {
                assert!(
                    (g[c] as f32 - e[c]).abs() <= 1.0,
                    "{what}: pixel ({}, {}) channel {c}: {} vs {}",
                    i % w,
                    i / w,
                    g[c],
                    e[c]
                );
            }
        }
    }
    // Without logits: cleared, transparent.
    let cleared = paint(&setup, None, w as u32, h as u32, color);
    assert!(cleared.iter().all(|&b| b == 0));
    // A tensor on the CPU backend has no GPU buffer.
    let cpu = Tensor::<4>::zeros([1, 1, 2, 2], &Device::flex());
    assert!(gpu_buffer(cpu).unwrap().is_none());
}
