// SPDX-License-Identifier: GPL-2.0

//! A DMA-buf attached to a device, pinned and mapped for DMA from it.
//!
//! netgpu attaches as a *dynamic* importer (`dma_buf_dynamic_attach`) that
//! allows peer-to-peer DMA, then pins the buffer: exporters that can move
//! buffers (amdgpu, xe) keep device memory where it is instead of migrating
//! it to system memory, and exporters of PCI BAR memory (vfio-pci) accept
//! the attachment. The pinned importer must still handle revocation: the
//! exporter calls `invalidate_mappings` when the memory goes away, and the
//! importer must stop using it and unmap in bounded time.

use core::ptr::NonNull;

use kernel::{
    bindings,
    device::Device,
    error::from_err_ptr,
    prelude::*,
    scatterlist::SGTable,
    sync::{aref::ARef, ArcBorrow},
};

use super::DmaBuf;

/// What the importer does when the exporter revokes its mapping.
pub(crate) trait Revoke: Sized {
    /// Called from `invalidate_mappings` with the DMA-buf's reservation
    /// lock held: must not sleep on that lock, unmap, or call into the
    /// network stack; it should record the revocation and defer the rest.
    fn revoke(this: ArcBorrow<'_, Self>);
}

/// A pinned, mapped attachment of a DMA-buf to a device.
///
/// # Invariants
///
/// `attach` is a dynamic attachment of `dmabuf` to `dev`, pinned, with
/// `sgt` its mapping for `DMA_FROM_DEVICE`; all three are undone only by
/// `drop`. `dev` and `dmabuf` are kept alive by the references held here.
/// `attach`'s importer private pointer is the `R` passed to [`Self::new`],
/// which the caller keeps alive for as long as the attachment exists.
pub(crate) struct Mapping<R: Revoke> {
    attach: NonNull<bindings::dma_buf_attachment>,
    sgt: NonNull<bindings::sg_table>,
    dmabuf: ARef<DmaBuf>,
    _dev: ARef<Device>,
    _revoke: core::marker::PhantomData<fn(&R)>,
}

// SAFETY: the attachment and its mapping may be used and torn down from any
// thread; the DMA-buf core serialises through the reservation lock.
unsafe impl<R: Revoke> Send for Mapping<R> {}
// SAFETY: shared references only read the immutable mapping.
unsafe impl<R: Revoke> Sync for Mapping<R> {}

struct Ops<T>(T);
// SAFETY: an immutable table of a constant and a function pointer.
unsafe impl<T> Sync for Ops<T> {}

impl<R: Revoke> Mapping<R> {
    const IMPORTER_OPS: Ops<bindings::dma_buf_attach_ops> = Ops(bindings::dma_buf_attach_ops {
        allow_peer2peer: true,
        invalidate_mappings: Some(Self::invalidate_mappings),
    });

    /// # Safety
    ///
    /// Called by the DMA-buf core with one of the attachments made in [`Self::new`].
    unsafe extern "C" fn invalidate_mappings(attach: *mut bindings::dma_buf_attachment) {
        // SAFETY: the DMA-buf core passes one of our attachments, whose
        // private pointer is the content of an `Arc<R>` alive while the
        // attachment exists (see `new`).
        let r = unsafe { ArcBorrow::from_raw((*attach).importer_priv.cast::<R>()) };
        R::revoke(r);
    }

