//! Writes a state dict in the official PyTorch `.pth` format, the zip archive `torch.save`
//! writes since torch 1.6 (the layout [`Checkpoint`](super::Checkpoint) reads and
//! `torch.load` reads, `weights_only=True` included):
//!
//! ```text
//! <archive>/data.pkl                  pickle protocol 2: OrderedDict of _rebuild_tensor_v2(...)
//! <archive>/.format_version           "1"
//! <archive>/.storage_alignment        "64"
//! <archive>/byteorder                 "little"
//! <archive>/data/<i>                  tensor i's storage, little-endian, 64-byte aligned
//! <archive>/version                   "3\n"
//! <archive>/.data/serialization_id    40 decimal digits
//! ```
//!
//! Every entry is stored (not compressed); each tensor has a storage of its own, contiguous
//! (row-major strides, offset 0). The tensors are written one at a time: the caller fills
//! one tensor's bytes, which go to the output before the next is asked for, so a file of
//! several GiB is written in the memory of its largest tensor. Used by
//! [`crate::fixture`] to write random-weight checkpoints for tests.

use std::io::{self, Seek, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::StoredDType;

/// The alignment `torch.save` gives storages in the archive (bytes).
const STORAGE_ALIGNMENT: u16 = 64;

/// Name, shape and element type of one tensor of a state dict to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// State-dict key (`image_encoder.patch_embed.proj.weight`).
    pub key: String,
    /// Shape (row-major; empty for a 0-d tensor such as `num_batches_tracked`).
    pub shape: Vec<usize>,
    /// Element type of the storage.
    pub dtype: StoredDType,
}

impl TensorSpec {
    /// Number of elements (1 for a 0-d tensor).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Size of the storage in bytes.
    pub fn byte_len(&self) -> usize {
        self.numel() * self.dtype.size_in_bytes()
    }
}

/// Why a `.pth` could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The output failed.
    #[error("cannot write the checkpoint: {0}")]
    Io(#[from] io::Error),
    /// The zip archive could not be written.
    #[error("cannot write the checkpoint's zip archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    /// A tensor's bytes do not match its spec, or its key or shape cannot be written.
    #[error("tensor '{key}': {what}")]
    Tensor { key: String, what: String },
}

/// Writes `tensors` as a torch `.pth` zip archive whose entries lie under `archive/` (torch
/// uses the file name without extension). `fill(i, spec, buf)` appends tensor `i`'s
/// little-endian row-major bytes to the empty `buf` (exactly [`TensorSpec::byte_len`]
/// bytes). `serialization_id` goes to `.data/serialization_id` (torch writes a random one;
/// pass a fixed value for reproducible files). Returns the output.
pub fn write_pth<W, F>(
    out: W,
    archive: &str,
    tensors: &[TensorSpec],
    serialization_id: u128,
    mut fill: F,
) -> Result<W, WriteError>
where
    W: Write + Seek,
    F: FnMut(usize, &TensorSpec, &mut Vec<u8>) -> Result<(), WriteError>,
{
    let mut zip = ZipWriter::new(out);
    let stored = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .last_modified_time(DateTime::default());
    let small = |zip: &mut ZipWriter<W>, name: &str, bytes: &[u8]| -> Result<(), WriteError> {
        zip.start_file(format!("{archive}/{name}"), stored)?;
        zip.write_all(bytes)?;
        Ok(())
    };
    small(&mut zip, "data.pkl", &state_dict_pickle(tensors)?)?;
    small(&mut zip, ".format_version", b"1")?;
    small(
        &mut zip,
        ".storage_alignment",
        STORAGE_ALIGNMENT.to_string().as_bytes(),
    )?;
    small(&mut zip, "byteorder", b"little")?;
    let mut buf = Vec::new();
    for (i, spec) in tensors.iter().enumerate() {
        buf.clear();
        fill(i, spec, &mut buf)?;
        if buf.len() != spec.byte_len() {
            return Err(WriteError::Tensor {
                key: spec.key.clone(),
                what: format!(
                    "{} bytes given, {} expected for shape {:?} of {}",
                    buf.len(),
                    spec.byte_len(),
                    spec.shape,
                    spec.dtype
                ),
            });
        }
        let options = stored
            .with_alignment(STORAGE_ALIGNMENT)
            .large_file(buf.len() >= u32::MAX as usize);
        zip.start_file(format!("{archive}/data/{i}"), options)?;
        zip.write_all(&buf)?;
    }
    small(&mut zip, "version", b"3\n")?;
    small(
        &mut zip,
        ".data/serialization_id",
        format!("{serialization_id:040}").as_bytes(),
    )?;
    Ok(zip.finish()?)
}

