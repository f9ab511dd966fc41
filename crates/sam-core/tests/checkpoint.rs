//! Checkpoint reader: the reference `.pth` / `.safetensors` files against their manifests,
//! hand-built archives for the less common pickle and zip features, and bad inputs (which
//! must give errors, never panics).

mod common;

use std::cell::Cell;
use std::io::{Cursor, Write};
use std::path::PathBuf;

use sam_core::io::checkpoint::{
    ByteSource, Checkpoint, CheckpointError, CheckpointFormat, StoredDType, contiguous_strides,
    gather_strided,
};

// ---------------------------------------------------------------------------------------------
// Reference files

/// `$SAM_REFERENCE_DIR`, else `shared/reference` beside the repository, else
/// `/work/shared/reference`.
fn reference_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SAM_REFERENCE_DIR") {
        return PathBuf::from(dir);
    }
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference");
    if beside.is_dir() {
        return beside;
    }
    PathBuf::from("/work/shared/reference")
}

/// `<tag><ext>` of the kit's ViT test model (`common::tiny_tag`, any seed), e.g. `tiny_seed0.pth`.
fn tiny(ext: &str) -> String {
    format!("{}{ext}", common::tiny_tag())
}

/// `<tag><ext>` of the kit's MobileSAM (`common::mobile_sam_tag`).
fn mobile_sam(ext: &str) -> String {
    format!("{}{ext}", common::mobile_sam_tag())
}

/// A JPEG photo (`images/dog.jpg` beside the kit, else beside the repository: a kit of
/// another seed may live elsewhere, e.g. `/tmp/kit2`).
fn sample_jpeg() -> Vec<u8> {
    let beside_kit = reference_dir().join("../images/dog.jpg");
    let beside_repo =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/images/dog.jpg");
    std::fs::read(&beside_kit)
        .or_else(|_| std::fs::read(&beside_repo))
        .unwrap_or_else(|e| panic!("reading {}: {e}", beside_repo.display()))
}

