//! Helpers shared by the examples (a folder, so that cargo does not take it for an example).

#![allow(dead_code)]

use sam_core::preprocess::RgbImage;

/// The value after `name` on the command line (`--runs 3`).
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// A file of the reference kit (`SAM_REFERENCE_DIR`, else `../shared/reference`).
pub fn reference(name: &str) -> Vec<u8> {
    let dir = std::env::var("SAM_REFERENCE_DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/reference").to_string()
    });
    std::fs::read(format!("{dir}/{name}")).expect("reference kit file")
}

/// Whether the flag `name` is on the command line.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// The synthetic test image (gradients and flat shapes), RGB, `width` x `height`.
pub fn synthetic_image(width: usize, height: usize) -> RgbImage {
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let (u, v) = (x as f32 / width as f32, y as f32 / height as f32);
            let disc = (u - 0.65).powi(2) + (v - 0.4).powi(2) < 0.03;
            let rect = (0.1..0.4).contains(&u) && (0.55..0.85).contains(&v);
            let px = if disc {
                [230, 40, 40]
            } else if rect {
                [30, 200, 60]
            } else {
                [
                    (40.0 + 180.0 * u) as u8,
                    (30.0 + 200.0 * v) as u8,
                    (200.0 - 150.0 * u * v) as u8,
                ]
            };
            data.extend_from_slice(&px);
        }
    }
    RgbImage::new(width, height, data).expect("image")
}
