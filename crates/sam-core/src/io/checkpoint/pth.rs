//! `.pth` files written by `torch.save` (torch >= 1.6): a zip archive `<root>/data.pkl`,
//! `<root>/data/<key>` (one entry per storage), `<root>/byteorder`, ... where `<root>` is
//! usually the file stem (older versions use `archive`).

use std::collections::HashMap;
use std::io::Read;
use std::rc::Rc;

use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

use super::pickle::{self, PickleError, TensorRef, Value};
use super::source::{SourceFailure, SourceReader, Src};
use super::{
    CheckpointError, MAX_DEFLATE_RATIO, Result, StorageLoc, TensorInfo, io_error, storage_extent,
};

/// Largest `data.pkl` accepted (a vit_h state dict pickle is well under 1 MiB).
const MAX_PICKLE_BYTES: u64 = 256 << 20;

/// Keys tried, in order, when the top-level dict holds several dicts of tensors.
const PREFERRED_KEYS: &[&str] = &[
    "model",
    "state_dict",
    "model_state_dict",
    "module",
    "net",
    "network",
    "params",
];

/// How deep nested dicts are searched for the state dict.
const MAX_NESTING: usize = 4;

/// How many values are looked at, at most, when searching nested dicts for tensors.
const SEARCH_BUDGET: usize = 1 << 20;

type Zip<'a> = ZipArchive<SourceReader<'a>>;

fn zip_error(context: &str, e: ZipError) -> CheckpointError {
    match e {
        ZipError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            CheckpointError::Truncated(format!("{context}: the zip data ends early"))
        }
        ZipError::Io(io) if SourceFailure::is(&io) => {
            CheckpointError::Read(format!("{context}: {io}"))
        }
        ZipError::UnsupportedArchive(m) => {
            CheckpointError::Unsupported(format!("{context}: unsupported zip feature ({m})"))
        }
        other => CheckpointError::Corrupt(format!("{context}: {other}")),
    }
}

/// Whether the zip "end of central directory" record is in the last 64 KiB + 22 bytes.
fn has_end_of_central_directory(src: Src<'_>) -> Result<bool> {
    let len = src.len();
    let tail = src
        .bytes(len.saturating_sub(65_535 + 22), len)
        .map_err(|e| io_error("the end of the zip archive", e))?;
    Ok(tail.windows(4).any(|w| w == b"PK\x05\x06"))
}

