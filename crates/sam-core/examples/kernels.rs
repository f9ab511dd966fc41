//! Times the CPU backend's host kernels (`modeling::cpu`) on the shapes of a MobileSAM click
//! and embedding, each on its own: GELU, softmax, the matrix products of the decoder (rows x
//! depth x columns) and the encoder's convolutions. Prints the median and best time of each
//! and, for products, the multiply-adds per second of the best. Meant for WebAssembly, where
//! our own matrix kernel runs (see BENCHMARKS.md):
//!
//! ```text
//! cargo build --release --target wasm32-wasip1 -p sam-core --no-default-features \
//!   --features flex --example kernels
//! node --no-warnings scripts/wasi-run.mjs \
//!   $CARGO_TARGET_DIR/wasm32-wasip1/release/examples/kernels.wasm
//! ```
//! `node scripts/chrome-wasi.mjs` instead of `scripts/wasi-run.mjs` runs it in headless
//! Chromium's V8, which compiles the kernels as the page gets them (Node's V8 is older).
//! Natively: `cargo run --release -p sam-core --example kernels` (all cores).

use sam_core::modeling::cpu;
use std::time::Instant;

/// Runs `f` once to warm up, then `n` times; prints the median and the best.
fn time(name: &str, n: usize, macs: f64, mut f: impl FnMut()) {
    f();
    let mut v = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        f();
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let g = if macs > 0.0 {
        format!(" {:.1} GMAC/s", macs / v[0] / 1e6)
    } else {
        String::new()
    };
    println!("{name}: median {:.3} ms min {:.3}{g}", v[v.len() / 2], v[0]);
}
/// `n` deterministic values in [-2, 2).
fn vals(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
        .collect()
}
fn main() {
    let mut x = vals(3_145_728);
    time("gelu 3.1M", 20, 0.0, || cpu::gelu_in_place(&mut x));
    let mut s = vals(229_376);
    time("softmax rows of 7 x32768", 20, 0.0, || {
        cpu::softmax_rows(&mut s, 7)
    });
    time("softmax rows of 4096 x56", 20, 0.0, || {
        cpu::softmax_rows(&mut s, 4096)
    });
    // ViT-B's attention cores: a global block (one 64x64 window) and a windowed one (14).
    for (window, what) in [(64, "global"), (14, "windows of 14")] {
        let (heads, hd) = (12, 64);
        let qkv = vals(64 * 64 * 3 * heads * hd);
        let (pad, table) = (vals(3 * heads * hd), vals(window * window * hd));
        let a = cpu::WindowAttention {
            heads,
            key_dim: hd,
            val_dim: hd,
            window,
            batch: 1,
            height: 64,
            width: 64,
            scale: 0.125,
            layout: cpu::QkvLayout::Split,
        };
        let n = window * window;
        let queries = 64 * 64 * heads;
        time(
            &format!("vit_b attention, {what}"),
            3,
            // In f64: the global block's 25.8 G overflows wasm32's usize.
            2.0 * (queries * n) as f64 * hd as f64,
            || {
                let bias = cpu::AttentionBias::RelPos {
                    h: &table,
                    w: &table,
                };
                std::hint::black_box(cpu::window_attention(&qkv, &pad, bias, a));
            },
        );
    }
    // (rows, depth, columns, with the model's bias and GELU): ViT-B's qkv, MLP and projection
    // (its MLP's fc1 has the GELU) both bare and as the model runs them.
    for (m, k, n, model) in [
        (4096, 256, 256, false),
        (16384, 64, 128, false),
        (65536, 32, 4, false),
        (4096, 256, 56, false),
        (4096, 56, 256, false),
        (56, 256, 2048, false),
        (56, 2048, 256, false),
        (4096, 768, 2304, false),
        (4096, 768, 3072, false),
        (4096, 768, 3072, true),
        (4096, 3072, 768, false),
        (4096, 768, 768, false),
    ] {
        let a = vals(m * k);
        let w = vals(k * n);
        let bias = vals(n);
        let (bias, gelu, what) = if model {
            (Some(&bias[..]), n == 3072, " with bias and GELU")
        } else {
            (None, false, "")
        };
        time(
            &format!("linear {m}x{k}x{n}{what}"),
            20,
            // In f64: ViT-B's MLP (9.7 G) overflows wasm32's usize.
            m as f64 * k as f64 * n as f64,
            || {
                std::hint::black_box(cpu::linear(&a, &w, bias, (k, n), gelu));
            },
        );
    }
    for (ci, co, hw, k, st) in [
        (64usize, 256usize, 256usize, 1usize, 1usize),
        (256, 64, 256, 1, 1),
        (3, 32, 1024, 3, 2),
        (32, 64, 512, 3, 2),
        (128, 128, 128, 3, 2),
        (256, 256, 64, 3, 1),
    ] {
        let x = vals(ci * hw * hw);
        let w = vals(co * ci * k * k);
        let c = cpu::Conv {
            batch: 1,
            c_in: ci,
            height: hw,
            width: hw,
            c_out: co,
            kernel: k,
            stride: st,
            padding: k / 2,
        };
        let (oh, ow) = c.out_hw();
        time(
            &format!("conv {ci}->{co} k{k} s{st} at {hw}"),
            10,
            (co * ci * k * k * oh * ow) as f64,
            || {
                std::hint::black_box(cpu::conv2d(&x, &w, None, c, false));
            },
        );
    }
    for (ch, hw, st, gelu) in [(256usize, 256usize, 1usize, true), (128, 128, 2, true)] {
        let x = vals(ch * hw * hw);
        let w = vals(ch * 9);
        let bias = vals(ch);
        let d = cpu::Depthwise {
            channels: ch,
            height: hw,
            width: hw,
            kernel: 3,
            stride: st,
            padding: 1,
        };
        let (oh, ow) = d.out_hw();
        time(
            &format!("depthwise {ch} k3 s{st} at {hw} gelu {gelu}"),
            10,
            (ch * 9 * oh * ow) as f64,
            || {
                std::hint::black_box(cpu::depthwise_conv2d(&x, &w, &bias, d, gelu));
            },
        );
    }
    let a = vals(56 * 4096);
    let b = vals(4096 * 256);
    time("matmul 56x4096x256", 20, (56 * 4096 * 256) as f64, || {
        std::hint::black_box(cpu::batched_matmul(
            (&a, &[56, 4096]),
            (&b, &[4096, 256], false),
            1.0,
        ));
    });
    let a = vals(56 * 256);
    time("matmul_t 56x256x4096", 20, (56 * 4096 * 256) as f64, || {
        std::hint::black_box(cpu::batched_matmul(
            (&a, &[56, 256]),
            (&b, &[4096, 256], true),
            1.0,
        ));
    });
}
