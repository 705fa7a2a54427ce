// SPDX-License-Identifier: GPL-2.0

//! Memory a ring shares with user space.
//!
//! The memory comes from `vmalloc_user()` (zeroed, page granular, meant to
//! be mapped to user space) and is mapped with `remap_vmalloc_range()`. User
//! space may write any byte of it at any time, so the kernel accesses it
//! only through atomic words and volatile copies, never through references
//! to plain data, and never trusts what it reads.

use core::{ptr::NonNull, sync::atomic::AtomicU32};

use kernel::{bindings, mm::virt::VmaNew, page::PAGE_SIZE, prelude::*};

/// Bytes at the start of a ring's memory that hold its index words.
pub(crate) const HDR_SIZE: usize = 256;

/// An index word in the header of a ring's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Word {
    /// The consumer's index.
    Head,
    /// The producer's index.
    Tail,
    /// The kernel's drop counter.
    Dropped,
}

impl Word {
    /// Byte offset of the word; each sits in a cache line of its own.
    pub(crate) const fn offset(self) -> usize {
        match self {
            Word::Head => 0,
            Word::Tail => 64,
            Word::Dropped => 128,
        }
    }
}

/// Zeroed, page-aligned memory that can be mapped to user space.
///
/// # Invariants
///
/// `ptr` points to `size` bytes returned by `vmalloc_user()`; `size` is a
/// nonzero multiple of `PAGE_SIZE` (so at least [`HDR_SIZE`]). The memory is
/// freed only by `drop`; pages mapped to user space stay alive through the
/// references their page table entries hold.
pub(crate) struct RingMem {
    ptr: NonNull<u8>,
    size: usize,
}

// SAFETY: the memory is plain kernel memory; all accesses are atomic or
// volatile copies, valid from any thread.
unsafe impl Send for RingMem {}
// SAFETY: see `Send`; shared references only allow atomic and volatile
// accesses.
unsafe impl Sync for RingMem {}

impl RingMem {
    /// Allocates `HDR_SIZE + entries_bytes` bytes rounded up to pages.
    pub(crate) fn new(entries_bytes: usize) -> Result<Self> {
        let size = HDR_SIZE
            .checked_add(entries_bytes)
            .and_then(|s| s.checked_next_multiple_of(PAGE_SIZE))
            .ok_or(ENOMEM)?;
        // SAFETY: `vmalloc_user_noprof()` may be called with any size.
        let ptr = unsafe { bindings::vmalloc_user_noprof(size) };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(ENOMEM)?;
        // INVARIANT: `ptr` holds `size` bytes from `vmalloc_user()`; `size`
        // is a nonzero multiple of the page size.
        Ok(RingMem { ptr, size })
    }

    /// Size in bytes, the longest mapping allowed.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The index word `w`.
    pub(crate) fn word(&self, w: Word) -> &AtomicU32 {
        // SAFETY: `w.offset() + 4 <= HDR_SIZE <= size` and is 4-aligned in
        // page-aligned memory that lives as long as `self`; every access to
        // it is atomic, including user space's by the ABI.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(w.offset()).cast()) }
    }

    /// Copies `src` to the memory at byte `off`; `false` if it does not fit.
    /// Entries are 8-byte aligned multiples of 8 bytes and go as words.
    pub(crate) fn write(&self, off: usize, src: &[u8]) -> bool {
        if off < HDR_SIZE || off.checked_add(src.len()).is_none_or(|e| e > self.size) {
            return false;
        }
        let words = off % 8 == 0 && src.len() % 8 == 0;
        if words {
            for (i, w) in src.chunks_exact(8).enumerate() {
                let v = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
                // SAFETY: `off + 8 * i + 8 <= size` (checked above) and the
                // address is 8-aligned in page-aligned memory.
                unsafe {
                    self.ptr
                        .as_ptr()
                        .add(off + 8 * i)
                        .cast::<u64>()
                        .write_volatile(v)
                };
            }
            return true;
        }
        for (i, b) in src.iter().enumerate() {
            // SAFETY: `off + i < size` was checked above.
            unsafe { self.ptr.as_ptr().add(off + i).write_volatile(*b) };
        }
        true
    }

    /// Copies the memory at byte `off` to `dst`; `false` if it does not fit.
    /// Entries are 8-byte aligned multiples of 8 bytes and go as words.
    pub(crate) fn read(&self, off: usize, dst: &mut [u8]) -> bool {
        if off < HDR_SIZE || off.checked_add(dst.len()).is_none_or(|e| e > self.size) {
            return false;
        }
        let words = off % 8 == 0 && dst.len() % 8 == 0;
        if words {
            for (i, w) in dst.chunks_exact_mut(8).enumerate() {
                // SAFETY: `off + 8 * i + 8 <= size` (checked above) and the
                // address is 8-aligned in page-aligned memory.
                let v = unsafe {
                    self.ptr
                        .as_ptr()
                        .add(off + 8 * i)
                        .cast::<u64>()
                        .read_volatile()
                };
                w.copy_from_slice(&v.to_ne_bytes());
            }
            return true;
        }
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: `off + i < size` was checked above.
            *b = unsafe { self.ptr.as_ptr().add(off + i).read_volatile() };
        }
        true
    }

    /// Maps the memory into `vma`, which must be a shared mapping no longer
    /// than [`Self::size`].
    pub(crate) fn map(&self, vma: &VmaNew) -> Result {
        let len = vma.end() - vma.start();
        if len > self.size {
            return Err(EINVAL);
        }
        // SAFETY: `vma` is being set up by this mmap() call and `ptr` is
        // `vmalloc_user()` memory of at least `len` bytes; the function
        // checks both again and takes a page reference per mapped page.
        let ret =
            unsafe { bindings::remap_vmalloc_range(vma.as_ptr(), self.ptr.as_ptr().cast(), 0) };
        kernel::error::to_result(ret)
    }
}

impl Drop for RingMem {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `vmalloc_user()` and is freed only here.
        unsafe { bindings::vfree(self.ptr.as_ptr().cast()) };
    }
}

/// The byte offset user space passed to `mmap()` for `vma`.
pub(crate) fn mmap_offset(vma: &VmaNew) -> u64 {
    // SAFETY: `vma` is a valid vma being set up by this mmap() call;
    // `vm_pgoff` is set before the driver's mmap runs and not changed
    // concurrently.
    let pgoff = unsafe { (*vma.as_ptr()).vm_pgoff };
    (pgoff as u64).saturating_mul(PAGE_SIZE as u64)
}
