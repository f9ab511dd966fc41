//! Minimal NumPy `.npy` reader/writer for little-endian `float32` arrays.
//!
//! Reading accepts format versions 1.0, 2.0 and 3.0, C order, dtypes `<f4`
//! (also `<f8` and `<f2`, converted to `f32`). Big-endian (`>f4`), other
//! dtypes, Fortran order and trailing bytes after the data are errors.
//! Writing produces exactly the bytes of `np.save` for a C-contiguous
//! `float32` array (version 1.0 header unless it does not fit in 64 KiB).

/// Errors from [`read_npy_f32`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NpyError {
    /// The file does not start with `\x93NUMPY`.
    #[error("not a .npy file (bad magic)")]
    BadMagic,
    /// Format version other than 1.0, 2.0 or 3.0.
    #[error("unsupported .npy version {0}.{1}")]
    UnsupportedVersion(u8, u8),
    /// The header dictionary could not be parsed.
    #[error("bad .npy header: {0}")]
    BadHeader(String),
    /// A dtype other than `<f4`, `<f8` or `<f2`.
    #[error("unsupported dtype {0:?} (expected '<f4', '<f8' or '<f2')")]
    UnsupportedDtype(String),
    /// `fortran_order` is `True`.
    #[error("Fortran-order arrays are not supported")]
    FortranOrder,
    /// Fewer bytes than the header (or the shape) requires.
    #[error("truncated .npy: expected {expected} bytes, found {found}")]
    Truncated {
        /// Bytes required.
        expected: usize,
        /// Bytes available.
        found: usize,
    },
    /// More data bytes than the shape requires.
    #[error("trailing data in .npy: expected {expected} data bytes, found {found}")]
    TrailingData {
        /// Data bytes required by the shape.
        expected: usize,
        /// Data bytes present.
        found: usize,
    },
}

/// A C-order `f32` array.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Dimensions (empty for a scalar).
    pub shape: Vec<usize>,
    /// Elements in C (row-major) order; `shape.iter().product()` of them.
    pub data: Vec<f32>,
}

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy's `ARRAY_ALIGN`.
const ARRAY_ALIGN: usize = 64;
/// The longest header read, in bytes: 64 KiB (numpy writes about 128 bytes and itself
/// refuses headers over 10,000 bytes unless told otherwise). A longer header is
/// [`NpyError::BadHeader`]. Enforced by [`read_npy_f32`].
pub const MAX_HEADER_BYTES: usize = 64 << 10;
/// The most dimensions a shape may have: 64 (numpy 2's `NPY_MAXDIMS`). Enforced by
/// [`read_npy_f32`]. The element count is bounded by the file's size, which must hold them.
pub const MAX_DIMS: usize = 64;
/// numpy's `GROWTH_AXIS_MAX_DIGITS`.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

#[derive(Clone, Copy)]
enum Dtype {
    F2,
    F4,
    F8,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F2 => 2,
            Dtype::F4 => 4,
            Dtype::F8 => 8,
        }
    }
}

