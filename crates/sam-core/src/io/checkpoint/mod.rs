//! Reads official PyTorch `.pth` checkpoints (the zip format written by `torch.save` since
//! torch 1.6) and `.safetensors` files, with no file system: from a byte buffer held in memory
//! ([`Checkpoint::from_bytes`]) or from any random-access [`ByteSource`]
//! ([`Checkpoint::from_source`], e.g. a JavaScript `Uint8Array` outside wasm memory).
//!
//! Opening a checkpoint detects the format and builds an index of the tensors (key, shape,
//! dtype and the byte range of their data in the source), reading only the container's
//! metadata (a prefix to sniff the format, the zip central directory and `data.pkl`, or the
//! safetensors header). Nothing else is read until a tensor is: [`Checkpoint::read_f32`]
//! fetches only the bytes of that tensor's storage (borrowed, not copied, when the source is
//! in memory) and allocates its values. A malformed or truncated input gives a
//! [`CheckpointError`], never a panic.
//!
//! State-dict discovery in `.pth` files: if the pickled top-level object is a dict holding
//! tensors, those tensors are the checkpoint (non-tensor entries are skipped). If it holds no
//! tensor but nested dicts that do (for example `{"model": state_dict, "epoch": 3}`), the reader
//! descends into the single such dict; when there are several, it picks the first of `model`,
//! `state_dict`, `model_state_dict`, `module`, `net`, `network`, `params` that is present, and
//! otherwise reports an error naming the candidates. Keys are exposed exactly as stored (a
//! `module.` prefix is left to the caller).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};

mod pickle;
mod pth;
mod safetensors;
mod source;
pub mod writer;

pub use source::ByteSource;
use source::{SourceFailure, SourceReader, Src};

/// The container format a [`Checkpoint`] was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// A zip archive written by `torch.save` (torch >= 1.6).
    Pth,
    /// A `.safetensors` file.
    Safetensors,
}

/// The element type a tensor is stored with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredDType {
    /// 32-bit float (`torch.float32`).
    F32,
    /// IEEE half (`torch.float16`).
    F16,
    /// bfloat16 (`torch.bfloat16`).
    BF16,
    /// 64-bit float (`torch.float64`).
    F64,
    /// 64-bit signed integer (`torch.int64`, e.g. `num_batches_tracked`).
    I64,
    /// 32-bit signed integer.
    I32,
    /// 16-bit signed integer.
    I16,
    /// 8-bit signed integer.
    I8,
    /// 8-bit unsigned integer (also untyped byte storages).
    U8,
    /// Boolean, one byte per element.
    Bool,
}

impl StoredDType {
    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            StoredDType::F64 | StoredDType::I64 => 8,
            StoredDType::F32 | StoredDType::I32 => 4,
            StoredDType::F16 | StoredDType::BF16 | StoredDType::I16 => 2,
            StoredDType::I8 | StoredDType::U8 | StoredDType::Bool => 1,
        }
    }

    /// Whether this is a floating-point type (readable with [`Checkpoint::read_f32`]).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            StoredDType::F32 | StoredDType::F16 | StoredDType::BF16 | StoredDType::F64
        )
    }

    /// The PyTorch name of the type (`float32`, `int64`, ...).
    pub fn name(self) -> &'static str {
        match self {
            StoredDType::F32 => "float32",
            StoredDType::F16 => "float16",
            StoredDType::BF16 => "bfloat16",
            StoredDType::F64 => "float64",
            StoredDType::I64 => "int64",
            StoredDType::I32 => "int32",
            StoredDType::I16 => "int16",
            StoredDType::I8 => "int8",
            StoredDType::U8 => "uint8",
            StoredDType::Bool => "bool",
        }
    }
}

impl fmt::Display for StoredDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a tensor's storage bytes are.
#[derive(Debug, Clone)]
enum StorageLoc {
    /// Bytes `start..end` of the checkpoint source.
    Range { start: u64, end: u64 },
    /// A compressed zip entry (index in the archive), decompressed on read to `size` bytes.
    Zipped {
        entry: usize,
        name: String,
        size: usize,
    },
}

/// Shape, dtype and location of one tensor.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// Logical shape (row-major).
    pub shape: Vec<usize>,
    /// Element type as stored.
    pub dtype: StoredDType,
    /// Strides in elements (row-major contiguous for safetensors).
    strides: Vec<usize>,
    /// Offset of the first element in the storage, in elements.
    offset: usize,
    storage: StorageLoc,
}

