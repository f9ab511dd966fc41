//! `.safetensors` files: an 8-byte little-endian header length, a JSON header, then the
//! tensors' bytes (row-major, little-endian).

use ::safetensors::tensor::{Dtype, SafeTensorError, SafeTensors};

use super::{CheckpointError, Result, StorageLoc, StoredDType, TensorInfo, contiguous_strides};

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

/// The largest end offset in the header's `"data_offsets": [start, end]` entries (used to tell
/// a truncated file from one with trailing bytes).
fn max_data_offset(header: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(header).ok()?;
    let mut max = None;
    for (i, _) in text.match_indices("\"data_offsets\"") {
        let rest = &text[i + "\"data_offsets\"".len()..];
        let rest = rest
            .trim_start()
            .strip_prefix(':')?
            .trim_start()
            .strip_prefix('[')?;
        let close = rest.find(']')?;
        let end = rest[..close]
            .split(',')
            .nth(1)?
            .trim()
            .parse::<usize>()
            .ok()?;
        max = Some(max.map_or(end, |m: usize| m.max(end)));
    }
    max
}

/// Indexes every tensor, in the order of their data in the file.
pub(super) fn index(bytes: &[u8]) -> Result<Vec<(String, TensorInfo)>> {
    let n = header_len(bytes).unwrap_or(0);
    let header_end = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_add(8))
        .filter(|&e| e <= bytes.len());
    let Some(header_end) = header_end else {
        return Err(CheckpointError::Truncated(format!(
            "the safetensors header is {n} bytes long but the file has only {} bytes",
            bytes.len()
        )));
    };
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| match e {
        SafeTensorError::MetadataIncompleteBuffer => {
            let data_len = bytes.get(8..header_end).and_then(max_data_offset);
            match data_len.and_then(|d| d.checked_add(header_end)) {
                Some(total) if total > bytes.len() => CheckpointError::Truncated(format!(
                    "the safetensors header describes {total} bytes but the file has only {}",
                    bytes.len()
                )),
                Some(total) => CheckpointError::Corrupt(format!(
                    "the safetensors header describes {total} bytes but the file has {}",
                    bytes.len()
                )),
                None => CheckpointError::Corrupt(
                    "the safetensors header does not match the file size".to_string(),
                ),
            }
        }
        SafeTensorError::InvalidHeaderLength => CheckpointError::Truncated(
            "the safetensors header extends past the end of the file".to_string(),
        ),
        other => CheckpointError::Corrupt(format!("invalid safetensors header: {other}")),
    })?;

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
        let range = header_end
            .checked_add(s)
            .zip(header_end.checked_add(e))
            .filter(|&(s, e)| s <= e && e <= bytes.len());
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