fn read_ref(name: &str) -> Vec<u8> {
    let path = reference_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `(key, shape, dtype)` of every tensor in a manifest, and `num_keys`.
fn manifest(name: &str) -> (Vec<(String, Vec<usize>, String)>, usize) {
    let text = read_ref(name);
    let json: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let ckpt = &json["checkpoint"];
    let keys = ckpt["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let key = k[0].as_str().unwrap().to_string();
            let shape = k[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (key, shape, k[2].as_str().unwrap().to_string())
        })
        .collect();
    (keys, ckpt["num_keys"].as_u64().unwrap() as usize)
}

fn check_against_manifest(ckpt: &Checkpoint<'_>, manifest_name: &str, ordered: bool) {
    let (keys, num_keys) = manifest(manifest_name);
    assert_eq!(ckpt.len(), num_keys);
    assert_eq!(keys.len(), num_keys);
    assert!(!ckpt.is_empty());
    for (key, shape, dtype) in &keys {
        let info = ckpt
            .info(key)
            .unwrap_or_else(|| panic!("{manifest_name}: key {key} missing"));
        assert_eq!(&info.shape, shape, "shape of {key}");
        assert_eq!(info.dtype.name(), dtype, "dtype of {key}");
        assert!(ckpt.contains(key));
    }
    if ordered {
        let found: Vec<&str> = ckpt.keys().collect();
        let expected: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        assert_eq!(found, expected, "key order");
    }
}

#[test]
fn tiny_pth_matches_manifest() {
    let bytes = read_ref(&tiny(".pth"));
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    assert_eq!(ckpt.format(), CheckpointFormat::Pth);
    check_against_manifest(&ckpt, &tiny("_manifest.json"), true);
}

#[test]
fn tiny_safetensors_matches_manifest() {
    let bytes = read_ref(&tiny(".safetensors"));
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    assert_eq!(ckpt.format(), CheckpointFormat::Safetensors);
    check_against_manifest(&ckpt, &tiny("_manifest.json"), false);
}

#[test]
fn tiny_pth_and_safetensors_are_bit_identical() {
    let pth_bytes = read_ref(&tiny(".pth"));
    let st_bytes = read_ref(&tiny(".safetensors"));
    let pth = Checkpoint::from_bytes(&pth_bytes).unwrap();
    let st = Checkpoint::from_bytes(&st_bytes).unwrap();
    assert_eq!(pth.len(), st.len());
    let mut total = 0usize;
    for key in pth.keys() {
        let info = pth.info(key).unwrap();
        let a = pth.read_f32(key).unwrap();
        let b = st.read_f32_shaped(key, &info.shape).unwrap();
        assert_eq!(a.len(), info.numel(), "{key}");
        let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same && a.len() == b.len(), "values of {key} differ");
        total += a.len();
    }
    // Every value of the state dict (the tiny model has float tensors only).
    let json: serde_json::Value =
        serde_json::from_slice(&read_ref(&tiny("_manifest.json"))).unwrap();
    let expected = json["checkpoint"]["num_state_dict_elements"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(total, expected, "values compared");
}

#[test]
fn mobile_sam_pth_matches_manifest() {
    let bytes = read_ref(&mobile_sam(".pth"));
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    assert_eq!(ckpt.format(), CheckpointFormat::Pth);
    check_against_manifest(&ckpt, &mobile_sam("_manifest.json"), true);

    let (keys, _) = manifest(&mobile_sam("_manifest.json"));
    let mut ints = 0;
    for (key, shape, dtype) in &keys {
        let numel: usize = shape.iter().product();
        if dtype == "int64" {
            ints += 1;
            let v = ckpt.read_i64(key).unwrap();
            assert_eq!(v.len(), numel, "{key}");
            assert!(v.iter().all(|&x| x >= 0), "{key}: negative values");
            // Integer tensors are not floats.
            match ckpt.read_f32(key) {
                Err(CheckpointError::DType { key: k, dtype }) => {
                    assert_eq!(&k, key);
                    assert_eq!(dtype, StoredDType::I64);
                }
                other => panic!("read_f32 of {key}: {other:?}"),
            }
        } else {
            let v = ckpt.read_f32(key).unwrap();
            assert_eq!(v.len(), numel, "{key}");
            assert!(v.iter().all(|x| x.is_finite()), "{key}: non-finite values");
        }
    }
    // The only integer tensors are the BatchNorm counters.
    let counters = keys
        .iter()
        .filter(|k| k.0.ends_with("num_batches_tracked"))
        .count();
    assert!(counters > 0);
    assert_eq!(ints, counters);

    // This MobileSAM export has no `attention_bias_idxs` (a non-persistent buffer in recent
    // TinyViT code): its int64 tensors are the BatchNorm counters, scalars of shape [].
    for key in ckpt.keys().filter(|k| k.ends_with("num_batches_tracked")) {
        assert!(ckpt.info(key).unwrap().shape.is_empty());
        assert_eq!(ckpt.read_i64(key).unwrap().len(), 1);
    }

    // A float tensor read as integers is an error too.
    let float_key = &keys.iter().find(|k| k.2 == "float32").unwrap().0;
    assert!(matches!(
        ckpt.read_i64(float_key),
        Err(CheckpointError::DType {
            dtype: StoredDType::F32,
            ..
        })
    ));
}

#[test]
fn missing_key_and_shape_mismatch_name_the_key() {
    let bytes = read_ref(&tiny(".pth"));
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();

    let err = ckpt.read_f32("image_encoder.no_such_tensor").unwrap_err();
    assert!(
        matches!(&err, CheckpointError::MissingKey { key } if key == "image_encoder.no_such_tensor")
    );
    assert!(
        err.to_string().contains("image_encoder.no_such_tensor"),
        "{err}"
    );
    assert!(matches!(
        ckpt.read_i64("nope"),
        Err(CheckpointError::MissingKey { .. })
    ));
    assert!(ckpt.info("nope").is_none());
    assert!(!ckpt.contains("nope"));

    let key = "image_encoder.patch_embed.proj.weight";
    let err = ckpt.read_f32_shaped(key, &[64, 3, 8, 8]).unwrap_err();
    match &err {
        CheckpointError::ShapeMismatch {
            key: k,
            expected,
            found,
        } => {
            assert_eq!(k, key);
            assert_eq!(expected, &[64, 3, 8, 8]);
            assert_eq!(found, &[64, 3, 16, 16]);
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(key) && msg.contains("[64, 3, 8, 8]") && msg.contains("[64, 3, 16, 16]"),
        "{msg}"
    );
    assert_eq!(
        ckpt.read_f32_shaped(key, &[64, 3, 16, 16]).unwrap().len(),
        64 * 3 * 16 * 16
    );
}

// ---------------------------------------------------------------------------------------------
// Bad inputs

fn expect_err(bytes: &[u8], what: &str) -> CheckpointError {
    match Checkpoint::from_bytes(bytes) {
        Ok(c) => panic!("{what}: loaded {} tensors, expected an error", c.len()),
        Err(e) => {
            assert!(!e.to_string().is_empty());
            e
        }
    }
}

fn pseudo_random(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

#[test]
fn non_checkpoints_are_rejected() {
    let e = expect_err(&[], "empty");
    assert!(matches!(e, CheckpointError::NotACheckpoint(_)), "{e}");
    assert!(e.to_string().contains("empty"), "{e}");

    let jpeg = sample_jpeg();
    let e = expect_err(&jpeg, "jpeg");
    assert!(matches!(e, CheckpointError::NotACheckpoint(_)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("JPEG") && msg.contains(".safetensors") && msg.contains(".pth"),
        "{msg}"
    );

    let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    png.extend(pseudo_random(300, 3));
    let e = expect_err(&png, "png");
    assert!(matches!(e, CheckpointError::NotACheckpoint(_)) && e.to_string().contains("PNG"));

    let e = expect_err(b"<!DOCTYPE html><html><body>Sign in</body></html>", "html");
    assert!(matches!(e, CheckpointError::NotACheckpoint(_)) && e.to_string().contains("HTML"));

    for seed in 1..50u64 {
        let bytes = pseudo_random(1 + (seed as usize * 97) % 5000, seed);
        let _ = expect_err(&bytes, "random bytes");
    }
    let e = expect_err(&pseudo_random(4096, 99), "random bytes");
    assert!(matches!(e, CheckpointError::NotACheckpoint(_)), "{e}");

    // Legacy (pre-1.6) torch.save format: the pickled magic number.
    let mut legacy = vec![
        0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
    ];
    legacy.extend(pseudo_random(100, 5));
    let e = expect_err(&legacy, "legacy");
    assert!(
        matches!(&e, CheckpointError::Unsupported(m) if m.contains("legacy")),
        "{e}"
    );
    assert!(e.to_string().contains("re-save"), "{e}");
}

#[test]
fn truncated_pth_is_an_error() {
    let bytes = read_ref(&tiny(".pth"));
    for frac in [0.0001, 0.1, 0.5, 0.9, 0.99] {
        let n = (bytes.len() as f64 * frac) as usize;
        let e = expect_err(&bytes[..n], "truncated pth");
        assert!(matches!(e, CheckpointError::Truncated(_)), "{frac}: {e}");
        assert!(e.to_string().contains("truncated"), "{e}");
    }
    // Cut inside the central directory or its end record: an error of either kind.
    for cut in [1usize, 10, 21, 22, 23, 100, 1000, 5000, 20_000] {
        let e = expect_err(&bytes[..bytes.len() - cut], "truncated pth tail");
        assert!(
            matches!(
                e,
                CheckpointError::Truncated(_) | CheckpointError::Corrupt(_)
            ),
            "{cut}: {e}"
        );
    }
}

#[test]
fn truncated_safetensors_is_an_error() {
    let bytes = read_ref(&tiny(".safetensors"));
    for n in [
        9usize,
        12,
        100,
        bytes.len() / 10,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        let e = expect_err(&bytes[..n], "truncated safetensors");
        assert!(matches!(e, CheckpointError::Truncated(_)), "{n}: {e}");
        assert!(e.to_string().contains("truncated"), "{e}");
    }
    // Trailing junk is not truncation.
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 16]);
    let e = expect_err(&longer, "safetensors with trailing bytes");
    assert!(matches!(e, CheckpointError::Corrupt(_)), "{e}");
}

#[test]
fn zip_without_data_pkl_is_not_a_checkpoint() {
    let zip = build_zip(&[("stuff/readme.txt", b"hello".to_vec(), false)]);
    let e = expect_err(&zip, "zip without data.pkl");
    assert!(
        matches!(&e, CheckpointError::NotACheckpoint(m) if m.contains("data.pkl")),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// Hand-built checkpoints

/// A tensor in a hand-built pickle.
struct Spec {
    key: &'static str,
    storage_type: &'static str,
    storage_key: &'static str,
    storage_numel: usize,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
    parameter: bool,
}

fn spec(key: &'static str, storage_type: &'static str, storage_key: &'static str) -> Spec {
    Spec {
        key,
        storage_type,
        storage_key,
        storage_numel: 0,
        offset: 0,
        size: vec![],
        stride: vec![],
        parameter: false,
    }
}

/// Emits pickle opcodes, either as protocol 2 (`c` GLOBAL, BINUNICODE, BINPUT) or protocol 4
/// (STACK_GLOBAL, SHORT_BINUNICODE, MEMOIZE, FRAME).
struct Pickler {
    out: Vec<u8>,
    proto4: bool,
    memo: u32,
}

impl Pickler {
    fn new(proto4: bool) -> Self {
        let mut p = Self {
            out: vec![0x80, if proto4 { 4 } else { 2 }],
            proto4,
            memo: 0,
        };
        if proto4 {
            p.out.push(0x95);
            p.out.extend_from_slice(&0u64.to_le_bytes());
        }
        p
    }
    fn op(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }
    fn memoize(&mut self) {
        if self.proto4 {
            self.op(&[0x94]);
        } else if self.memo < 256 {
            self.op(&[b'q', self.memo as u8]);
        } else {
            self.op(b"r");
            self.op(&self.memo.to_le_bytes());
        }
        self.memo += 1;
    }
    fn str(&mut self, s: &str) {
        if self.proto4 && s.len() < 256 {
            self.op(&[0x8c, s.len() as u8]);
        } else {
            self.op(b"X");
            self.op(&(s.len() as u32).to_le_bytes());
        }
        self.op(s.as_bytes());
        self.memoize();
    }
    fn global(&mut self, module: &str, name: &str) {
        if self.proto4 {
            self.str(module);
            self.str(name);
            self.op(&[0x93]);
        } else {
            self.op(format!("c{module}\n{name}\n").as_bytes());
        }
        self.memoize();
    }
    fn int(&mut self, v: usize) {
        match v {
            0..=255 => self.op(&[b'K', v as u8]),
            256..=65535 => {
                self.op(b"M");
                self.op(&(v as u16).to_le_bytes());
            }
            _ if v < (1 << 31) => {
                self.op(b"J");
                self.op(&(v as i32).to_le_bytes());
            }
            _ => {
                self.op(&[0x8a, 8]);
                self.op(&(v as u64).to_le_bytes());
            }
        }
    }
    fn int_tuple(&mut self, v: &[usize]) {
        match v.len() {
            0 => self.op(b")"),
            1..=3 => {
                for &x in v {
                    self.int(x);
                }
                self.op(&[0x84 + v.len() as u8]);
            }
            _ => {
                self.op(b"(");
                for &x in v {
                    self.int(x);
                }
                self.op(b"t");
            }
        }
    }
    fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.op(b")R");
        self.memoize();
    }
    fn tensor(&mut self, s: &Spec) {
        if s.parameter {
            self.global("torch._utils", "_rebuild_parameter");
            self.op(b"(");
        }
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.op(b"((");
        self.str("storage");
        self.global("torch", s.storage_type);
        self.str(s.storage_key);
        self.str("cpu");
        self.int(s.storage_numel);
        self.op(b"tQ");
        self.int(s.offset);
        self.int_tuple(&s.size);
        self.int_tuple(&s.stride);
        self.op(&[0x89]);
        self.ordered_dict();
        self.op(b"tR");
        self.memoize();
        if s.parameter {
            self.op(&[0x88]);
            self.ordered_dict();
            self.op(b"tR");
            self.memoize();
        }
    }
    /// An OrderedDict of tensors, with a `_metadata` state set by BUILD, as torch writes it.
    fn state_dict(&mut self, specs: &[Spec]) {
        self.ordered_dict();
        self.op(b"(");
        for s in specs {
            self.str(s.key);
            self.tensor(s);
        }
        self.op(b"u");
        self.op(b"}");
        self.str("_metadata");
        self.ordered_dict();
        self.op(b"sb");
    }
    fn finish(mut self) -> Vec<u8> {
        self.op(b".");
        self.out
    }
}

/// A zip of `(name, data, deflate)` entries.
fn build_zip(entries: &[(&str, Vec<u8>, bool)]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data, deflate) in entries {
        let method = if *deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        w.start_file(
            *name,
            SimpleFileOptions::default().compression_method(method),
        )
        .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Specs of the synthetic checkpoint: a transposed view, an expanded (stride 0) view, f16,
/// bf16, f64, int64, a scalar, a parameter, and a view sharing storage `0` at an offset.
fn synthetic_specs() -> Vec<Spec> {
    vec![
        Spec {
            storage_numel: 12,
            size: vec![3, 4],
            stride: vec![4, 1],
            parameter: true,
            ..spec("w", "FloatStorage", "0")
        },
        // Transposed view of storage 0 starting at element 1: [i, j] = s[1 + i + 3j].
        Spec {
            storage_numel: 12,
            offset: 1,
            size: vec![3, 2],
            stride: vec![1, 3],
            ..spec("w_t", "FloatStorage", "0")
        },
        // Expanded: every row is s[0..3].
        Spec {
            storage_numel: 12,
            size: vec![2, 3],
            stride: vec![0, 1],
            ..spec("w_expand", "FloatStorage", "0")
        },
        Spec {
            storage_numel: 3,
            size: vec![3],
            stride: vec![1],
            ..spec("half", "HalfStorage", "1")
        },
        Spec {
            storage_numel: 2,
            size: vec![2],
            stride: vec![1],
            ..spec("bf", "BFloat16Storage", "2")
        },
        Spec {
            storage_numel: 2,
            size: vec![1, 2],
            stride: vec![2, 1],
            ..spec("double", "DoubleStorage", "3")
        },
        Spec {
            storage_numel: 4,
            size: vec![2, 2],
            stride: vec![1, 2],
            ..spec("idx", "LongStorage", "4")
        },
        Spec {
            storage_numel: 1,
            ..spec("num_batches_tracked", "LongStorage", "5")
        },
        Spec {
            storage_numel: 3,
            size: vec![3],
            stride: vec![1],
            ..spec("mask", "BoolStorage", "6")
        },
        Spec {
            storage_numel: 0,
            size: vec![0, 4],
            stride: vec![4, 1],
            ..spec("empty", "FloatStorage", "7")
        },
    ]
}

/// Storage entries of the synthetic checkpoint.
fn synthetic_storages() -> Vec<(&'static str, Vec<u8>)> {
    let s0: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let half: Vec<u8> = [1.5f32, -2.0, 0.25]
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    let bf: Vec<u8> = [3.0f32, -0.5]
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    let double: Vec<u8> = [1.25f64, -7.5]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let idx: Vec<u8> = [5i64, -1, 7, 1 << 40]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    vec![
        ("0", f32_bytes(&s0)),
        ("1", half),
        ("2", bf),
        ("3", double),
        ("4", idx),
        ("5", 42i64.to_le_bytes().to_vec()),
        ("6", vec![1, 0, 1]),
        ("7", vec![]),
    ]
}

/// A `.pth` zip with root folder `root`, the given pickle, and the synthetic storages.
fn synthetic_pth(root: &str, pickle: Vec<u8>, deflate: bool, byteorder: &str) -> Vec<u8> {
    let mut entries = vec![
        (format!("{root}/data.pkl"), pickle, deflate),
        (
            format!("{root}/byteorder"),
            byteorder.as_bytes().to_vec(),
            false,
        ),
    ];
    for (key, data) in synthetic_storages() {
        entries.push((format!("{root}/data/{key}"), data, deflate));
    }
    entries.push((format!("{root}/version"), b"3\n".to_vec(), false));
    let refs: Vec<(&str, Vec<u8>, bool)> = entries
        .iter()
        .map(|(n, d, z)| (n.as_str(), d.clone(), *z))
        .collect();
    build_zip(&refs)
}

fn state_dict_pickle(proto4: bool) -> Vec<u8> {
    let mut p = Pickler::new(proto4);
    p.state_dict(&synthetic_specs());
    p.finish()
}

fn check_synthetic(ckpt: &Checkpoint<'_>) {
    let keys: Vec<&str> = ckpt.keys().collect();
    assert_eq!(
        keys,
        [
            "w",
            "w_t",
            "w_expand",
            "half",
            "bf",
            "double",
            "idx",
            "num_batches_tracked",
            "mask",
            "empty"
        ]
    );
    let w: Vec<f32> = (0..12).map(|i| i as f32).collect();
    assert_eq!(ckpt.read_f32_shaped("w", &[3, 4]).unwrap(), w);
    let info = ckpt.info("w_t").unwrap();
    assert_eq!(info.shape, [3, 2]);
    assert_eq!(info.strides(), [1, 3]);
    assert!(!info.is_contiguous());
    assert_eq!(
        ckpt.read_f32("w_t").unwrap(),
        [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
    );
    assert_eq!(
        ckpt.read_f32("w_expand").unwrap(),
        [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]
    );
    assert_eq!(ckpt.info("half").unwrap().dtype, StoredDType::F16);
    assert_eq!(ckpt.read_f32("half").unwrap(), [1.5, -2.0, 0.25]);
    assert_eq!(ckpt.info("bf").unwrap().dtype, StoredDType::BF16);
    assert_eq!(ckpt.read_f32("bf").unwrap(), [3.0, -0.5]);
    assert_eq!(ckpt.read_f32("double").unwrap(), [1.25, -7.5]);
    // Column-major 2x2 of [5, -1, 7, 2^40].
    assert_eq!(ckpt.read_i64("idx").unwrap(), [5, 7, -1, 1 << 40]);
    let nbt = ckpt.info("num_batches_tracked").unwrap();
    assert!(nbt.shape.is_empty());
    assert_eq!(ckpt.read_i64("num_batches_tracked").unwrap(), [42]);
    assert_eq!(ckpt.read_i64("mask").unwrap(), [1, 0, 1]);
    assert!(matches!(
        ckpt.read_f32("mask"),
        Err(CheckpointError::DType {
            dtype: StoredDType::Bool,
            ..
        })
    ));
    assert_eq!(
        ckpt.read_f32_shaped("empty", &[0, 4]).unwrap(),
        Vec::<f32>::new()
    );
}

#[test]
fn synthetic_pth_protocol2_stored() {
    let bytes = synthetic_pth("archive", state_dict_pickle(false), false, "little");
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    assert_eq!(ckpt.format(), CheckpointFormat::Pth);
    check_synthetic(&ckpt);
}

#[test]
fn synthetic_pth_protocol4_deflated() {
    let bytes = synthetic_pth("my_model", state_dict_pickle(true), true, "little");
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    check_synthetic(&ckpt);
}

#[test]
fn nested_model_dict_is_found() {
    // {"model": state_dict, "epoch": 3, "optimizer": {"lr": 0.1}}
    let mut p = Pickler::new(false);
    p.op(b"}");
    p.memoize();
    p.op(b"(");
    p.str("epoch");
    p.int(3);
    p.str("model");
    p.state_dict(&synthetic_specs());
    p.str("optimizer");
    p.op(b"}");
    p.str("lr");
    p.op(b"G");
    p.op(&0.1f64.to_be_bytes());
    p.op(b"s");
    p.op(b"u");
    let bytes = synthetic_pth("ckpt", p.finish(), false, "little");
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    check_synthetic(&ckpt);

    // Two dicts of tensors and neither has a known name: an error naming them.
    let mut p = Pickler::new(false);
    p.op(b"}(");
    p.str("ema");
    p.state_dict(&synthetic_specs());
    p.str("student");
    p.state_dict(&synthetic_specs());
    p.op(b"u");
    let bytes = synthetic_pth("ckpt", p.finish(), false, "little");
    let e = expect_err(&bytes, "two state dicts");
    assert!(
        matches!(&e, CheckpointError::Unsupported(m) if m.contains("'ema'") && m.contains("'student'")),
        "{e}"
    );

    // A pickled object that is not a dict (e.g. a whole nn.Module).
    let mut p = Pickler::new(false);
    p.global("segment_anything.modeling.sam", "Sam");
    p.op(b")R}b");
    let bytes = synthetic_pth("ckpt", p.finish(), false, "little");
    let e = expect_err(&bytes, "pickled module");
    assert!(matches!(e, CheckpointError::Unsupported(_)), "{e}");
}

#[test]
fn synthetic_pth_errors() {
    // Big-endian byte order.
    let bytes = synthetic_pth("archive", state_dict_pickle(false), false, "big");
    let e = expect_err(&bytes, "big endian");
    assert!(
        matches!(&e, CheckpointError::Unsupported(m) if m.contains("big")),
        "{e}"
    );

    // A storage shorter than the tensor needs.
    let mut p = Pickler::new(false);
    p.state_dict(&[Spec {
        storage_numel: 100,
        size: vec![10, 10],
        stride: vec![10, 1],
        ..spec("too_big", "FloatStorage", "0")
    }]);
    let bytes = synthetic_pth("archive", p.finish(), false, "little");
    let e = expect_err(&bytes, "short storage");
    assert!(
        matches!(&e, CheckpointError::Corrupt(m) if m.contains("too_big")),
        "{e}"
    );

    // A storage entry that is not in the archive.
    let mut p = Pickler::new(false);
    p.state_dict(&[Spec {
        storage_numel: 1,
        size: vec![1],
        stride: vec![1],
        ..spec("lost", "FloatStorage", "99")
    }]);
    let bytes = synthetic_pth("archive", p.finish(), false, "little");
    let e = expect_err(&bytes, "missing storage");
    assert!(
        matches!(&e, CheckpointError::Corrupt(m) if m.contains("lost")),
        "{e}"
    );

    // An unsupported storage type names the tensor.
    let mut p = Pickler::new(false);
    p.state_dict(&[Spec {
        storage_numel: 1,
        size: vec![1],
        stride: vec![1],
        ..spec("cplx", "ComplexFloatStorage", "0")
    }]);
    let bytes = synthetic_pth("archive", p.finish(), false, "little");
    let e = expect_err(&bytes, "complex storage");
    assert!(
        matches!(&e, CheckpointError::Unsupported(m) if m.contains("cplx") && m.contains("ComplexFloatStorage")),
        "{e}"
    );

    // A broadcast view too large to allocate: an error, not an abort.
    let mut p = Pickler::new(false);
    p.state_dict(&[Spec {
        storage_numel: 1,
        size: vec![1 << 62],
        stride: vec![0],
        ..spec("huge", "FloatStorage", "0")
    }]);
    let bytes = synthetic_pth("archive", p.finish(), false, "little");
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    let e = ckpt.read_f32("huge").unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Corrupt(m) if m.contains("huge")),
        "{e}"
    );

    // A malformed pickle.
    let bytes = synthetic_pth(
        "archive",
        b"\x80\x02}(X\x05\x00\x00\x00ab".to_vec(),
        false,
        "little",
    );
    let e = expect_err(&bytes, "bad pickle");
    assert!(matches!(e, CheckpointError::Corrupt(_)), "{e}");
}

#[test]
fn damaged_synthetic_files_never_panic() {
    for deflate in [false, true] {
        let bytes = synthetic_pth("archive", state_dict_pickle(deflate), deflate, "little");
        // Every prefix.
        for n in 0..bytes.len() {
            if let Ok(c) = Checkpoint::from_bytes(&bytes[..n]) {
                panic!("prefix of {n} bytes loaded {} tensors", c.len());
            }
        }
        // Every single-byte change, then read everything that loads.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            if let Ok(c) = Checkpoint::from_bytes(&b) {
                let keys: Vec<String> = c.keys().map(str::to_string).collect();
                for k in keys {
                    let _ = c.read_f32(&k);
                    let _ = c.read_i64(&k);
                }
            }
        }
    }
}

fn synthetic_safetensors() -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let f = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let h: Vec<u8> = [0.5f32, -1.0]
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    let i: Vec<u8> = [3i64, -4].iter().flat_map(|x| x.to_le_bytes()).collect();
    let tensors = vec![
        (
            "a.weight",
            TensorView::new(Dtype::F32, vec![2, 3], &f).unwrap(),
        ),
        ("b.half", TensorView::new(Dtype::F16, vec![2], &h).unwrap()),
        (
            "c.idx",
            TensorView::new(Dtype::I64, vec![2, 1], &i).unwrap(),
        ),
    ];
    safetensors::tensor::serialize(tensors, None).unwrap()
}

