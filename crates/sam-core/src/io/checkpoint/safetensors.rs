//! `.safetensors` files: an 8-byte little-endian header length, a JSON header, then the
//! tensors' bytes (row-major, little-endian).

use ::safetensors::tensor::{Dtype, Metadata, SafeTensorError};

use super::source::Src;
use super::{
    CheckpointError, Result, StorageLoc, StoredDType, TensorInfo, contiguous_strides, io_error,
};

/// Largest header the safetensors crate accepts.
const MAX_HEADER: u64 = 100_000_000;

/// Whether the bytes start like a safetensors file: a plausible header length, then `{`.
pub(super) fn looks_like(bytes: &[u8]) -> bool {
    let Some(len) = header_len(bytes) else {
        return false;
    };
    if bytes.get(8) != Some(&b'{') || !(2..=MAX_HEADER).contains(&len) {
        return false;
    }
    // The header text seen so far must be printable (JSON).
    let end = bytes
        .len()
        .min(8 + 64)
        .min(8usize.saturating_add(len as usize));
    bytes[8..end]
        .iter()
        .all(|&b| b >= 0x20 || b == b'\n' || b == b'\r' || b == b'\t')
}

fn header_len(bytes: &[u8]) -> Option<u64> {
    let b = bytes.get(..8)?;
    Some(u64::from_le_bytes([
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
    ]))
}

/// Indexes every tensor, in the order of their data in the file, reading only the header.
pub(super) fn index(src: Src<'_>) -> Result<Vec<(String, TensorInfo)>> {
    let file_len = src.len();
    let head = src
        .bytes(0, file_len.min(8))
        .map_err(|e| io_error("the safetensors header length", e))?;
    let n = header_len(&head).unwrap_or(0);
    let Some(header_end) = n.checked_add(8).filter(|&e| e <= file_len) else {
        return Err(CheckpointError::Truncated(format!(
            "the safetensors header is {n} bytes long but the file has only {file_len} bytes"
        )));
    };
    if n > MAX_HEADER {
        return Err(CheckpointError::Corrupt(format!(
            "invalid safetensors header: {}",
            SafeTensorError::HeaderTooLarge
        )));
    }
    let header = src
        .bytes(8, header_end)
        .map_err(|e| io_error("the safetensors header", e))?;
    let invalid =
        |e: SafeTensorError| CheckpointError::Corrupt(format!("invalid safetensors header: {e}"));
    let text =
        std::str::from_utf8(&header).map_err(|e| invalid(SafeTensorError::InvalidHeader(e)))?;
    // `Metadata`'s deserializer also validates the offsets (contiguous, matching the shapes).
    let metadata: Metadata = serde_json::from_str(text)
        .map_err(|e| invalid(SafeTensorError::InvalidHeaderDeserialization(e)))?;
    drop(header);
    let total = u64::try_from(metadata.data_len())
        .ok()
        .and_then(|d| d.checked_add(header_end));
    match total {
        Some(total) if total == file_len => {}
        Some(total) if total > file_len => {
            return Err(CheckpointError::Truncated(format!(
                "the safetensors header describes {total} bytes but the file has only {file_len}"
            )));
        }
        Some(total) => {
            return Err(CheckpointError::Corrupt(format!(
                "the safetensors header describes {total} bytes but the file has {file_len}"
            )));
        }
        None => {
            return Err(CheckpointError::Corrupt(
                "the safetensors header does not match the file size".to_string(),
            ));
        }
    }

    let mut entries = Vec::new();
    for key in metadata.offset_keys() {
        let Some(info) = metadata.info(&key) else {
            continue;
        };
        let dtype = match info.dtype {
            Dtype::F32 => StoredDType::F32,
            Dtype::F16 => StoredDType::F16,
            Dtype::BF16 => StoredDType::BF16,
            Dtype::F64 => StoredDType::F64,
            Dtype::I64 => StoredDType::I64,
            Dtype::I32 => StoredDType::I32,
            Dtype::I16 => StoredDType::I16,
            Dtype::I8 => StoredDType::I8,
            Dtype::U8 => StoredDType::U8,
            Dtype::BOOL => StoredDType::Bool,
            other => {
                return Err(CheckpointError::Unsupported(format!(
                    "tensor '{key}' has dtype {other:?}, which is not supported"
                )));
            }
        };
        let (s, e) = info.data_offsets;
        let offset = |o: usize| header_end.checked_add(u64::try_from(o).ok()?);
        let range = offset(s)
            .zip(offset(e))
            .filter(|&(s, e)| s <= e && e <= file_len);
        let Some((start, end)) = range else {
            return Err(CheckpointError::Truncated(format!(
                "the data of tensor '{key}' ends past the end of the file"
            )));
        };
        entries.push((
            key,
            TensorInfo {
                strides: contiguous_strides(&info.shape),
                shape: info.shape.clone(),
                dtype,
                offset: 0,
                storage: StorageLoc::Range { start, end },
            },
        ));
    }
    Ok(entries)
}