/// Parses the archive and the pickle and indexes every tensor of the state dict.
pub(super) fn index(src: Src<'_>) -> Result<(Vec<(String, TensorInfo)>, Zip<'_>)> {
    if !has_end_of_central_directory(src)? {
        return Err(CheckpointError::Truncated(format!(
            "the zip archive has no central directory at its end ({} bytes read)",
            src.len()
        )));
    }
    let mut zip =
        ZipArchive::new(SourceReader::new(src)).map_err(|e| zip_error("zip archive", e))?;

    // The root folder is the one holding data.pkl.
    let pkl_name = zip
        .file_names()
        .filter(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .min_by_key(|n| n.len())
        .or_else(|| zip.file_names().find(|n| *n == "data.pkl"))
        .map(str::to_string);
    let Some(pkl_name) = pkl_name else {
        return Err(CheckpointError::NotACheckpoint(
            "the file is a zip archive, but has no data.pkl, so it is not a PyTorch checkpoint; \
             expected a .pth written by torch.save or a .safetensors file"
                .to_string(),
        ));
    };
    let root = pkl_name.strip_suffix("data.pkl").unwrap_or("").to_string();

    if let Some(order) = read_small(&mut zip, &format!("{root}byteorder"), 64)? {
        let order = String::from_utf8_lossy(&order).trim().to_string();
        if order != "little" {
            return Err(CheckpointError::Unsupported(format!(
                "the checkpoint was saved on a '{order}'-endian machine; only little-endian \
                 checkpoints are supported (re-save it on a little-endian machine or as \
                 .safetensors)"
            )));
        }
    }

    let pkl = read_small(&mut zip, &pkl_name, MAX_PICKLE_BYTES)?
        .ok_or_else(|| CheckpointError::Corrupt(format!("cannot open {pkl_name}")))?;
    let top = pickle::unpickle(&pkl).map_err(|e| match e {
        PickleError::Corrupt(m) => CheckpointError::Corrupt(m),
        PickleError::Unsupported(m) => CheckpointError::Unsupported(m),
    })?;
    let is_torchscript = zip
        .file_names()
        .any(|n| n == format!("{root}constants.pkl") || n.starts_with(&format!("{root}code/")));
    let tensors = find_state_dict(&top, is_torchscript)?;
    drop(top);

    let mut storages: HashMap<String, (StorageLoc, usize)> = HashMap::new();
    let mut entries = Vec::with_capacity(tensors.len());
    for (key, t) in tensors {
        let dtype = t.dtype.clone().map_err(|name| {
            CheckpointError::Unsupported(format!(
                "tensor '{key}' uses storage type {name}, which is not supported"
            ))
        })?;
        let skey = &t.storage.key;
        let (storage, storage_len) = match storages.get(skey) {
            Some(s) => s.clone(),
            None => {
                let s = locate_storage(&mut zip, src.len(), &root, skey, &key)?;
                storages.insert(skey.clone(), s.clone());
                s
            }
        };
        let numel = t.shape.iter().try_fold(1usize, |a, &n| a.checked_mul(n));
        let extent = storage_extent(&t.shape, &t.strides, t.offset);
        let needed = extent.and_then(|e| e.checked_mul(dtype.size_in_bytes()));
        match (numel, needed) {
            (Some(_), Some(needed)) if needed <= storage_len => {}
            (Some(_), Some(needed)) => {
                return Err(CheckpointError::Corrupt(format!(
                    "tensor '{key}' (shape {:?}, {dtype}) needs {needed} bytes of storage \
                     data/{skey}, which holds only {storage_len}",
                    t.shape
                )));
            }
            _ => {
                return Err(CheckpointError::Corrupt(format!(
                    "tensor '{key}' has an impossible shape {:?} / stride {:?}",
                    t.shape, t.strides
                )));
            }
        }
        entries.push((
            key,
            TensorInfo {
                shape: t.shape.clone(),
                dtype,
                strides: t.strides.clone(),
                offset: t.offset,
                storage,
            },
        ));
    }
    Ok((entries, zip))
}

/// Reads a small entry whole; `Ok(None)` when absent.
fn read_small(zip: &mut Zip<'_>, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
    let Some(i) = zip.index_for_name(name) else {
        return Ok(None);
    };
    let file = zip.by_index(i).map_err(|e| zip_error(name, e))?;
    if file.size() > limit {
        return Err(CheckpointError::Corrupt(format!(
            "{name} is implausibly large ({} bytes)",
            file.size()
        )));
    }
    let mut out = Vec::new();
    file.take(limit)
        .read_to_end(&mut out)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                CheckpointError::Truncated(format!("{name} ends early"))
            }
            _ if SourceFailure::is(&e) => CheckpointError::Read(format!("{name}: {e}")),
            _ => CheckpointError::Corrupt(format!("cannot read {name}: {e}")),
        })?;
    Ok(Some(out))
}

/// Finds the bytes of storage `<root>/data/<skey>`: a byte range for a stored entry, the
/// entry index for a compressed one. Returns the location and its length in bytes.
fn locate_storage(
    zip: &mut Zip<'_>,
    file_len: u64,
    root: &str,
    skey: &str,
    key: &str,
) -> Result<(StorageLoc, usize)> {
    let name = format!("{root}data/{skey}");
    let Some(i) = zip.index_for_name(&name) else {
        return Err(CheckpointError::Corrupt(format!(
            "the data of tensor '{key}' ({name}) is missing from the archive"
        )));
    };
    let file = zip.by_index_raw(i).map_err(|e| zip_error(&name, e))?;
    let size = usize::try_from(file.size()).map_err(|_| {
        CheckpointError::Unsupported(format!("{name} is too large for this platform"))
    })?;
    match file.compression() {
        CompressionMethod::Stored => {
            let start = file.data_start();
            let end = start.checked_add(file.size());
            if file.compressed_size() != file.size() {
                return Err(CheckpointError::Corrupt(format!(
                    "{name} is stored uncompressed but its sizes differ"
                )));
            }
            match end {
                Some(end) if end <= file_len => Ok((StorageLoc::Range { start, end }, size)),
                _ => Err(CheckpointError::Truncated(format!(
                    "the data of tensor '{key}' ({name}) ends past the end of the file"
                ))),
            }
        }
        CompressionMethod::Deflated
            if file.size()
                > file
                    .compressed_size()
                    .saturating_mul(MAX_DEFLATE_RATIO)
                    .saturating_add(64) =>
        {
            Err(CheckpointError::Corrupt(format!(
                "{name} claims {} bytes from {} compressed bytes, more than DEFLATE can \
                 give (a decompression bomb?)",
                file.size(),
                file.compressed_size()
            )))
        }
        CompressionMethod::Deflated => Ok((
            StorageLoc::Zipped {
                entry: i,
                name,
                size,
            },
            size,
        )),
        other => Err(CheckpointError::Unsupported(format!(
            "{name} is compressed with {other}, which is not supported (only stored and \
             deflate entries are)"
        ))),
    }
}