#[test]
fn synthetic_safetensors_reads_and_never_panics() {
    let bytes = synthetic_safetensors();
    let ckpt = Checkpoint::from_bytes(&bytes).unwrap();
    assert_eq!(ckpt.format(), CheckpointFormat::Safetensors);
    assert_eq!(ckpt.len(), 3);
    assert_eq!(
        ckpt.read_f32_shaped("a.weight", &[2, 3]).unwrap(),
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
    assert_eq!(ckpt.read_f32("b.half").unwrap(), [0.5, -1.0]);
    assert_eq!(ckpt.read_i64("c.idx").unwrap(), [3, -4]);
    assert!(ckpt.info("a.weight").unwrap().is_contiguous());
    for n in 0..bytes.len() {
        let e = expect_err(&bytes[..n], "safetensors prefix");
        assert!(
            !matches!(
                e,
                CheckpointError::MissingKey { .. } | CheckpointError::ShapeMismatch { .. }
            ),
            "{e}"
        );
    }
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x21;
        if let Ok(c) = Checkpoint::from_bytes(&b) {
            let keys: Vec<String> = c.keys().map(str::to_string).collect();
            for k in keys {
                let _ = c.read_f32(&k);
                let _ = c.read_i64(&k);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stride gathering

#[test]
fn gather_strided_permutes_and_expands() {
    let s: Vec<u32> = (0..24).collect();
    // Contiguous.
    assert_eq!(
        gather_strided(&s, &[2, 3], &[3, 1], 0).unwrap(),
        [0, 1, 2, 3, 4, 5]
    );
    assert_eq!(contiguous_strides(&[2, 3, 4]), [12, 4, 1]);
    assert_eq!(contiguous_strides(&[]), Vec::<usize>::new());
    // Transpose of a contiguous (2, 3, 4) tensor to (4, 3, 2): strides (1, 4, 12).
    let t = gather_strided(&s, &[4, 3, 2], &[1, 4, 12], 0).unwrap();
    for i in 0..4 {
        for j in 0..3 {
            for k in 0..2 {
                assert_eq!(t[i * 6 + j * 2 + k], (k * 12 + j * 4 + i) as u32);
            }
        }
    }
    // Offset and a slice with a step (every other column).
    assert_eq!(
        gather_strided(&s, &[2, 2], &[6, 2], 1).unwrap(),
        [1, 3, 7, 9]
    );
    // Broadcast (stride 0) and scalars.
    assert_eq!(gather_strided(&s, &[3], &[0], 5).unwrap(), [5, 5, 5]);
    assert_eq!(gather_strided(&s, &[], &[], 7).unwrap(), [7]);
    // Empty views need no storage.
    assert_eq!(
        gather_strided(&s, &[0, 5], &[5, 1], 100).unwrap(),
        Vec::<u32>::new()
    );
    // Out of range, mismatched ranks, overflow: None.
    assert!(gather_strided(&s, &[5, 5], &[5, 1], 0).is_none());
    assert!(gather_strided(&s, &[2, 2], &[2], 0).is_none());
    assert!(gather_strided(&s, &[2], &[usize::MAX], 0).is_none());
    assert!(gather_strided(&s, &[1], &[1], 24).is_none());
}

#[test]
fn checkpoint_error_is_send_and_sync() {
    // `Checkpoint` itself is neither: it may borrow a single-threaded `ByteSource` (in the
    // browser, a JavaScript buffer).
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CheckpointError>();
}

// ---------------------------------------------------------------------------------------------
// Reading from a `ByteSource`

/// A byte source over a buffer that, like a JavaScript `Uint8Array`, copies every read (no
/// `as_slice`), and counts what it is asked for.
struct CountingSource {
    bytes: Vec<u8>,
    reads: Cell<usize>,
    bytes_read: Cell<u64>,
    largest_read: Cell<usize>,
    /// Reads touching bytes `fail.0..fail.1` fail (not with `UnexpectedEof`).
    fail: Cell<(u64, u64)>,
}

impl CountingSource {
    fn new(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            reads: Cell::new(0),
            bytes_read: Cell::new(0),
            largest_read: Cell::new(0),
            fail: Cell::new((0, 0)),
        }
    }

    fn failing(bytes: Vec<u8>, fail: std::ops::Range<u64>) -> Self {
        let source = Self::new(bytes);
        source.fail_on(fail);
        source
    }

    /// From now on, reads touching `fail` fail.
    fn fail_on(&self, fail: std::ops::Range<u64>) {
        self.fail.set((fail.start, fail.end));
    }
}

impl ByteSource for CountingSource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.reads.set(self.reads.get() + 1);
        self.bytes_read
            .set(self.bytes_read.get() + buf.len() as u64);
        self.largest_read
            .set(self.largest_read.get().max(buf.len()));
        let end = offset + buf.len() as u64;
        let (fail_start, fail_end) = self.fail.get();
        if offset < fail_end && fail_start < end {
            return Err(std::io::Error::other("the buffer went away"));
        }
        let piece = self
            .bytes
            .get(offset as usize..end as usize)
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end")
            })?;
        buf.copy_from_slice(piece);
        Ok(())
    }
}

