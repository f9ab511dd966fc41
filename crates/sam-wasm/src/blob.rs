//! Checkpoints read where they lie, in slices: a JS `Blob` (a picked or dropped `File`, the
//! body of a Cache Storage response) read with `FileReaderSync` on `blob.slice(a, b)`, so that
//! no buffer ever holds the whole file (browsers refuse an `ArrayBuffer` past ~2 GiB, and
//! ViT-H's checkpoint is 2.4 GiB). `FileReaderSync` exists in workers only: `Segmenter.create`
//! with a `Blob` must run in a Web Worker (the npm package's worker does).
//!
//! sam-core's reader asks for the zip directory, the pickle, then one tensor's storage at a
//! time; small reads (zip headers) are served from one cached block of [`BLOCK_BYTES`], so
//! opening a checkpoint costs a few slice reads, not one per header.

use std::cell::{Cell, RefCell};
use std::io;

use js_sys::Uint8Array;
use sam_core::io::checkpoint::ByteSource;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Blob, FileReaderSync};

use crate::error::{js_error, type_error};
use crate::source::JsBytes;

/// Reads smaller than this are served from a cached block of this size (1 MiB).
pub const BLOCK_BYTES: usize = 1 << 20;

/// The largest checkpoint accepted, in bytes: 2^53 (JS numbers are exact up to there; a blob
/// size past it cannot be addressed by `blob.slice`).
pub const MAX_BLOB_BYTES: u64 = 1 << 53;

/// A [`ByteSource`] over a JS `Blob`, read with `FileReaderSync` (workers only).
pub struct BlobSource {
    blob: Blob,
    len: u64,
    reader: FileReaderSync,
    /// The last block read for small reads: (start offset, bytes).
    block: RefCell<(u64, Vec<u8>)>,
}

impl BlobSource {
    /// A source over `blob`. Fails outside a worker (no `FileReaderSync`) and for a blob
    /// larger than [`MAX_BLOB_BYTES`].
    pub fn new(blob: Blob) -> Result<Self, JsValue> {
        let size = blob.size();
        if !(0.0..=MAX_BLOB_BYTES as f64).contains(&size) {
            return Err(type_error(&format!(
                "the checkpoint Blob's size {size} is past the {MAX_BLOB_BYTES} bytes a Blob can be read to"
            )));
        }
        let reader = FileReaderSync::new().map_err(|_| {
            js_error(
                "reading a checkpoint from a Blob or File needs FileReaderSync, which only Web \
                 Workers have: call Segmenter.create in a worker (the sam-browser client does), \
                 or pass a Uint8Array",
                Some("TypeError"),
            )
        })?;
        Ok(Self {
            blob,
            len: size as u64,
            reader,
            block: RefCell::new((0, Vec::new())),
        })
    }

    /// Bytes `start..start + buf.len()` (in range) straight from the blob.
    fn read_direct(&self, start: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = start + buf.len() as u64;
        let slice = self
            .blob
            .slice_with_f64_and_f64(start as f64, end as f64)
            .map_err(|e| js_io_error("Blob.slice", &e))?;
        let bytes = self
            .reader
            .read_as_array_buffer(&slice)
            .map_err(|e| js_io_error("FileReaderSync.readAsArrayBuffer", &e))?;
        let view = Uint8Array::new(&bytes);
        if view.length() as usize != buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "read {} bytes at offset {start} of the file, {} expected (was the file changed \
                     while being read?)",
                    view.length(),
                    buf.len()
                ),
            ));
        }
        view.copy_to(buf);
        Ok(())
    }
}

/// An I/O error naming the failing call and the JS error's message.
fn js_io_error(call: &str, e: &JsValue) -> io::Error {
    let message = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    io::Error::other(format!("{call} failed: {message}"))
}

impl ByteSource for BlobSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "read of {} bytes at {offset} past the end ({} bytes)",
                        buf.len(),
                        self.len
                    ),
                )
            })?;
        if buf.len() >= BLOCK_BYTES {
            return self.read_direct(offset, buf);
        }
        let mut block = self.block.borrow_mut();
        let covered = offset >= block.0 && end <= block.0 + block.1.len() as u64;
        if !covered {
            let len = (self.len - offset).min(BLOCK_BYTES as u64) as usize;
            block.1.resize(len, 0);
            self.read_direct(offset, &mut block.1)?;
            block.0 = offset;
        }
        let at = (offset - block.0) as usize;
        buf.copy_from_slice(&block.1[at..at + buf.len()]);
        Ok(())
    }
}

/// A [`ByteSource`] that counts the bytes read through it (the load's progress in bytes).
pub struct Counted<S> {
    inner: S,
    read: Cell<u64>,
}

impl<S: ByteSource> Counted<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            read: Cell::new(0),
        }
    }

    /// The source's length in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.inner.len()
    }

    /// Bytes read so far (at most the length: a re-read byte counts once more, capped).
    pub fn bytes_read(&self) -> u64 {
        self.read.get().min(self.inner.len())
    }
}

impl<S: ByteSource> ByteSource for Counted<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)?;
        self.read.set(self.read.get() + buf.len() as u64);
        Ok(())
    }

    fn as_slice(&self) -> Option<&[u8]> {
        self.inner.as_slice()
    }
}

/// The checkpoint `Segmenter.create` was given: a `Uint8Array` (read in place) or a `Blob`
/// (read in slices, in a worker).
pub fn checkpoint_source(checkpoint: &JsValue) -> Result<Box<dyn ByteSource>, JsValue> {
    if let Some(bytes) = checkpoint.dyn_ref::<Uint8Array>() {
        return Ok(Box::new(JsBytes(bytes.clone())));
    }
    if let Some(blob) = checkpoint.dyn_ref::<Blob>() {
        return Ok(Box::new(BlobSource::new(blob.clone())?));
    }
    Err(type_error(
        "the checkpoint must be a Uint8Array or a Blob (a File, a Response's blob())",
    ))
}
