//! [`CacheAligned`]: a global allocator that puts every large block on a cache line, for the
//! kernels' 16-byte vector loads and stores.
//!
//! The page's modules allocate through Rust's dlmalloc (wasm32-unknown-unknown), which aligns
//! to 8 bytes only: a tensor or a packed operand then starts at 8 mod 16 about every other
//! time, and a quarter of the kernels' `v128` loads of it straddle two cache lines. Our matrix
//! kernel reads its packed panel 16 values (64 bytes) a step; with the panel 8 bytes off a
//! 16-byte boundary ViT-B's products ran 2-3% slower under WASI (`examples/kernels`), and which
//! buffers landed where changed from one embedding to the next. In the page, ViT-B's embedding
//! on one thread took 21.1-23.3 s without it (20.2 s when its blocks happened to land well) and
//! 19.5-20.5 s with it (BENCHMARKS.md, session 13).
//! (WASI's malloc aligns to 16, and native allocators to 16 as well.) sam-wasm installs it as
//! the module's allocator.

use std::alloc::{GlobalAlloc, Layout, System};

/// [`System`], with every block of at least [`CacheAligned::FROM`] bytes aligned to
/// [`CacheAligned::LINE`] bytes; smaller ones as asked (no cost for the many small
/// allocations).
pub struct CacheAligned;

impl CacheAligned {
    /// A cache line.
    pub const LINE: usize = 64;
    /// The size from which blocks are aligned to a line.
    pub const FROM: usize = 4096;

    /// The layout a block of `layout` is allocated with.
    fn layout(layout: Layout) -> Layout {
        if layout.size() >= Self::FROM && layout.align() < Self::LINE {
            // A size already valid at a smaller power-of-two alignment rounds up to a line
            // without overflow unless it is within 63 bytes of isize::MAX: keep it as asked then.
            Layout::from_size_align(layout.size(), Self::LINE).unwrap_or(layout)
        } else {
            layout
        }
    }
}

// SAFETY: every block is allocated and freed by `System` with the same layout (`layout` is a
// function of the caller's layout), whose alignment is at least the caller's.
unsafe impl GlobalAlloc for CacheAligned {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the layout has a non-zero size (caller), and so has the raised one.
        unsafe { System.alloc(Self::layout(layout)) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(Self::layout(layout)) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with this layout (above).
        unsafe { System.dealloc(ptr, Self::layout(layout)) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `new_size` rounded up to `layout.align()` does not overflow isize (caller).
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let (from, to) = (Self::layout(layout), Self::layout(new));
        if from.align() == to.align() {
            // SAFETY: `ptr` was allocated by `System` with `from` (above).
            return unsafe { System.realloc(ptr, from, new_size) };
        }
        // Across `FROM`: a new block with the other alignment, so that `dealloc` later frees it
        // with the layout it was allocated with.
        // SAFETY: `to` has a non-zero size; both blocks hold the bytes copied; `ptr` was
        // allocated with `from`.
        unsafe {
            let moved = System.alloc(to);
            if !moved.is_null() {
                core::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                System.dealloc(ptr, from);
            }
            moved
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of `FROM` bytes and more are on a line, through `alloc`, `alloc_zeroed` and
    /// `realloc` (growing and shrinking across `FROM`); the contents survive a `realloc`; a
    /// block keeps a larger alignment asked for.
    #[test]
    fn large_blocks_start_on_a_cache_line() {
        let a = CacheAligned;
        let on_line = |p: *mut u8| (p as usize).is_multiple_of(CacheAligned::LINE);
        // SAFETY: every block is used within its size and freed with the layout it has.
        unsafe {
            for size in [CacheAligned::FROM, 10_000, 1 << 20] {
                let l = Layout::from_size_align(size, 4).unwrap();
                let p = a.alloc(l);
                assert!(on_line(p), "alloc {size}");
                a.dealloc(p, l);
                let p = a.alloc_zeroed(l);
                assert!(on_line(p), "alloc_zeroed {size}");
                assert!(core::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                a.dealloc(p, l);
            }
            // Growing from a small block past FROM, then shrinking back below it.
            let small = Layout::from_size_align(100, 4).unwrap();
            let p = a.alloc(small);
            (0..100).for_each(|i| *p.add(i) = i as u8);
            let p = a.realloc(p, small, 8192);
            assert!(on_line(p));
            assert!((0..100).all(|i| *p.add(i) == i as u8));
            let big = Layout::from_size_align(8192, 4).unwrap();
            let p = a.realloc(p, big, 50);
            assert!((0..50).all(|i| *p.add(i) == i as u8));
            a.dealloc(p, Layout::from_size_align(50, 4).unwrap());
            // A larger alignment than a line is kept.
            let l = Layout::from_size_align(8192, 256).unwrap();
            let p = a.alloc(l);
            assert!((p as usize).is_multiple_of(256));
            a.dealloc(p, l);
        }
    }
}