/// Both readers agree on `bytes`: the same error (kind and message), or the same index and the
/// same values (or errors) for every tensor.
fn assert_same_outcome(bytes: &[u8], what: &str) {
    let source = CountingSource::new(bytes.to_vec());
    match (
        Checkpoint::from_bytes(bytes),
        Checkpoint::from_source(&source),
    ) {
        (Err(a), Err(b)) => {
            assert_eq!(
                std::mem::discriminant(&a),
                std::mem::discriminant(&b),
                "{what}: {a} / {b}"
            );
            assert_eq!(a.to_string(), b.to_string(), "{what}");
        }
        (Ok(a), Ok(b)) => {
            assert_same_tensors(&a, &b, what);
        }
        (a, b) => panic!("{what}: from_bytes {a:?}, from_source {b:?}"),
    }
}

/// Same keys, shapes, dtypes, and bit-identical values (or the same errors) for every tensor.
/// Returns the number of values compared.
fn assert_same_tensors(a: &Checkpoint<'_>, b: &Checkpoint<'_>, what: &str) -> usize {
    assert_eq!(a.format(), b.format(), "{what}");
    let keys: Vec<&str> = a.keys().collect();
    assert_eq!(keys, b.keys().collect::<Vec<_>>(), "{what}");
    let mut compared = 0;
    for key in keys {
        let (ia, ib) = (a.info(key).unwrap(), b.info(key).unwrap());
        assert_eq!(ia.shape, ib.shape, "{what}: {key}");
        assert_eq!(ia.dtype, ib.dtype, "{what}: {key}");
        assert_eq!(ia.strides(), ib.strides(), "{what}: {key}");
        match (a.read_f32(key), b.read_f32(key)) {
            (Ok(x), Ok(y)) => {
                assert_eq!(x.len(), y.len(), "{what}: {key}");
                assert!(
                    x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{what}: values of {key} differ"
                );
                compared += x.len();
            }
            (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string(), "{what}: {key}"),
            (x, y) => panic!("{what}: {key}: {x:?} / {y:?}"),
        }
        match (a.read_i64(key), b.read_i64(key)) {
            (Ok(x), Ok(y)) => {
                assert_eq!(x, y, "{what}: {key}");
                compared += x.len();
            }
            (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string(), "{what}: {key}"),
            (x, y) => panic!("{what}: {key}: {x:?} / {y:?}"),
        }
    }
    compared
}

