//! Hostile and careless input: malformed checkpoints go through `Sam::from_bytes` and, when
//! they build, one `set_image`, and must give a typed error, never a panic; every size taken
//! from input (RLE masks, SA-1B files, AMG options, embedding files, zip entries) has a limit
//! that is refused before anything of that size is allocated.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::tensor::Device;
use common::*;
use safetensors::tensor::{Dtype, TensorView};
use sam_core::amg::{AmgOptions, MAX_GRID_POINTS, MAX_POINTS_PER_BATCH, MAX_POINTS_PER_SIDE};
use sam_core::io::checkpoint::{Checkpoint, CheckpointError};
use sam_core::io::npy::{self, NpyError};
use sam_core::io::rle::{CocoRle, MAX_MASK_PIXELS, Rle, RleError};
use sam_core::io::sa1b::{self, MAX_ANNOTATIONS, MAX_JSON_BYTES, Sa1bError};
use sam_core::preprocess::{ImageError, MAX_IMAGE_PIXELS, RgbImage};
use sam_core::{ImageEmbedding, Sam, SamError};

/// One tensor of a checkpoint being rewritten: name, shape, dtype and little-endian bytes.
#[derive(Clone)]
struct T {
    name: String,
    shape: Vec<usize>,
    dtype: Dtype,
    data: Vec<u8>,
}

/// Every tensor of a reference checkpoint (floats as f32, integers as i64).
fn tensors(file: &str) -> Vec<T> {
    let bytes = read(file);
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    ckpt.keys()
        .map(|k| {
            let info = ckpt.info(k).unwrap();
            let (dtype, data) = if info.dtype.is_float() {
                let v = ckpt.read_f32(k).unwrap();
                (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect())
            } else {
                let v = ckpt.read_i64(k).unwrap();
                (Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect())
            };
            T {
                name: k.to_string(),
                shape: info.shape.clone(),
                dtype,
                data,
            }
        })
        .collect()
}