impl TensorInfo {
    /// Number of elements (product of the shape).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Strides in elements, as stored (`.pth` tensors may be non-contiguous views).
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// Whether the elements are stored in row-major order without gaps.
    pub fn is_contiguous(&self) -> bool {
        is_contiguous(&self.shape, &self.strides)
    }
}

/// Why a checkpoint could not be read, or a tensor not returned.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The bytes are not a checkpoint at all (an image, a web page, random bytes...).
    #[error("not a model checkpoint: {0}")]
    NotACheckpoint(String),
    /// The file ends early.
    #[error("the file seems truncated (download incomplete?): {0}")]
    Truncated(String),
    /// The file is a checkpoint but its structure is damaged.
    #[error("the checkpoint is corrupt: {0}")]
    Corrupt(String),
    /// A valid file using a feature this reader does not handle.
    #[error("unsupported checkpoint: {0}")]
    Unsupported(String),
    /// No tensor has this key.
    #[error("the checkpoint has no tensor named '{key}'")]
    MissingKey { key: String },
    /// The tensor's shape is not the one the model expects.
    #[error(
        "tensor '{key}' has shape {found:?} in the checkpoint, but the model expects {expected:?}"
    )]
    ShapeMismatch {
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// The byte source failed (other than by ending early).
    #[error("cannot read the checkpoint: {0}")]
    Read(String),
    /// The tensor's element type cannot be read this way.
    #[error(
        "tensor '{key}' is stored as {dtype}, which cannot be read this way \
         (floating-point tensors are read as f32, integer and bool tensors as i64)"
    )]
    DType { key: String, dtype: StoredDType },
}

type Result<T, E = CheckpointError> = std::result::Result<T, E>;

/// How many bytes at the start of the data are read to detect the format.
const SNIFF_BYTES: u64 = 1024;

/// The most elements one tensor read may return: 2^28 (1 GiB as f32; SAM's largest tensor,
/// ViT-H's MLP weight, has 6.6 M). A checkpoint may declare larger tensors (or views that
/// repeat one value with stride 0), but reading one is a [`CheckpointError::Corrupt`]
/// naming it, before anything is allocated or decompressed. Enforced by
/// [`Checkpoint::read_f32`] and [`Checkpoint::read_i64`].
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 28;

/// The highest compression ratio a DEFLATE zip entry may declare (uncompressed size over
/// compressed size): DEFLATE cannot exceed about 1032:1, so an entry claiming more is
/// corrupt or a decompression bomb. A deflated entry is, besides, only ever inflated up to
/// the bytes the tensor read needs (at most [`MAX_TENSOR_ELEMENTS`] elements), never to its
/// declared size. Enforced when a `.pth` is opened.
pub const MAX_DEFLATE_RATIO: u64 = 1032;

/// An index of the tensors in a checkpoint, borrowing its bytes or its [`ByteSource`].
///
/// Not `Send`/`Sync`: the source may be a single-threaded object (a JavaScript buffer).
#[derive(Clone)]
pub struct Checkpoint<'a> {
    src: Src<'a>,
    format: CheckpointFormat,
    entries: Vec<(String, TensorInfo)>,
    index: HashMap<String, usize>,
    /// The zip archive, kept to decompress DEFLATE entries on read (`.pth` only).
    zip: Option<zip::ZipArchive<SourceReader<'a>>>,
}

impl fmt::Debug for Checkpoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("format", &self.format)
            .field("bytes", &self.src.len())
            .field("tensors", &self.entries.len())
            .finish()
    }
}