/// Opens a reference file from a counting source, checks every tensor against `from_bytes`,
/// and checks that no read was much larger than the largest tensor's storage.
fn check_source_reads(name: &str) {
    let bytes = read_ref(name);
    let file_len = bytes.len() as u64;
    let from_bytes = Checkpoint::from_bytes(&bytes).unwrap();
    let source = CountingSource::new(bytes.clone());
    let ckpt = Checkpoint::from_source(&source).unwrap();
    let (open_reads, open_bytes, open_largest) = (
        source.reads.get(),
        source.bytes_read.get(),
        source.largest_read.get(),
    );
    let compared = assert_same_tensors(&from_bytes, &ckpt, name);
    let numel: usize = from_bytes
        .keys()
        .map(|k| from_bytes.info(k).unwrap().numel())
        .sum();
    assert_eq!(compared, numel, "{name}: values compared");

    let largest_tensor = ckpt
        .keys()
        .map(|k| {
            let info = ckpt.info(k).unwrap();
            info.numel() * info.dtype.size_in_bytes()
        })
        .max()
        .unwrap();
    let tensor_bytes: u64 = ckpt
        .keys()
        .map(|k| {
            let info = ckpt.info(k).unwrap();
            (info.numel() * info.dtype.size_in_bytes()) as u64
        })
        .sum();
    let (reads, total, largest) = (
        source.reads.get(),
        source.bytes_read.get(),
        source.largest_read.get(),
    );
    eprintln!(
        "{name}: {file_len} bytes, {} tensors, largest tensor {largest_tensor} bytes; opening: \
         {open_reads} reads, {open_bytes} bytes, largest {open_largest}; after reading every \
         tensor twice (f32 and i64): {reads} reads, {total} bytes, largest {largest}",
        ckpt.len()
    );
    // Opening reads the metadata only: the sniffed prefix, the zip's last 64 KiB and central
    // directory and data.pkl, or the safetensors header.
    assert!(
        open_bytes < 1 << 20,
        "{name}: opening read {open_bytes} bytes"
    );
    assert!(open_largest <= 65_535 + 22, "{name}: {open_largest}");
    // No read is larger than one tensor's storage (or the zip tail scanned for its end record).
    assert!(
        largest <= largest_tensor.max(65_535 + 22),
        "{name}: largest read {largest} bytes, largest tensor {largest_tensor}"
    );
    assert!(
        (largest as u64) < file_len / 4,
        "{name}: largest read {largest}"
    );
    // Every tensor was fetched (only read_f32 or read_i64 of each reads its data; the other
    // fails on the dtype before reading).
    assert!(total >= tensor_bytes, "{name}: {total} < {tensor_bytes}");
    assert!(
        total <= tensor_bytes + open_bytes,
        "{name}: {total} bytes read"
    );
}