/// A dict's (key, value) pairs with string keys, duplicates resolved like Python (the last
/// value wins, at the first position).
fn dict_items(d: &Value) -> Option<Vec<(String, Value)>> {
    let Value::Dict(d) = d else { return None };
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut pos: HashMap<String, usize> = HashMap::new();
    for (k, v) in d.borrow().iter() {
        let key = match k {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
            _ => continue,
        };
        match pos.get(&key) {
            Some(&i) => {
                if let Some(slot) = out.get_mut(i) {
                    slot.1 = v.clone();
                }
            }
            None => {
                pos.insert(key.clone(), out.len());
                out.push((key, v.clone()));
            }
        }
    }
    Some(out)
}

fn is_tensor(v: &Value) -> bool {
    matches!(v, Value::Tensor(_) | Value::UnsupportedTensor(_))
}

/// Whether a dict holds a tensor, directly or in nested dicts (up to `depth` levels),
/// looking at no more than `budget` values in all.
fn holds_tensors(v: &Value, depth: usize, budget: &mut usize) -> bool {
    let Value::Dict(d) = v else {
        return false;
    };
    let items = d.borrow();
    for (_, v) in items.iter() {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        if is_tensor(v) {
            return true;
        }
    }
    depth > 0
        && items
            .iter()
            .any(|(_, v)| holds_tensors(v, depth - 1, budget))
}

/// Finds the state dict: the top-level dict if it holds tensors, else the single nested dict
/// of tensors (or the preferred one by name). Returns the tensors in file order.
fn find_state_dict(top: &Value, is_torchscript: bool) -> Result<Vec<(String, Rc<TensorRef>)>> {
    let mut current = top.clone();
    let mut path = String::new();
    for _ in 0..=MAX_NESTING {
        let Some(items) = dict_items(&current) else {
            let hint = if is_torchscript {
                "this is a TorchScript archive (torch.jit.save); save the model's state_dict() \
                 with torch.save instead"
                    .to_string()
            } else {
                format!(
                    "the pickled object is {}, not a dict of tensors (a state dict); save \
                     model.state_dict() with torch.save",
                    current.kind()
                )
            };
            return Err(CheckpointError::Unsupported(hint));
        };
        if items.is_empty() || items.iter().any(|(_, v)| is_tensor(v)) {
            let mut out = Vec::with_capacity(items.len());
            for (k, v) in items {
                match &v {
                    Value::Tensor(t) => out.push((k, t.clone())),
                    Value::UnsupportedTensor(f) => {
                        return Err(CheckpointError::Unsupported(format!(
                            "tensor '{k}' is a kind of tensor this reader does not support \
                             (rebuilt by {f}: quantized, sparse or similar)"
                        )));
                    }
                    _ => {}
                }
            }
            return Ok(out);
        }
        let mut budget = SEARCH_BUDGET;
        let candidates: Vec<&(String, Value)> = items
            .iter()
            .filter(|(_, v)| holds_tensors(v, MAX_NESTING, &mut budget))
            .collect();
        let chosen = match candidates.as_slice() {
            [] => {
                return Err(CheckpointError::NotACheckpoint(format!(
                    "the pickled dict{} holds no tensors (keys: {})",
                    if path.is_empty() {
                        String::new()
                    } else {
                        format!(" '{path}'")
                    },
                    preview(items.iter().map(|(k, _)| k.as_str()))
                )));
            }
            [one] => *one,
            many => {
                let preferred = PREFERRED_KEYS
                    .iter()
                    .find_map(|p| many.iter().find(|(k, _)| k == p));
                match preferred {
                    Some(c) => *c,
                    None => {
                        return Err(CheckpointError::Unsupported(format!(
                            "the checkpoint holds several dicts of tensors ({}); cannot tell \
                             which one is the model's state dict",
                            preview(many.iter().map(|(k, _)| k.as_str()))
                        )));
                    }
                }
            }
        };
        path = if path.is_empty() {
            chosen.0.clone()
        } else {
            format!("{path}.{}", chosen.0)
        };
        current = chosen.1.clone();
    }
    Err(CheckpointError::Unsupported(format!(
        "the state dict is nested too deeply (at '{path}')"
    )))
}

fn preview<'k>(keys: impl Iterator<Item = &'k str>) -> String {
    let keys: Vec<&str> = keys.collect();
    let mut s = keys
        .iter()
        .take(8)
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > 8 {
        s.push_str(&format!(", ... ({} in all)", keys.len()));
    }
    s
}