impl<'a> Checkpoint<'a> {
    /// Detects the format from the bytes (zip magic `PK\x03\x04` => `.pth`; 8-byte
    /// little-endian header length followed by `{` => safetensors) and indexes the tensors.
    /// Tensor reads borrow from `bytes` where they can (stored, uncompressed data).
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        Self::open(Src::Slice(bytes))
    }

    /// Like [`from_bytes`](Self::from_bytes), over a random-access [`ByteSource`]: reads a
    /// prefix to detect the format, then only the container's metadata (zip central directory
    /// and `data.pkl`, or the safetensors header). Each later tensor read fetches only that
    /// tensor's storage bytes from the source.
    pub fn from_source(source: &'a dyn ByteSource) -> Result<Self> {
        Self::open(Src::Dyn(source))
    }

    fn open(src: Src<'a>) -> Result<Self> {
        let len = src.len();
        if len == 0 {
            return Err(CheckpointError::NotACheckpoint(format!(
                "the file is empty (0 bytes); {EXPECTED}"
            )));
        }
        let head = src
            .bytes(0, len.min(SNIFF_BYTES))
            .map_err(|e| io_error("the start of the file", e))?;
        if head.starts_with(b"PK\x03\x04") {
            drop(head);
            let (entries, zip) = pth::index(src)?;
            return Ok(Self::build(src, CheckpointFormat::Pth, entries, Some(zip)));
        }
        if head.starts_with(b"PK\x05\x06") {
            return Err(CheckpointError::NotACheckpoint(format!(
                "the file is an empty zip archive; {EXPECTED}"
            )));
        }
        if safetensors::looks_like(&head) {
            drop(head);
            let entries = safetensors::index(src)?;
            return Ok(Self::build(
                src,
                CheckpointFormat::Safetensors,
                entries,
                None,
            ));
        }
        Err(sniff_other(&head, len))
    }

    fn build(
        src: Src<'a>,
        format: CheckpointFormat,
        entries: Vec<(String, TensorInfo)>,
        zip: Option<zip::ZipArchive<SourceReader<'a>>>,
    ) -> Self {
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        Self {
            src,
            format,
            entries,
            index,
            zip,
        }
    }

    /// The container format.
    pub fn format(&self) -> CheckpointFormat {
        self.format
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the checkpoint holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Tensor keys in file order (pickle order for `.pth`, data order for safetensors).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// Shape and dtype of `key`, if present.
    pub fn info(&self, key: &str) -> Option<&TensorInfo> {
        self.index
            .get(key)
            .and_then(|&i| self.entries.get(i))
            .map(|(_, info)| info)
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    fn lookup(&self, key: &str) -> Result<&TensorInfo> {
        self.info(key).ok_or_else(|| CheckpointError::MissingKey {
            key: key.to_string(),
        })
    }

    /// Row-major f32 values of a floating tensor (f16/bf16/f64 converted), gathered through
    /// strides.
    pub fn read_f32(&self, key: &str) -> Result<Vec<f32>> {
        let info = self.lookup(key)?;
        let convert: fn(&[u8]) -> f32 = match info.dtype {
            StoredDType::F32 => |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            StoredDType::F16 => |b| half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            StoredDType::BF16 => |b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            StoredDType::F64 => {
                |b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
            dtype => {
                return Err(CheckpointError::DType {
                    key: key.to_string(),
                    dtype,
                });
            }
        };
        self.gather(key, info, convert)
    }

    /// Same as [`read_f32`](Self::read_f32), but first checks that the shape equals
    /// `expected` ([`CheckpointError::ShapeMismatch`] names key, expected and found shapes).
    pub fn read_f32_shaped(&self, key: &str, expected: &[usize]) -> Result<Vec<f32>> {
        let info = self.lookup(key)?;
        if info.shape != expected {
            return Err(CheckpointError::ShapeMismatch {
                key: key.to_string(),
                expected: expected.to_vec(),
                found: info.shape.clone(),
            });
        }
        self.read_f32(key)
    }

    /// Integer and bool tensors (e.g. `attention_bias_idxs`, `num_batches_tracked`) as i64,
    /// row-major.
    pub fn read_i64(&self, key: &str) -> Result<Vec<i64>> {
        let info = self.lookup(key)?;
        let convert: fn(&[u8]) -> i64 = match info.dtype {
            StoredDType::I64 => {
                |b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            }
            StoredDType::I32 => |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            StoredDType::I16 => |b| i16::from_le_bytes([b[0], b[1]]) as i64,
            StoredDType::I8 => |b| b[0] as i8 as i64,
            StoredDType::U8 => |b| b[0] as i64,
            StoredDType::Bool => |b| (b[0] != 0) as i64,
            dtype => {
                return Err(CheckpointError::DType {
                    key: key.to_string(),
                    dtype,
                });
            }
        };
        self.gather(key, info, convert)
    }

    /// The storage bytes a tensor's view reaches, and the view's offset (in elements) in
    /// them. For stored data only the elements the view spans are fetched (borrowed from an
    /// in-memory source); a DEFLATE zip entry is decompressed whole.
    fn storage_bytes(&self, key: &str, info: &TensorInfo) -> Result<(Cow<'a, [u8]>, usize)> {
        match &info.storage {
            &StorageLoc::Range { start, end } => {
                if start > end || end > self.src.len() {
                    return Err(CheckpointError::Truncated(format!(
                        "the data of tensor '{key}' ends past the end of the file"
                    )));
                }
                // Elements `offset..extent` of the storage, when they lie inside it; otherwise
                // the whole storage, for `gather_bytes` to report the view out of range.
                let elem = info.dtype.size_in_bytes();
                let span =
                    storage_extent(&info.shape, &info.strides, info.offset).and_then(|extent| {
                        let (lo, hi) = if extent == 0 {
                            (0, 0)
                        } else {
                            (info.offset.checked_mul(elem)?, extent.checked_mul(elem)?)
                        };
                        let lo = start.checked_add(u64::try_from(lo).ok()?)?;
                        let hi = start.checked_add(u64::try_from(hi).ok()?)?;
                        (hi <= end).then_some((lo, hi))
                    });
                let (from, to, offset) = match span {
                    Some((lo, hi)) => (lo, hi, 0),
                    None => (start, end, info.offset),
                };
                let bytes = self.src.bytes(from, to).map_err(|e| match e.kind() {
                    io::ErrorKind::OutOfMemory => CheckpointError::Corrupt(format!(
                        "tensor '{key}' is too large to hold in memory ({} bytes)",
                        to - from
                    )),
                    _ => io_error(&format!("the data of tensor '{key}'"), e),
                })?;
                Ok((bytes, offset))
            }
            StorageLoc::Zipped { entry, name, size } => {
                // Only the bytes the view reaches are inflated (the pth index checked that
                // they lie inside the declared size).
                let needed = storage_extent(&info.shape, &info.strides, info.offset)
                    .and_then(|extent| extent.checked_mul(info.dtype.size_in_bytes()))
                    .filter(|&n| n <= *size)
                    .ok_or_else(|| {
                        CheckpointError::Corrupt(format!(
                            "tensor '{key}' (shape {:?}, strides {:?}, offset {}) reaches past \
                             the end of its {size} bytes of storage",
                            info.shape, info.strides, info.offset
                        ))
                    })?;
                let mut zip = self.zip.clone().ok_or_else(|| {
                    CheckpointError::Corrupt(format!("no zip archive for tensor '{key}'"))
                })?;
                let file = zip.by_index(*entry).map_err(|e| match e {
                    zip::result::ZipError::Io(e) if SourceFailure::is(&e) => {
                        CheckpointError::Read(format!("zip entry '{name}' of tensor '{key}': {e}"))
                    }
                    e => CheckpointError::Corrupt(format!(
                        "cannot open zip entry '{name}' of tensor '{key}': {e}"
                    )),
                })?;
                let mut out = Vec::new();
                out.try_reserve_exact(needed).map_err(|_| {
                    CheckpointError::Corrupt(format!(
                        "zip entry '{name}' of tensor '{key}' is too large ({needed} bytes)"
                    ))
                })?;
                file.take(needed as u64)
                    .read_to_end(&mut out)
                    .map_err(|e| {
                        if SourceFailure::is(&e) {
                            CheckpointError::Read(format!(
                                "zip entry '{name}' of tensor '{key}': {e}"
                            ))
                        } else {
                            CheckpointError::Corrupt(format!(
                                "cannot decompress zip entry '{name}' of tensor '{key}': {e}"
                            ))
                        }
                    })?;
                if out.len() != needed {
                    return Err(CheckpointError::Corrupt(format!(
                        "zip entry '{name}' of tensor '{key}' holds {} bytes, expected {size}",
                        out.len()
                    )));
                }
                Ok((Cow::Owned(out), info.offset))
            }
        }
    }

    fn gather<T>(&self, key: &str, info: &TensorInfo, convert: fn(&[u8]) -> T) -> Result<Vec<T>> {
        match info.shape.iter().try_fold(1usize, |a, &n| a.checked_mul(n)) {
            Some(n) if n <= MAX_TENSOR_ELEMENTS => {}
            _ => {
                return Err(CheckpointError::Corrupt(format!(
                    "tensor '{key}' (shape {:?}) is too large: over the limit of \
                     {MAX_TENSOR_ELEMENTS} elements",
                    info.shape
                )));
            }
        }
        let (storage, offset) = self.storage_bytes(key, info)?;
        gather_bytes(
            &storage,
            info.dtype.size_in_bytes(),
            &info.shape,
            &info.strides,
            offset,
            convert,
        )
        .map_err(|e| match e {
            GatherError::OutOfRange => CheckpointError::Corrupt(format!(
                "tensor '{key}' (shape {:?}, strides {:?}, offset {}) reaches past the end of \
                 its {} bytes of storage",
                info.shape,
                info.strides,
                info.offset,
                storage.len()
            )),
            GatherError::TooLarge => CheckpointError::Corrupt(format!(
                "tensor '{key}' (shape {:?}) is too large to hold in memory",
                info.shape
            )),
        })
    }
}

/// An I/O error while reading `what`: the end of the data is a truncated file, a failure of
/// the byte source a read error, anything else (a bad DEFLATE stream...) corruption.
fn io_error(what: &str, e: io::Error) -> CheckpointError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        CheckpointError::Truncated(format!("{what} ends early ({e})"))
    } else if SourceFailure::is(&e) {
        CheckpointError::Read(format!("{what}: {e}"))
    } else {
        CheckpointError::Corrupt(format!("cannot read {what}: {e}"))
    }
}