#[test]
fn source_tiny_pth_reads_one_tensor_at_a_time() {
    check_source_reads(&tiny(".pth"));
}

#[test]
fn source_tiny_safetensors_reads_one_tensor_at_a_time() {
    check_source_reads(&tiny(".safetensors"));
}

#[test]
fn source_mobile_sam_pth_reads_one_tensor_at_a_time() {
    check_source_reads(&mobile_sam(".pth"));
}

#[test]
fn source_slices_and_vecs_are_byte_sources() {
    let bytes = read_ref(&tiny(".safetensors"));
    let a = Checkpoint::from_bytes(&bytes).unwrap();
    let slice: &[u8] = &bytes;
    let b = Checkpoint::from_source(&slice).unwrap();
    let c = Checkpoint::from_source(&bytes).unwrap();
    assert_same_tensors(&a, &b, "&[u8]");
    assert_same_tensors(&a, &c, "Vec<u8>");
}

#[test]
fn source_truncated_and_bad_inputs_give_the_same_errors() {
    let pth = read_ref(&tiny(".pth"));
    for frac in [0.0001, 0.1, 0.5, 0.9, 0.99] {
        let n = (pth.len() as f64 * frac) as usize;
        let source = CountingSource::new(pth[..n].to_vec());
        let e = Checkpoint::from_source(&source).unwrap_err();
        assert!(matches!(e, CheckpointError::Truncated(_)), "{frac}: {e}");
        assert_same_outcome(&pth[..n], "truncated pth");
    }
    for cut in [1usize, 10, 21, 22, 23, 100, 1000, 5000, 20_000] {
        assert_same_outcome(&pth[..pth.len() - cut], "truncated pth tail");
    }
    let st = read_ref(&tiny(".safetensors"));
    for n in [
        0usize,
        1,
        8,
        9,
        12,
        100,
        st.len() / 10,
        st.len() / 2,
        st.len() - 1,
    ] {
        if n > 8 {
            let source = CountingSource::new(st[..n].to_vec());
            let e = Checkpoint::from_source(&source).unwrap_err();
            assert!(matches!(e, CheckpointError::Truncated(_)), "{n}: {e}");
        }
        assert_same_outcome(&st[..n], "truncated safetensors");
    }
    let mut longer = st.clone();
    longer.extend_from_slice(&[0; 16]);
    assert_same_outcome(&longer, "safetensors with trailing bytes");

    let jpeg = sample_jpeg();
    assert_same_outcome(&jpeg, "jpeg");
    assert_same_outcome(b"<!DOCTYPE html><html><body>Sign in</body></html>", "html");
    assert_same_outcome(
        b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n",
        "lfs",
    );
    assert_same_outcome(&pseudo_random(4096, 99), "random bytes");
    assert_same_outcome(&build_zip(&[("a/b.txt", b"x".to_vec(), false)]), "zip");
}