/// Reads a `.npy` file held in memory. Never panics on malformed input.
pub fn read_npy_f32(bytes: &[u8]) -> Result<NpyArray, NpyError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(NpyError::BadMagic);
    }
    if bytes.len() < 8 {
        return Err(NpyError::Truncated {
            expected: 8,
            found: bytes.len(),
        });
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len_bytes, utf8) = match (major, minor) {
        (1, 0) => (2usize, false),
        (2, 0) => (4, false),
        (3, 0) => (4, true),
        _ => return Err(NpyError::UnsupportedVersion(major, minor)),
    };
    let prefix = 8 + len_bytes;
    if bytes.len() < prefix {
        return Err(NpyError::Truncated {
            expected: prefix,
            found: bytes.len(),
        });
    }
    let header_len = if len_bytes == 2 {
        usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))
    } else {
        let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        usize::try_from(n).map_err(|_| NpyError::BadHeader("header length overflow".into()))?
    };
    if header_len > MAX_HEADER_BYTES {
        return Err(NpyError::BadHeader(format!(
            "header of {header_len} bytes is over the limit of {MAX_HEADER_BYTES}"
        )));
    }
    let data_start = prefix
        .checked_add(header_len)
        .ok_or_else(|| NpyError::BadHeader("header length overflow".into()))?;
    if bytes.len() < data_start {
        return Err(NpyError::Truncated {
            expected: data_start,
            found: bytes.len(),
        });
    }
    let raw = &bytes[prefix..data_start];
    let header: String = if utf8 {
        std::str::from_utf8(raw)
            .map_err(|_| NpyError::BadHeader("header is not UTF-8".into()))?
            .to_owned()
    } else {
        // latin-1: every byte is one char
        raw.iter().map(|&b| char::from(b)).collect()
    };
    let (descr, fortran, shape) = parse_header(&header)?;
    let dtype = match descr.as_str() {
        "<f4" => Dtype::F4,
        "<f8" => Dtype::F8,
        "<f2" => Dtype::F2,
        _ => return Err(NpyError::UnsupportedDtype(descr)),
    };
    if fortran {
        return Err(NpyError::FortranOrder);
    }
    if shape.len() > MAX_DIMS {
        return Err(NpyError::BadHeader(format!(
            "{} dimensions, over the limit of {MAX_DIMS}",
            shape.len()
        )));
    }
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| NpyError::BadHeader("shape too large".into()))?;
    let nbytes = count
        .checked_mul(dtype.size())
        .ok_or_else(|| NpyError::BadHeader("shape too large".into()))?;
    let body = &bytes[data_start..];
    if body.len() < nbytes {
        return Err(NpyError::Truncated {
            expected: data_start.saturating_add(nbytes),
            found: bytes.len(),
        });
    }
    if body.len() > nbytes {
        return Err(NpyError::TrailingData {
            expected: nbytes,
            found: body.len(),
        });
    }
    let data: Vec<f32> = match dtype {
        Dtype::F4 => body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F8 => body
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        Dtype::F2 => body
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
    };
    Ok(NpyArray { shape, data })
}

/// IEEE 754 binary16 -> binary32 (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, _) => {
            // subnormal: mant * 2^-24
            let v = mant as f32 * f32::from_bits(0x3380_0000); // 2^-24
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, _) => sign | 0x7fc0_0000 | (mant << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (mant << 13),
    };
    f32::from_bits(bits)
}

/// Parses numpy's header dict literal; returns `(descr, fortran_order, shape)`.
fn parse_header(h: &str) -> Result<(String, bool, Vec<usize>), NpyError> {
    let bad = |m: &str| NpyError::BadHeader(m.to_owned());
    let mut p = Parser {
        s: h.as_bytes(),
        i: 0,
    };
    p.ws();
    p.expect(b'{').map_err(|_| bad("expected '{'"))?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string().ok_or_else(|| bad("expected a quoted key"))?;
        p.ws();
        p.expect(b':').map_err(|_| bad("expected ':'"))?;
        p.ws();
        match key.as_str() {
            "descr" => {
                let d = p.string().ok_or_else(|| {
                    NpyError::UnsupportedDtype("non-string (structured) descr".into())
                })?;
                descr = Some(d);
            }
            "fortran_order" => {
                fortran = Some(
                    p.boolean()
                        .ok_or_else(|| bad("fortran_order is not a bool"))?,
                );
            }
            "shape" => {
                shape = Some(
                    p.tuple()
                        .ok_or_else(|| bad("shape is not a tuple of ints"))?,
                )
            }
            other => return Err(NpyError::BadHeader(format!("unexpected key {other:?}"))),
        }
        p.ws();
        if p.eat(b',') {
            continue;
        }
        p.ws();
        p.expect(b'}').map_err(|_| bad("expected ',' or '}'"))?;
        break;
    }
    // after the dict: only padding whitespace
    p.ws();
    if p.i != p.s.len() {
        return Err(bad("unexpected data after the header dict"));
    }
    Ok((
        descr.ok_or_else(|| bad("missing 'descr'"))?,
        fortran.ok_or_else(|| bad("missing 'fortran_order'"))?,
        shape.ok_or_else(|| bad("missing 'shape'"))?,
    ))
}