const EXPECTED: &str = "expected a PyTorch checkpoint (.pth, a zip archive written by torch.save) or a .safetensors file";

/// Names what the file looks like from its first bytes `bytes` (its whole length is
/// `file_len`), for a file that is neither format.
fn sniff_other(bytes: &[u8], file_len: u64) -> CheckpointError {
    const LEGACY_MAGIC: &[u8] = &[
        0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
    ];
    if bytes.starts_with(LEGACY_MAGIC) {
        return CheckpointError::Unsupported(
            "this is a checkpoint in the legacy PyTorch format (saved by torch < 1.6 or with \
             _use_new_zipfile_serialization=False); load it in Python and re-save it with a recent \
             torch: torch.save(torch.load(path), new_path), or convert it to .safetensors"
                .to_string(),
        );
    }
    if bytes.len() > 1 && bytes[0] == 0x80 && bytes[1] <= 5 {
        return CheckpointError::Unsupported(
            "this is a bare Python pickle, not a torch.save zip archive; re-save it with a \
             recent torch (torch.save(state_dict, path)) or convert it to .safetensors"
                .to_string(),
        );
    }
    let head = &bytes[..bytes.len().min(512)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let what = if bytes.starts_with(b"\x89PNG") {
        "a PNG image".to_string()
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        "a JPEG image".to_string()
    } else if bytes.starts_with(b"GIF8") {
        "a GIF image".to_string()
    } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        "a WebP image".to_string()
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        "a gzip-compressed file (decompress it first)".to_string()
    } else if bytes.get(257..262) == Some(b"ustar") {
        "a tar archive (if it is a checkpoint from a very old torch, load it in Python and \
         re-save it with a recent torch)"
            .to_string()
    } else if text.starts_with("version https://git-lfs") {
        "a Git LFS pointer file, not the real data (fetch it with git lfs pull)".to_string()
    } else if text.trim_start().starts_with("<!doctype html") || text.contains("<html") {
        "a web page (HTML); the download probably failed or needs a login".to_string()
    } else if text.trim_start().starts_with('{') || text.trim_start().starts_with('[') {
        "a JSON or text file".to_string()
    } else if head
        .iter()
        .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        "a text file".to_string()
    } else {
        format!("unrecognised data ({file_len} bytes)")
    };
    CheckpointError::NotACheckpoint(format!("the file is {what}; {EXPECTED}"))
}