fn serialize(ts: &[T]) -> Vec<u8> {
    let views: Vec<(String, TensorView)> = ts
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                TensorView::new(t.dtype, t.shape.clone(), &t.data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// `name` reshaped to `shape` (f32 zeros).
fn reshape(ts: &mut [T], name: &str, shape: &[usize]) {
    let t = ts
        .iter_mut()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no {name}"));
    t.shape = shape.to_vec();
    t.dtype = Dtype::F32;
    t.data = vec![0; shape.iter().product::<usize>() * 4];
}

fn remove(ts: &mut Vec<T>, name: &str) {
    let n = ts.len();
    ts.retain(|t| t.name != name);
    assert_eq!(ts.len(), n - 1, "no {name}");
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// `Sam::from_bytes` fails with `SamError::ModelType`.
    ModelType,
    /// `Sam::from_bytes` fails with `SamError::Checkpoint`.
    Checkpoint,
    /// The model builds and one `set_image` works.
    Runs,
}

type Mutation = Box<dyn Fn(&mut Vec<T>)>;

fn run_cases(base: &[T], cases: Vec<(&str, Mutation, Expect)>) {
    let device = Device::flex();
    let image = RgbImage::new(48, 32, (0..48 * 32 * 3).map(|i| (i % 251) as u8).collect()).unwrap();
    let mut failures = Vec::new();
    for (name, mutate, expect) in cases {
        let mut ts = base.to_vec();
        mutate(&mut ts);
        let bytes = serialize(&ts);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            match Sam::from_bytes(&bytes, None, &device) {
                Ok(sam) => sam.set_image(&image).map(|_| ()),
                Err(e) => Err(e),
            }
        }));
        let ok = match (&outcome, expect) {
            (Err(_), _) => false,
            (Ok(Ok(())), Expect::Runs) => true,
            (Ok(Err(SamError::ModelType(_))), Expect::ModelType) => true,
            (Ok(Err(SamError::Checkpoint(_))), Expect::Checkpoint) => true,
            _ => false,
        };
        let what = match &outcome {
            Err(_) => "PANIC".to_string(),
            Ok(Ok(())) => "built and embedded".to_string(),
            Ok(Err(e)) => format!("{e}"),
        };
        println!("{name}: {what}");
        if !ok {
            failures.push(format!("{name}: expected {expect:?}, got {what}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

fn case<F: Fn(&mut Vec<T>) + 'static>(
    name: &'static str,
    f: F,
    expect: Expect,
) -> (&'static str, Mutation, Expect) {
    (name, Box::new(f), expect)
}

const E: &str = "image_encoder.";

#[test]
fn malformed_vit_checkpoints_never_panic() {
    use Expect::*;
    let base = tensors(&format!("{}.safetensors", tiny_tag()));
    let key = |k: &str| format!("{E}{k}");
    let cases = vec![
        case("unchanged", |_| {}, Runs),
        case(
            "zero-size patch_embed (patch size 0)",
            move |t| reshape(t, &format!("{E}patch_embed.proj.weight"), &[64, 3, 0, 0]),
            ModelType,
        ),
        case(
            "zero embed_dim",
            move |t| {
                reshape(t, &format!("{E}patch_embed.proj.weight"), &[0, 3, 16, 16]);
                reshape(t, &format!("{E}pos_embed"), &[1, 64, 64, 0]);
            },
            ModelType,
        ),
        case(
            "0-d patch_embed",
            move |t| reshape(t, &format!("{E}patch_embed.proj.weight"), &[]),
            ModelType,
        ),
        case(
            "0-d pos_embed",
            move |t| reshape(t, &format!("{E}pos_embed"), &[]),
            ModelType,
        ),
        case(
            "pos_embed of grid 0",
            move |t| reshape(t, &format!("{E}pos_embed"), &[1, 0, 0, 64]),
            ModelType,
        ),
        case(
            "pos_embed of another grid (img_size 512)",
            move |t| reshape(t, &format!("{E}pos_embed"), &[1, 32, 32, 64]),
            ModelType,
        ),
        case(
            "non-square pos_embed",
            move |t| reshape(t, &format!("{E}pos_embed"), &[1, 64, 32, 64]),
            ModelType,
        ),
        case(
            "0-d neck",
            move |t| reshape(t, &format!("{E}neck.0.weight"), &[]),
            ModelType,
        ),
        case(
            "neck of 128 out_chans",
            move |t| {
                reshape(t, &format!("{E}neck.0.weight"), &[128, 64, 1, 1]);
                reshape(t, &format!("{E}neck.1.weight"), &[128]);
                reshape(t, &format!("{E}neck.1.bias"), &[128]);
                reshape(t, &format!("{E}neck.2.weight"), &[128, 128, 3, 3]);
                reshape(t, &format!("{E}neck.3.weight"), &[128]);
                reshape(t, &format!("{E}neck.3.bias"), &[128]);
            },
            ModelType,
        ),
        case(
            "0-d rel_pos_h",
            move |t| reshape(t, &format!("{E}blocks.0.attn.rel_pos_h"), &[]),
            ModelType,
        ),
        case(
            "0-d rel_pos_w",
            move |t| reshape(t, &format!("{E}blocks.0.attn.rel_pos_w"), &[]),
            ModelType,
        ),
        case(
            "empty rel_pos tables",
            move |t| {
                reshape(t, &format!("{E}blocks.0.attn.rel_pos_h"), &[0, 32]);
                reshape(t, &format!("{E}blocks.0.attn.rel_pos_w"), &[0, 32]);
            },
            ModelType,
        ),
        case(
            "rel_pos of head dim 0",
            move |t| {
                reshape(t, &format!("{E}blocks.0.attn.rel_pos_h"), &[27, 0]);
                reshape(t, &format!("{E}blocks.0.attn.rel_pos_w"), &[27, 0]);
            },
            ModelType,
        ),
        case(
            "rel_pos of even length",
            move |t| {
                reshape(t, &format!("{E}blocks.0.attn.rel_pos_h"), &[26, 32]);
                reshape(t, &format!("{E}blocks.0.attn.rel_pos_w"), &[26, 32]);
            },
            ModelType,
        ),
        case(
            "window wider than the grid",
            move |t| {
                reshape(t, &format!("{E}blocks.0.attn.rel_pos_h"), &[201, 32]);
                reshape(t, &format!("{E}blocks.0.attn.rel_pos_w"), &[201, 32]);
            },
            ModelType,
        ),
        case(
            "rel_pos_w unlike rel_pos_h",
            move |t| reshape(t, &format!("{E}blocks.0.attn.rel_pos_w"), &[29, 32]),
            ModelType,
        ),
        case(
            "every block global (a legitimate configuration)",
            move |t| {
                reshape(t, &format!("{E}blocks.0.attn.rel_pos_h"), &[127, 32]);
                reshape(t, &format!("{E}blocks.0.attn.rel_pos_w"), &[127, 32]);
            },
            Runs,
        ),
        case(
            "0-d mlp",
            move |t| reshape(t, &format!("{E}blocks.0.mlp.lin1.weight"), &[]),
            ModelType,
        ),
        case(
            "mlp not a multiple of the width",
            move |t| reshape(t, &format!("{E}blocks.0.mlp.lin1.weight"), &[100, 64]),
            ModelType,
        ),
        case(
            "no blocks",
            move |t| t.retain(|t| !t.name.starts_with(&format!("{E}blocks."))),
            ModelType,
        ),
        case(
            "missing pos_embed",
            move |t| remove(t, &format!("{E}pos_embed")),
            ModelType,
        ),
        case(
            "missing block weight",
            move |t| remove(t, &format!("{E}blocks.1.attn.qkv.weight")),
            Checkpoint,
        ),
        case(
            "missing decoder key",
            |t| remove(t, "mask_decoder.iou_token.weight"),
            Checkpoint,
        ),
        case(
            "0-d decoder tensor",
            |t| reshape(t, "mask_decoder.iou_token.weight", &[]),
            Checkpoint,
        ),
        case(
            "prompt encoder of another width",
            |t| reshape(t, "prompt_encoder.point_embeddings.0.weight", &[1, 128]),
            Checkpoint,
        ),
        case(
            "0-d positional gaussian",
            |t| {
                reshape(
                    t,
                    "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
                    &[],
                )
            },
            Checkpoint,
        ),
        case(
            "integer weights",
            move |t| {
                let w = t
                    .iter_mut()
                    .find(|t| t.name == key("neck.1.weight"))
                    .unwrap();
                w.dtype = Dtype::I64;
                w.data = vec![0; w.data.len() * 2];
            },
            Checkpoint,
        ),
    ];
    run_cases(&base, cases);
}

#[test]
fn malformed_tiny_vit_checkpoints_never_panic() {
    use Expect::*;
    let base = tensors(&format!("{}.pth", mobile_sam_tag()));
    let biases = format!("{E}layers.1.blocks.0.attn.attention_biases");
    let heads = base.iter().find(|t| t.name == biases).unwrap().shape[0];
    let cases = vec![
        case(
            "0-d attention_biases",
            {
                let b = biases.clone();
                move |t| reshape(t, &b, &[])
            },
            ModelType,
        ),
        case(
            "attention_biases of no offsets",
            {
                let b = biases.clone();
                move |t| reshape(t, &b, &[heads, 0])
            },
            ModelType,
        ),
        case(
            "window of 40 (over the limit)",
            {
                let b = biases.clone();
                move |t| reshape(t, &b, &[heads, 40 * 40])
            },
            ModelType,
        ),
        case(
            "0-d neck",
            move |t| reshape(t, &format!("{E}neck.0.weight"), &[]),
            ModelType,
        ),
        case(
            "neck of 128 out_chans",
            move |t| {
                let last = t
                    .iter()
                    .find(|t| t.name == format!("{E}neck.0.weight"))
                    .unwrap()
                    .shape[1];
                reshape(t, &format!("{E}neck.0.weight"), &[128, last, 1, 1]);
            },
            ModelType,
        ),
        case(
            "0-d patch embedding",
            move |t| reshape(t, &format!("{E}patch_embed.seq.2.c.weight"), &[]),
            ModelType,
        ),
        case(
            "missing decoder key",
            |t| remove(t, "mask_decoder.mask_tokens.weight"),
            Checkpoint,
        ),
    ];
    run_cases(&base, cases);
}

/// The issue's example: a 40000x40000 mask of one run asks for 1.6 GB. Refused from its size,
/// before anything is allocated, on every path that reads an RLE.
#[test]
fn rle_masks_over_the_pixel_limit_are_refused() {
    let rle = Rle {
        size: [40000, 40000],
        counts: vec![1_600_000_000],
    };
    let too_large = RleError::TooLarge { h: 40000, w: 40000 };
    assert_eq!(rle.validate(), Err(too_large.clone()));
    assert_eq!(rle.decode(), Err(too_large.clone()));
    assert_eq!(rle.decode_u8(), Err(too_large.clone()));
    let coco = rle.to_coco();
    assert_eq!(coco.to_rle(), Err(too_large.clone()));
    // Just over the limit; overflowing sizes.
    let side = 1usize << 14;
    assert!(side * side == MAX_MASK_PIXELS);
    let rle = Rle {
        size: [side, side + 1],
        counts: vec![(side * (side + 1)) as u32],
    };
    assert!(matches!(rle.validate(), Err(RleError::TooLarge { .. })));
    let huge = CocoRle {
        size: [usize::MAX, 2],
        counts: "0".into(),
    };
    assert!(matches!(huge.to_rle(), Err(RleError::TooLarge { .. })));
    // Through SA-1B JSON (uncompressed and compressed counts).
    for json in [
        r#"[{"segmentation":{"size":[40000,40000],"counts":[1600000000]},"bbox":[0,0,1,1],"area":1,"predicted_iou":1,"crop_box":[0,0,1,1],"point_coords":[]}]"#.to_string(),
        format!(
            r#"[{{"segmentation":{{"size":[40000,40000],"counts":"{}"}},"bbox":[0,0,1,1],"area":1,"predicted_iou":1,"crop_box":[0,0,1,1],"point_coords":[]}}]"#,
            coco.counts
        ),
    ] {
        let e = sa1b::parse_annotations(&json).unwrap_err();
        assert!(
            matches!(
                &e,
                Sa1bError::Rle {
                    source: RleError::TooLarge { .. },
                    ..
                }
            ),
            "{e}"
        );
        // As a SamError it keeps its kind.
        assert!(matches!(SamError::from(e), SamError::Sa1b(_)));
    }
    assert!(matches!(SamError::from(too_large), SamError::Rle(_)));
}

/// More runs than an `h x w` mask can have: zero-length runs that keep the sum right.
#[test]
fn rle_counts_longer_than_the_mask_are_refused() {
    let rle = Rle {
        size: [2, 2],
        counts: vec![0, 0, 0, 0, 0, 0, 4],
    };
    assert!(
        matches!(
            rle.validate(),
            Err(RleError::TooManyCounts { len: 7, max: 5, .. })
        ),
        "{:?}",
        rle.validate()
    );
    assert!(rle.decode().is_err());
    // The compressed form stops reading at the limit.
    let e = Rle::from_string_compressed(&"0".repeat(1000), [2, 2]).unwrap_err();
    assert!(matches!(e, RleError::TooManyCounts { max: 5, .. }), "{e}");
    // Exactly h * w + 1 runs is fine: 0 zeros, then alternating single pixels.
    let rle = Rle {
        size: [2, 2],
        counts: vec![0, 1, 1, 1, 1],
    };
    assert_eq!(rle.decode().unwrap(), vec![true, true, false, false]);
}

#[test]
fn sa1b_files_over_the_limits_are_refused() {
    let one = r#"{"segmentation":{"size":[1,1],"counts":[1]},"bbox":[0,0,1,1],"area":1,"predicted_iou":1,"crop_box":[0,0,1,1],"point_coords":[]}"#;
    let list = |n: usize| format!("[{}]", vec![one; n].join(","));
    let file = |n: usize| {
        format!(
            r#"{{"image":{{"image_id":0,"width":1,"height":1,"file_name":""}},"annotations":{}}}"#,
            list(n)
        )
    };
    assert_eq!(sa1b::parse_annotations(&list(3)).unwrap().len(), 3);
    assert_eq!(sa1b::parse_sa1b(&file(3)).unwrap().annotations.len(), 3);
    let e = sa1b::parse_annotations(&list(MAX_ANNOTATIONS + 1)).unwrap_err();
    assert!(matches!(e, Sa1bError::TooManyAnnotations { .. }), "{e}");
    let e = sa1b::parse_sa1b(&file(MAX_ANNOTATIONS + 1)).unwrap_err();
    assert!(matches!(e, Sa1bError::TooManyAnnotations { .. }), "{e}");
    let e = sa1b::parse_annotations(&file(MAX_ANNOTATIONS + 1)).unwrap_err();
    assert!(matches!(e, Sa1bError::TooManyAnnotations { .. }), "{e}");
    // The size is checked before parsing.
    let mut big = list(1);
    big.push_str(&" ".repeat(MAX_JSON_BYTES + 1 - big.len()));
    let e = sa1b::parse_annotations(&big).unwrap_err();
    assert!(matches!(e, Sa1bError::JsonTooLarge { .. }), "{e}");
    let e = sa1b::parse_sa1b(&big).unwrap_err();
    assert!(matches!(e, Sa1bError::JsonTooLarge { .. }), "{e}");
}

#[test]
fn amg_options_have_upper_bounds() {
    let bad = [
        AmgOptions {
            points_per_side: Some(1_000_000_000),
            ..Default::default()
        },
        AmgOptions {
            points_per_side: Some(MAX_POINTS_PER_SIDE + 1),
            ..Default::default()
        },
        AmgOptions {
            points_per_batch: 1_000_000_000,
            ..Default::default()
        },
        AmgOptions {
            points_per_batch: MAX_POINTS_PER_BATCH + 1,
            ..Default::default()
        },
        AmgOptions {
            crop_n_points_downscale_factor: 1_000_000_000,
            ..Default::default()
        },
        AmgOptions {
            points_per_side: None,
            point_grids: Some(vec![vec![[0.5, 0.5]; MAX_GRID_POINTS + 1]]),
            ..Default::default()
        },
    ];
    for o in bad {
        let e = o.validate().unwrap_err();
        assert!(matches!(e, SamError::Input(_)), "{e}");
        println!("{e}");
    }
    let ok = AmgOptions {
        points_per_side: Some(MAX_POINTS_PER_SIDE),
        points_per_batch: MAX_POINTS_PER_BATCH,
        ..Default::default()
    };
    ok.validate().unwrap();
}

#[test]
fn imported_embeddings_respect_the_image_limit() {
    let device = Device::flex();
    let npy = npy::write_npy_f32(&[1, 256, 64, 64], &vec![0.0; 256 * 64 * 64]);
    for size in [
        (100_000, 100_000),
        (usize::MAX, 2),
        (MAX_IMAGE_PIXELS + 1, 1),
    ] {
        let e = ImageEmbedding::from_npy(&npy, size, &device).unwrap_err();
        assert!(
            matches!(e, SamError::Image(ImageError::TooLarge { .. })),
            "{size:?}: {e}"
        );
    }
    ImageEmbedding::from_npy(&npy, (16384, 16384), &device).unwrap();
}

#[test]
fn npy_headers_are_bounded() {
    let good = npy::write_npy_f32(&[2], &[1.0, 2.0]);
    assert_eq!(npy::read_npy_f32(&good).unwrap().data, vec![1.0, 2.0]);
    // A version 2 header over the limit.
    let header_len = npy::MAX_HEADER_BYTES + 1;
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend_from_slice(&(header_len as u32).to_le_bytes());
    let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }".to_string();
    header.push_str(&" ".repeat(header_len - 1 - header.len()));
    header.push('\n');
    bytes.extend_from_slice(header.as_bytes());
    let e = npy::read_npy_f32(&bytes).unwrap_err();
    assert!(
        matches!(&e, NpyError::BadHeader(m) if m.contains("limit")),
        "{e}"
    );
    // More dimensions than numpy allows (all 1: the data is one value).
    let shape = vec![1usize; npy::MAX_DIMS + 1];
    let bytes = npy::write_npy_f32(&shape, &[1.0]);
    let e = npy::read_npy_f32(&bytes).unwrap_err();
    assert!(
        matches!(&e, NpyError::BadHeader(m) if m.contains("dimensions")),
        "{e}"
    );
}

/// A deflated storage whose declared size is beyond what DEFLATE can give is refused when
/// the file is opened.
#[test]
fn zip_bombs_and_oversized_tensors_are_refused() {
    use std::io::{Read, Write};
    let pth = read(&format!("{}.pth", tiny_tag()));
    // Re-zip the reference .pth with every entry deflated.
    let mut zin = zip::ZipArchive::new(std::io::Cursor::new(&pth)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut storage = String::new();
    for i in 0..zin.len() {
        let mut f = zin.by_index(i).unwrap();
        let name = f.name().to_string();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        if storage.is_empty() && name.contains("/data/") {
            storage = name.clone();
        }
        out.start_file(name, opts).unwrap();
        out.write_all(&data).unwrap();
    }
    let mut zipped = out.finish().unwrap().into_inner();
    // The deflated copy opens and reads like the original.
    let a = Checkpoint::from_bytes(&pth).unwrap();
    let b = Checkpoint::from_bytes(&zipped).unwrap();
    let key = a.keys().next().unwrap().to_string();
    assert_eq!(a.read_f32(&key).unwrap(), b.read_f32(&key).unwrap());
    // Now the first storage claims 2 GiB: in its local header (uncompressed size at +22)
    // and its central directory record (+24).
    let claim = (2u32 << 30).to_le_bytes();
    let mut patched = 0;
    for (sig, field) in [(b"PK\x03\x04", 22usize), (b"PK\x01\x02", 24)] {
        let name_at = if field == 22 { 30 } else { 46 };
        let mut i = 0;
        while let Some(p) = zipped[i..].windows(4).position(|w| w == sig) {
            let at = i + p;
            let name_len = if field == 22 {
                u16::from_le_bytes([zipped[at + 26], zipped[at + 27]]) as usize
            } else {
                u16::from_le_bytes([zipped[at + 28], zipped[at + 29]]) as usize
            };
            let name = &zipped[at + name_at..at + name_at + name_len];
            if name == storage.as_bytes() {
                zipped[at + field..at + field + 4].copy_from_slice(&claim);
                patched += 1;
            }
            i = at + 4;
        }
    }
    assert_eq!(patched, 2);
    let e = Checkpoint::from_bytes(&zipped).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Corrupt(m) if m.contains("DEFLATE")),
        "{e}"
    );
    let e = Sam::from_bytes(&zipped, None, &Device::flex()).unwrap_err();
    assert!(matches!(e, SamError::Checkpoint(_)), "{e}");
}
