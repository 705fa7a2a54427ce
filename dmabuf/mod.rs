// SPDX-License-Identifier: GPL-2.0

//! The importer side of DMA-buf: thin wrappers over `struct dma_buf`.
//!
//! C header: [`include/linux/dma-buf.h`](srctree/include/linux/dma-buf.h).
//! The exports live in the `DMA_BUF` symbol namespace, which the crate root
//! imports.

mod attach;

use core::ptr::NonNull;

pub(crate) use attach::{device_ptr, Mapping, Revoke};

use kernel::{
    bindings,
    error::from_err_ptr,
    prelude::*,
    sync::aref::{ARef, AlwaysRefCounted},
    types::Opaque,
};

/// A DMA-buf, `struct dma_buf`, reference counted through its file.
///
/// # Invariants
///
/// A `&DmaBuf` points to a `struct dma_buf` whose file holds at least one
/// reference for as long as the `&DmaBuf` exists.
#[repr(transparent)]
pub(crate) struct DmaBuf(Opaque<bindings::dma_buf>);

// SAFETY: `get_dma_buf()` and `dma_buf_put()` take and drop a reference of
// the DMA-buf's file from any context that may sleep, and a reference keeps
// the object alive.
unsafe impl AlwaysRefCounted for DmaBuf {
    fn inc_ref(&self) {
        // SAFETY: by the type invariant the DMA-buf is alive.
        unsafe { bindings::get_dma_buf(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller owns a reference; `DmaBuf` is transparent over
        // `struct dma_buf`.
        unsafe { bindings::dma_buf_put(obj.cast().as_ptr()) };
    }
}

// SAFETY: a `struct dma_buf` may be used and released from any thread; its
// exporter serialises through the reservation object.
unsafe impl Send for DmaBuf {}
// SAFETY: shared references only read immutable fields or call into
// functions that lock internally.
unsafe impl Sync for DmaBuf {}

impl DmaBuf {
    /// Takes a reference to the DMA-buf open as `fd` in the calling task.
    ///
    /// Fails with `EBADF` if `fd` is not open and with `EINVAL` if it is not
    /// a DMA-buf.
    pub(crate) fn get(fd: i32) -> Result<ARef<Self>> {
        // SAFETY: `dma_buf_get()` accepts any fd number.
        let ptr = from_err_ptr(unsafe { bindings::dma_buf_get(fd) })?;
        // `dma_buf_get()` never returns NULL; checked rather than assumed.
        let ptr = NonNull::new(ptr.cast::<Self>()).ok_or(EINVAL)?;
        // SAFETY: `dma_buf_get()` returned a reference that is now ours.
        Ok(unsafe { ARef::from_raw(ptr) })
    }

    /// The `struct dma_buf` pointer, for calls into the DMA-buf core.
    pub(crate) fn as_raw(&self) -> *mut bindings::dma_buf {
        self.0.get()
    }

    /// Size of the buffer in bytes; fixed for its lifetime.
    pub(crate) fn size(&self) -> usize {
        // SAFETY: the DMA-buf is alive (type invariant) and `size` is set
        // before the buffer is exported and never changes.
        unsafe { (*self.as_raw()).size }
    }

    /// Name of the exporter (`udmabuf`, `vgem`, `amdgpu`, ...).
    pub(crate) fn exporter(&self) -> &CStr {
        // SAFETY: the DMA-buf is alive; `exp_name` is set at export time to
        // a static string of the exporter, or is NULL.
        let name = unsafe { (*self.as_raw()).exp_name };
        if name.is_null() {
            return c"?";
        }
        // SAFETY: a non-NULL `exp_name` is a NUL-terminated string that
        // lives as long as the exporter's module, which the DMA-buf pins.
        unsafe { CStr::from_char_ptr(name) }
    }
}

/// A kernel mapping of a DMA-buf for CPU access (`dma_buf_vmap`).
///
/// # Invariants
///
/// `vaddr` is the system-memory address `dma_buf_vmap_unlocked()` returned
/// for `dmabuf`, mapping `dmabuf.size()` bytes, unmapped only by `drop`.
pub(crate) struct Vmap {
    dmabuf: ARef<DmaBuf>,
    map: bindings::iosys_map,
    vaddr: NonNull<u8>,
}

// SAFETY: the mapping is plain kernel virtual memory, usable from any thread.
unsafe impl Send for Vmap {}
// SAFETY: writes go through `with_slice`, whose callers own the bytes.
unsafe impl Sync for Vmap {}

impl Vmap {
    /// Maps `dmabuf` into the kernel. Fails with `ENXIO` if the exporter
    /// has no CPU mapping or gives I/O memory.
    pub(crate) fn new(dmabuf: &ARef<DmaBuf>) -> Result<Self> {
        // SAFETY: all-zero is a valid (null) `iosys_map`.
        let mut map: bindings::iosys_map = unsafe { core::mem::zeroed() };
        // SAFETY: the DMA-buf is alive; `map` is written by the call.
        let ret = unsafe { bindings::dma_buf_vmap_unlocked(dmabuf.as_raw(), &mut map) };
        if ret != 0 {
            return Err(ENXIO);
        }
        // SAFETY: `is_iomem` selects the union member that was written.
        let (iomem, vaddr) = unsafe { (map.is_iomem, map.__bindgen_anon_1.vaddr) };
        match NonNull::new(vaddr.cast::<u8>()) {
            Some(vaddr) if !iomem => Ok(Vmap {
                dmabuf: dmabuf.clone(),
                map,
                vaddr,
            }),
            _ => {
                // SAFETY: mapped above.
                unsafe { bindings::dma_buf_vunmap_unlocked(dmabuf.as_raw(), &mut map) };
                Err(ENXIO)
            }
        }
    }

    /// Calls `f` with bytes `off..off + len` of the buffer to write, if
    /// they are in it.
    ///
    /// The caller owns those bytes: netgpu writes only a buffer the copy
    /// fallback took off the region's free list, which nobody else touches
    /// until its completion is posted.
    pub(crate) fn with_slice<R>(
        &self,
        off: usize,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Option<R> {
        if off.checked_add(len)? > self.dmabuf.size() {
            return None;
        }
        // SAFETY: in bounds of the mapping (checked above), which lives as
        // long as `self`; the caller owns the bytes (see above).
        let dst = unsafe { core::slice::from_raw_parts_mut(self.vaddr.as_ptr().add(off), len) };
        Some(f(dst))
    }

    /// Brackets CPU writes for the exporter (cache maintenance).
    pub(crate) fn begin_cpu_write(&self) -> Result {
        // SAFETY: the DMA-buf is alive.
        let ret = unsafe {
            bindings::dma_buf_begin_cpu_access(
                self.dmabuf.as_raw(),
                bindings::dma_data_direction::DMA_TO_DEVICE,
            )
        };
        kernel::error::to_result(ret)
    }

    /// Ends what [`Self::begin_cpu_write`] began.
    pub(crate) fn end_cpu_write(&self) {
        // SAFETY: the DMA-buf is alive.
        unsafe {
            bindings::dma_buf_end_cpu_access(
                self.dmabuf.as_raw(),
                bindings::dma_data_direction::DMA_TO_DEVICE,
            )
        };
    }
}

impl Drop for Vmap {
    fn drop(&mut self) {
        // SAFETY: mapped in `new`, unmapped only here.
        unsafe { bindings::dma_buf_vunmap_unlocked(self.dmabuf.as_raw(), &mut self.map) };
    }
}