/// A tiny cursor over the header literal.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(
            self.peek(),
            Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'\x0b')
        ) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> Result<(), ()> {
        if self.eat(c) { Ok(()) } else { Err(()) }
    }
    /// A '...' or "..." literal without escapes (all numpy writes).
    fn string(&mut self) -> Option<String> {
        let q = self.peek()?;
        if q != b'\'' && q != b'"' {
            return None;
        }
        let start = self.i + 1;
        let end = start + self.s[start..].iter().position(|&c| c == q)?;
        let text = &self.s[start..end];
        if text.contains(&b'\\') {
            return None;
        }
        self.i = end + 1;
        Some(String::from_utf8_lossy(text).into_owned())
    }
    fn word(&mut self, w: &[u8]) -> bool {
        if self.s[self.i..].starts_with(w) {
            self.i += w.len();
            true
        } else {
            false
        }
    }
    fn boolean(&mut self) -> Option<bool> {
        if self.word(b"True") {
            Some(true)
        } else if self.word(b"False") {
            Some(false)
        } else {
            None
        }
    }
    /// `()`, `(5,)`, `(1, 2, 3)`, tolerant of spaces, a trailing comma and
    /// Python 2 long suffixes (`3L`).
    fn tuple(&mut self) -> Option<Vec<usize>> {
        if !self.eat(b'(') {
            return None;
        }
        let mut dims = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                break;
            }
            let start = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            if self.i == start {
                return None;
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).ok()?;
            dims.push(digits.parse::<usize>().ok()?);
            let _ = self.eat(b'L') || self.eat(b'l');
            self.ws();
            if self.eat(b',') {
                continue;
            }
            self.ws();
            if self.eat(b')') {
                break;
            }
            return None;
        }
        // Python: "(5)" is an int, not a tuple; numpy never writes it, but a
        // 1-element tuple without comma would be; accept it leniently.
        Some(dims)
    }
}

/// Python `repr` of a shape tuple: `()`, `(5,)`, `(1, 2, 3)`.
fn shape_repr(shape: &[usize]) -> String {
    match shape {
        [] => "()".to_owned(),
        [d] => format!("({d},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// Serialises a C-order `f32` array exactly as `np.save` writes a
/// C-contiguous `float32` array: version 1.0 header
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (..), }`, numpy's growth
/// padding (`21 - len(str(shape[0]))` spaces), spaces up to a 64-byte aligned
/// data offset and a final `'\n'`. Version 2.0 is used only if the header does
/// not fit version 1.0's 16-bit length (as numpy does).
///
/// Panics if `data.len()` differs from the product of `shape`.
pub fn write_npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    assert_eq!(
        count,
        Some(data.len()),
        "write_npy_f32: data length does not match the shape"
    );
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}",
        shape_repr(shape)
    );
    if let Some(first) = shape.first() {
        let digits = first.to_string().len();
        header.push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
    }
    // _wrap_header: hlen includes the final '\n'; pad so the data is aligned.
    let hlen = header.len() + 1;
    let mut bytes;
    let v1_pad = ARRAY_ALIGN - ((MAGIC.len() + 2 + 2 + hlen) % ARRAY_ALIGN);
    if hlen + v1_pad <= usize::from(u16::MAX) {
        bytes = Vec::with_capacity(10 + hlen + v1_pad + data.len() * 4);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&((hlen + v1_pad) as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.resize(bytes.len() + v1_pad, b' ');
    } else {
        let pad = ARRAY_ALIGN - ((MAGIC.len() + 2 + 4 + hlen) % ARRAY_ALIGN);
        bytes = Vec::with_capacity(12 + hlen + pad + data.len() * 4);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&[2, 0]);
        bytes.extend_from_slice(&((hlen + pad) as u32).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.resize(bytes.len() + pad, b' ');
    }
    bytes.push(b'\n');
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}