#[test]
fn source_damaged_synthetic_files_give_the_same_results() {
    for deflate in [false, true] {
        let bytes = synthetic_pth("archive", state_dict_pickle(deflate), deflate, "little");
        assert_same_outcome(&bytes, "synthetic pth");
        for n in 0..bytes.len() {
            assert_same_outcome(&bytes[..n], "synthetic pth prefix");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            assert_same_outcome(&b, "synthetic pth with a changed byte");
        }
    }
    let bytes = synthetic_safetensors();
    for n in 0..=bytes.len() {
        assert_same_outcome(&bytes[..n], "synthetic safetensors prefix");
    }
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x21;
        assert_same_outcome(&b, "synthetic safetensors with a changed byte");
    }
}

#[test]
fn source_failures_are_read_errors() {
    // The source fails while the container is read.
    for name in [tiny(".pth"), tiny(".safetensors")] {
        let bytes = read_ref(&name);
        let len = bytes.len() as u64;
        let source = CountingSource::failing(bytes, 0..len);
        let e = Checkpoint::from_source(&source).unwrap_err();
        assert!(matches!(e, CheckpointError::Read(_)), "{name}: {e}");
        assert!(e.to_string().contains("the buffer went away"), "{e}");
    }
    let pth = read_ref(&tiny(".pth"));
    let len = pth.len() as u64;
    let source = CountingSource::failing(pth, len - 100..len);
    let e = Checkpoint::from_source(&source).unwrap_err();
    assert!(matches!(e, CheckpointError::Read(_)), "{e}");

    // ... or later, when a tensor is read.
    let st = read_ref(&tiny(".safetensors"));
    let header_end = 8 + u64::from_le_bytes(st[..8].try_into().unwrap());
    let len = st.len() as u64;
    let source = CountingSource::failing(st, header_end..len);
    let ckpt = Checkpoint::from_source(&source).unwrap();
    let key = ckpt.keys().next().unwrap().to_string();
    let e = ckpt.read_f32(&key).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Read(m) if m.contains(&key)),
        "{e}"
    );

    // A tensor (stored or deflated) some of whose bytes cannot be read.
    let mut failed = 0;
    for deflate in [false, true] {
        let bytes = synthetic_pth("archive", state_dict_pickle(deflate), deflate, "little");
        let from_bytes = Checkpoint::from_bytes(&bytes).unwrap();
        for i in 0..bytes.len() as u64 {
            let source = CountingSource::new(bytes.clone());
            let ckpt = Checkpoint::from_source(&source).unwrap();
            source.fail_on(i..i + 1);
            for key in from_bytes.keys() {
                if let Err(e) = ckpt.read_f32(key)
                    && from_bytes.read_f32(key).is_ok()
                {
                    assert!(matches!(e, CheckpointError::Read(_)), "{key}: {e}");
                    failed += 1;
                }
            }
        }
    }
    assert!(failed > 0);
}

