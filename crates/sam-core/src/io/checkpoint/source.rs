//! Random-access byte sources a [`Checkpoint`](super::Checkpoint) is read from, and the
//! `Read + Seek` adapter the zip reader uses over them.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};

/// Random-access bytes of a checkpoint file: a buffer in memory, or something read a piece at
/// a time (in the browser, a JavaScript `Uint8Array` outside wasm memory).
///
/// The checkpoint reader asks only for the pieces it needs: a prefix to detect the format, the
/// container's metadata, then one tensor's storage bytes per read. It never asks for the whole
/// file at once. The trait is object safe and has no `Send`/`Sync` bound.
pub trait ByteSource {
    /// Total length in bytes.
    fn len(&self) -> u64;

    /// Whether the source holds no byte.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the bytes at `offset..offset + buf.len()`. A range reaching past
    /// [`len`](Self::len) is an error of kind [`io::ErrorKind::UnexpectedEof`].
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// All the bytes, if the source holds them in memory: reads then borrow instead of
    /// copying. The default is `None` (every read copies into a buffer of its own).
    fn as_slice(&self) -> Option<&[u8]> {
        None
    }
}

fn read_slice(bytes: &[u8], offset: u64, buf: &mut [u8]) -> io::Result<()> {
    let piece = usize::try_from(offset)
        .ok()
        .and_then(|start| Some(start..start.checked_add(buf.len())?))
        .and_then(|range| bytes.get(range));
    match piece {
        Some(piece) => {
            buf.copy_from_slice(piece);
            Ok(())
        }
        None => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "read of {} bytes at offset {offset} past the end of {} bytes",
                buf.len(),
                bytes.len()
            ),
        )),
    }
}

impl ByteSource for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        read_slice(self, offset, buf)
    }

    fn as_slice(&self) -> Option<&[u8]> {
        Some(self)
    }
}

impl ByteSource for Vec<u8> {
    fn len(&self) -> u64 {
        Vec::len(self) as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        read_slice(self, offset, buf)
    }

    fn as_slice(&self) -> Option<&[u8]> {
        Some(self)
    }
}

impl<T: ByteSource + ?Sized> ByteSource for &T {
    fn len(&self) -> u64 {
        (**self).len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(offset, buf)
    }

    fn as_slice(&self) -> Option<&[u8]> {
        (**self).as_slice()
    }
}

impl<T: ByteSource + ?Sized> ByteSource for Box<T> {
    fn len(&self) -> u64 {
        (**self).len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(offset, buf)
    }

    fn as_slice(&self) -> Option<&[u8]> {
        (**self).as_slice()
    }
}

/// Marks an I/O error that came from the [`ByteSource`] itself (not the end of the data, not
/// a decompression error), so that it is reported as [`CheckpointError::Read`].
///
/// [`CheckpointError::Read`]: super::CheckpointError::Read
#[derive(Debug)]
pub(super) struct SourceFailure(pub io::Error);

impl fmt::Display for SourceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SourceFailure {}

impl SourceFailure {
    /// The source error as the reader reports it: end of data as `UnexpectedEof`, anything
    /// else wrapped in a `SourceFailure`.
    fn wrap(e: io::Error) -> io::Error {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => e,
            kind => io::Error::new(kind, SourceFailure(e)),
        }
    }

    /// Whether `e` came from the source.
    pub(super) fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<SourceFailure>())
    }
}

/// The bytes a checkpoint reads: a borrowed buffer ([`Checkpoint::from_bytes`]) or a
/// [`ByteSource`] ([`Checkpoint::from_source`]).
///
/// [`Checkpoint::from_bytes`]: super::Checkpoint::from_bytes
/// [`Checkpoint::from_source`]: super::Checkpoint::from_source
#[derive(Clone, Copy)]
pub(super) enum Src<'a> {
    Slice(&'a [u8]),
    Dyn(&'a dyn ByteSource),
}

impl<'a> Src<'a> {
    pub(super) fn len(self) -> u64 {
        match self {
            Src::Slice(b) => b.len() as u64,
            Src::Dyn(s) => s.len(),
        }
    }

    /// The whole data, when it is in memory.
    fn slice(self) -> Option<&'a [u8]> {
        match self {
            Src::Slice(b) => Some(b),
            Src::Dyn(s) => s.as_slice(),
        }
    }

    /// Fills `buf` from `offset`.
    fn read_at(self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        match self {
            Src::Slice(b) => read_slice(b, offset, buf),
            Src::Dyn(s) => s.read_at(offset, buf).map_err(SourceFailure::wrap),
        }
    }

    /// Bytes `start..end`: borrowed from an in-memory source, else read into one buffer of
    /// exactly that size (allocated fallibly: an `OutOfMemory` error when it cannot be).
    pub(super) fn bytes(self, start: u64, end: u64) -> io::Result<Cow<'a, [u8]>> {
        if start > end || end > self.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "bytes {start}..{end} reach past the end of the data ({} bytes)",
                    self.len()
                ),
            ));
        }
        if let Some(all) = self.slice() {
            let range = usize::try_from(start).ok().zip(usize::try_from(end).ok());
            if let Some(piece) = range.and_then(|(s, e)| all.get(s..e)) {
                return Ok(Cow::Borrowed(piece));
            }
        }
        let too_large = || {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("cannot allocate {} bytes", end - start),
            )
        };
        let n = usize::try_from(end - start).map_err(|_| too_large())?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(n).map_err(|_| too_large())?;
        buf.resize(n, 0);
        self.read_at(start, &mut buf)?;
        Ok(Cow::Owned(buf))
    }
}

/// A `Read + Seek` view of a [`Src`] with the semantics of `std::io::Cursor`: reads stop at
/// the end, seeks past the end are allowed, seeks before the start are errors. Each `read`
/// asks the source for at most the caller's buffer.
#[derive(Clone)]
pub(super) struct SourceReader<'a> {
    src: Src<'a>,
    pos: u64,
}

impl<'a> SourceReader<'a> {
    pub(super) fn new(src: Src<'a>) -> Self {
        Self { src, pos: 0 }
    }
}

impl Read for SourceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.src.len().saturating_sub(self.pos);
        let n = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
        if n == 0 {
            return Ok(0);
        }
        self.src.read_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SourceReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.src.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match pos {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "invalid seek to a negative or overflowing position",
            )),
        }
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.pos)
    }
}