    /// Attaches `dmabuf` to the device `dev`, pins it and maps it for DMA
    /// from the device. `revoke` is told when
    /// the exporter revokes the mapping.
    ///
    /// Fails with the exporter's error: typically `EINVAL` or `ENXIO` when
    /// the device cannot reach the memory.
    ///
    /// # Safety
    ///
    /// The `Arc` behind `revoke` must stay alive until the returned value is
    /// dropped.
    pub(crate) unsafe fn new(
        dmabuf: &ARef<DmaBuf>,
        dev_ref: ARef<Device>,
        revoke: ArcBorrow<'_, R>,
    ) -> Result<Self> {
        let dev = device_ptr(&dev_ref);
        let ops: &'static Ops<bindings::dma_buf_attach_ops> = &Self::IMPORTER_OPS;
        // SAFETY: the DMA-buf and device are alive; the ops are static; the
        // caller keeps `revoke` alive as long as the attachment.
        let attach = from_err_ptr(unsafe {
            bindings::dma_buf_dynamic_attach(
                dmabuf.as_raw(),
                dev,
                &ops.0,
                core::ptr::from_ref::<R>(&revoke).cast_mut().cast(),
            )
        })?;
        let attach = NonNull::new(attach).ok_or(EINVAL)?;
        let resv = {
            // SAFETY: the DMA-buf is alive; `resv` never changes.
            unsafe { (*dmabuf.as_raw()).resv }
        };
        // SAFETY: `resv` is the DMA-buf's reservation object; no acquire
        // context, so this cannot fail with -EDEADLK.
        unsafe { bindings::dma_resv_lock(resv, core::ptr::null_mut()) };
        // SAFETY: `attach` is our dynamic attachment; the lock is held.
        let ret = unsafe { bindings::dma_buf_pin(attach.as_ptr()) };
        let sgt = if ret != 0 {
            Err(Error::from_errno(ret))
        } else {
            // SAFETY: as above; the attachment is pinned.
            from_err_ptr(unsafe {
                bindings::dma_buf_map_attachment(
                    attach.as_ptr(),
                    bindings::dma_data_direction::DMA_FROM_DEVICE,
                )
            })
            .inspect_err(|_| {
                // SAFETY: pinned above, lock held.
                unsafe { bindings::dma_buf_unpin(attach.as_ptr()) };
            })
        };
        // SAFETY: locked above.
        unsafe { bindings::dma_resv_unlock(resv) };
        let sgt = match sgt.and_then(|s| NonNull::new(s).ok_or(ENOMEM)) {
            Ok(s) => s,
            Err(e) => {
                // SAFETY: our attachment, neither pinned nor mapped now.
                unsafe { bindings::dma_buf_detach(dmabuf.as_raw(), attach.as_ptr()) };
                return Err(e);
            }
        };
        // INVARIANT: attached, pinned and mapped above.
        Ok(Mapping {
            attach,
            sgt,
            dmabuf: dmabuf.clone(),
            _dev: dev_ref,
            _revoke: core::marker::PhantomData,
        })
    }

    /// The DMA segments of the mapping, as (address, length) in order.
    pub(crate) fn for_each_segment(
        &self,
        mut f: impl FnMut(bindings::dma_addr_t, u64) -> Result,
    ) -> Result {
        // SAFETY: the mapping lives until `drop` and nobody modifies it.
        let sgt = unsafe { SGTable::from_raw(self.sgt.as_ptr()) };
        for e in sgt.iter() {
            f(e.dma_address(), e.dma_len())?;
        }
        Ok(())
    }
}

/// The `struct device` of `dev`, for the C API.
pub(crate) fn device_ptr(dev: &Device) -> *mut bindings::device {
    // `Device` is a transparent wrapper of `struct device`; the kernel
    // crate's own `as_raw` is not public.
    core::ptr::from_ref(dev).cast_mut().cast()
}

impl<R: Revoke> Drop for Mapping<R> {
    fn drop(&mut self) {
        let dmabuf = self.dmabuf.as_raw();
        // SAFETY: the DMA-buf is alive (we hold a reference).
        let resv = unsafe { (*dmabuf).resv };
        // SAFETY: per the type invariant, `sgt` is the mapping of our
        // pinned `attach`; unmap and unpin need the reservation lock.
        unsafe {
            bindings::dma_resv_lock(resv, core::ptr::null_mut());
            bindings::dma_buf_unmap_attachment(
                self.attach.as_ptr(),
                self.sgt.as_ptr(),
                bindings::dma_data_direction::DMA_FROM_DEVICE,
            );
            bindings::dma_buf_unpin(self.attach.as_ptr());
            bindings::dma_resv_unlock(resv);
            bindings::dma_buf_detach(dmabuf, self.attach.as_ptr());
        }
    }
}