/// The `torch.XStorage` class of a dtype.
fn storage_class(dtype: StoredDType) -> &'static str {
    match dtype {
        StoredDType::F32 => "FloatStorage",
        StoredDType::F16 => "HalfStorage",
        StoredDType::BF16 => "BFloat16Storage",
        StoredDType::F64 => "DoubleStorage",
        StoredDType::I64 => "LongStorage",
        StoredDType::I32 => "IntStorage",
        StoredDType::I16 => "ShortStorage",
        StoredDType::I8 => "CharStorage",
        StoredDType::U8 => "ByteStorage",
        StoredDType::Bool => "BoolStorage",
    }
}

/// Pickle opcodes used (protocol 2, the subset `torch.save` emits for a state dict).
mod op {
    pub const PROTO: u8 = 0x80;
    pub const GLOBAL: u8 = b'c';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const REDUCE: u8 = b'R';
    pub const MARK: u8 = b'(';
    pub const TUPLE: u8 = b't';
    pub const BINUNICODE: u8 = b'X';
    pub const BININT: u8 = b'J';
    pub const BINPERSID: u8 = b'Q';
    pub const NEWFALSE: u8 = 0x89;
    pub const SETITEMS: u8 = b'u';
    pub const STOP: u8 = b'.';
}

/// `data.pkl` of a state dict: `OrderedDict([(key, _rebuild_tensor_v2(storage, 0, size,
/// stride, False, OrderedDict())), ...])`, each storage the persistent id `('storage',
/// torch.XStorage, '<i>', 'cpu', numel)`.
fn state_dict_pickle(tensors: &[TensorSpec]) -> Result<Vec<u8>, WriteError> {
    let mut p = Pickle(Vec::new());
    p.0.extend([op::PROTO, 2]);
    p.global("collections", "OrderedDict");
    p.0.extend([op::EMPTY_TUPLE, op::REDUCE, op::MARK]);
    for (i, t) in tensors.iter().enumerate() {
        let int = |n: usize| {
            i32::try_from(n).map_err(|_| WriteError::Tensor {
                key: t.key.clone(),
                what: format!("size {n} past the 32-bit integers this writer emits"),
            })
        };
        p.str(&t.key)?;
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.0.extend([op::MARK, op::MARK]);
        p.str("storage")?;
        p.global("torch", storage_class(t.dtype));
        p.str(&i.to_string())?;
        p.str("cpu")?;
        p.int(int(t.numel())?);
        p.0.extend([op::TUPLE, op::BINPERSID]);
        p.int(0);
        p.0.push(op::MARK);
        for &n in &t.shape {
            p.int(int(n)?);
        }
        p.0.extend([op::TUPLE, op::MARK]);
        for s in super::contiguous_strides(&t.shape) {
            p.int(int(s)?);
        }
        p.0.extend([op::TUPLE, op::NEWFALSE]);
        p.global("collections", "OrderedDict");
        p.0.extend([op::EMPTY_TUPLE, op::REDUCE, op::TUPLE, op::REDUCE]);
    }
    p.0.extend([op::SETITEMS, op::STOP]);
    Ok(p.0)
}

struct Pickle(Vec<u8>);

impl Pickle {
    fn global(&mut self, module: &str, name: &str) {
        self.0.push(op::GLOBAL);
        self.0
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }

    fn str(&mut self, s: &str) -> Result<(), WriteError> {
        let len = u32::try_from(s.len()).map_err(|_| WriteError::Tensor {
            key: s.chars().take(64).collect(),
            what: "key longer than 4 GiB".into(),
        })?;
        self.0.push(op::BINUNICODE);
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }

    fn int(&mut self, n: i32) {
        self.0.push(op::BININT);
        self.0.extend_from_slice(&n.to_le_bytes());
    }
}