#[test]
fn sam_from_source_reports_progress() {
    use burn::tensor::Device;
    use sam_core::Sam;

    let device = Device::flex();
    for name in [tiny(".pth"), mobile_sam(".pth")] {
        let bytes = read_ref(&name);
        let total_keys = Checkpoint::from_bytes(&bytes).unwrap().len();
        let reference = Sam::from_bytes(&bytes, None, &device).unwrap();
        let source = CountingSource::new(bytes);
        let mut calls: Vec<(usize, usize)> = Vec::new();
        let sam =
            Sam::from_source_with_progress(&source, None, &device, &mut |n, t| calls.push((n, t)))
                .unwrap();
        assert_eq!(sam.model_type, reference.model_type, "{name}");
        let pe = |s: &Sam| pollster::block_on(sam_core::readback::read_f32(s.image_pe())).unwrap();
        assert_eq!(pe(&sam), pe(&reference), "{name}: image_pe");

        assert!(
            calls.len() > total_keys / 2,
            "{name}: {} calls",
            calls.len()
        );
        assert!(calls.iter().all(|&(_, t)| t == total_keys), "{name}");
        assert!(
            calls.windows(2).all(|w| w[0].0 < w[1].0),
            "{name}: {calls:?}"
        );
        assert_eq!(calls.last(), Some(&(total_keys, total_keys)), "{name}");
        eprintln!(
            "{name}: {} progress calls for {total_keys} tensors; {} bytes read in {} reads \
             (largest {})",
            calls.len(),
            source.bytes_read.get(),
            source.reads.get(),
            source.largest_read.get()
        );

        let plain = Sam::from_source(&source, None, &device).unwrap();
        assert_eq!(pe(&plain), pe(&reference), "{name}: image_pe");
    }
}