/// Row-major contiguous strides of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    let mut acc = 1usize;
    for (s, &n) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.saturating_mul(n);
    }
    strides
}

fn is_contiguous(shape: &[usize], strides: &[usize]) -> bool {
    if shape.contains(&0) {
        return true;
    }
    let mut expected = 1usize;
    for (&n, &s) in shape.iter().zip(strides).rev() {
        if n != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(n);
    }
    shape.len() == strides.len()
}

/// The number of storage elements a strided view needs (`offset + 1 + sum((n-1)*stride)`),
/// or `Some(0)` for an empty view; `None` on overflow or mismatched ranks.
pub(crate) fn storage_extent(shape: &[usize], strides: &[usize], offset: usize) -> Option<usize> {
    if shape.len() != strides.len() {
        return None;
    }
    if shape.contains(&0) {
        return Some(0);
    }
    let mut last = offset;
    for (&n, &s) in shape.iter().zip(strides) {
        last = last.checked_add((n - 1).checked_mul(s)?)?;
    }
    last.checked_add(1)
}

/// Storage element indices of a strided view, in row-major order of the view.
struct StridedIndices<'s> {
    shape: &'s [usize],
    strides: &'s [usize],
    idx: Vec<usize>,
    cur: usize,
    remaining: usize,
}

impl<'s> StridedIndices<'s> {
    fn new(shape: &'s [usize], strides: &'s [usize], offset: usize, numel: usize) -> Self {
        Self {
            shape,
            strides,
            idx: vec![0; shape.len()],
            cur: offset,
            remaining: numel,
        }
    }
}

impl Iterator for StridedIndices<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let out = self.cur;
        for d in (0..self.shape.len()).rev() {
            let (n, s) = (self.shape[d], self.strides[d]);
            self.idx[d] += 1;
            self.cur = self.cur.wrapping_add(s);
            if self.idx[d] < n {
                break;
            }
            self.cur = self.cur.wrapping_sub(s.wrapping_mul(n));
            self.idx[d] = 0;
        }
        Some(out)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

/// Gathers the elements of a strided view of `storage` into row-major order: element
/// `[i0, i1, ...]` is `storage[offset + i0*strides[0] + i1*strides[1] + ...]`.
/// Returns `None` when the ranks differ or the view reaches past the end of `storage`.
pub fn gather_strided<T: Copy>(
    storage: &[T],
    shape: &[usize],
    strides: &[usize],
    offset: usize,
) -> Option<Vec<T>> {
    let extent = storage_extent(shape, strides, offset)?;
    if extent > storage.len() {
        return None;
    }
    let numel = shape.iter().try_fold(1usize, |a, &n| a.checked_mul(n))?;
    let mut out = Vec::new();
    out.try_reserve_exact(numel).ok()?;
    for i in StridedIndices::new(shape, strides, offset, numel) {
        out.push(*storage.get(i)?);
    }
    Some(out)
}

/// Why [`gather_bytes`] failed.
enum GatherError {
    /// The view reaches past the end of the storage (or its size overflows).
    OutOfRange,
    /// The output cannot be allocated.
    TooLarge,
}

/// Like [`gather_strided`] over raw little-endian bytes of `elem` bytes per element.
fn gather_bytes<T>(
    storage: &[u8],
    elem: usize,
    shape: &[usize],
    strides: &[usize],
    offset: usize,
    convert: fn(&[u8]) -> T,
) -> Result<Vec<T>, GatherError> {
    use GatherError::OutOfRange;
    let extent = storage_extent(shape, strides, offset).ok_or(OutOfRange)?;
    if extent.checked_mul(elem).ok_or(OutOfRange)? > storage.len() {
        return Err(OutOfRange);
    }
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &n| a.checked_mul(n))
        .ok_or(OutOfRange)?;
    if numel == 0 {
        return Ok(Vec::new());
    }
    if is_contiguous(shape, strides) {
        let start = offset.checked_mul(elem).ok_or(OutOfRange)?;
        let len = numel.checked_mul(elem).ok_or(OutOfRange)?;
        let end = start.checked_add(len).ok_or(OutOfRange)?;
        let bytes = storage.get(start..end).ok_or(OutOfRange)?;
        return Ok(bytes.chunks_exact(elem).map(convert).collect());
    }
    // A strided view may repeat elements (stride 0), so its size is not bounded by the
    // storage's: allocate fallibly.
    let mut out = Vec::new();
    out.try_reserve_exact(numel)
        .map_err(|_| GatherError::TooLarge)?;
    for i in StridedIndices::new(shape, strides, offset, numel) {
        let start = i.checked_mul(elem).ok_or(OutOfRange)?;
        let end = start.checked_add(elem).ok_or(OutOfRange)?;
        out.push(convert(storage.get(start..end).ok_or(OutOfRange)?));
    }
    Ok(out)
}
