// SPDX-License-Identifier: GPL-2.0

//! PCI peer-to-peer memory that user space mapped from a p2pmem provider.
//!
//! A PCI driver that owns device memory (an NVMe controller's CMB, an
//! accelerator's BAR) registers it with `pci_p2pdma_add_resource()` and
//! publishes it; user space maps it from the provider's sysfs file
//! `p2pmem/allocate` and hands netgpu the address range.
//!
//! P2PDMA memory must stay hot-unpluggable: GUP refuses long-term pins of
//! it (`FOLL_LONGTERM | FOLL_PCI_P2PDMA`), and the provider's teardown
//! first zaps every user mapping of it, then waits for the last page
//! reference. So [`P2pRange`] pins the pages only while the user mapping
//! lasts: an interval notifier on the range tells it when the mapping
//! changes or goes; it then revokes its importer (the binding, which stops
//! the queue's DMA and unmaps, as for a revoked DMA-buf) and drops its own
//! pins from a work item. The pages are unpinned when the last of those
//! lets go, in bounded time.
//!
//! [`Mapping`] maps the pages for a device with `dma_map_sgtable()`, which
//! gives PCI bus addresses when the device reaches the provider through a
//! switch and fails with `EREMOTEIO` when it cannot reach it at all.
//!
//! C headers: [`include/linux/mm.h`](srctree/include/linux/mm.h),
//! [`include/linux/memremap.h`](srctree/include/linux/memremap.h),
//! [`include/linux/mmu_notifier.h`](srctree/include/linux/mmu_notifier.h),
//! [`include/linux/scatterlist.h`](srctree/include/linux/scatterlist.h).
//!
//! Locking: [`P2pRange`]'s importer slot is an irq-safe spinlock taken by
//! the notifier (which may run in atomic context, under the mm's locks)
//! and by [`Mapping`]; its page slot is a mutex taken in process context
//! only, by the copy fallback and the release work. Neither is held while
//! taking the other.

use core::{
    ffi::{c_int, c_void},
    sync::atomic::{AtomicBool, Ordering},
};

use kernel::{
    alloc::KVVec,
    bindings,
    device::Device,
    impl_has_work, new_mutex, new_spinlock_irq, new_work,
    page::PAGE_SIZE,
    prelude::*,
    sync::{aref::ARef, Arc, ArcBorrow, Mutex, SpinLockIrq},
    types::Opaque,
    workqueue::{self, Work, WorkItem},
};

use crate::dmabuf::{device_ptr, Revoke};

/// Pages pinned per `pin_user_pages_fast()` call.
const PIN_BATCH: usize = 512;

/// Why [`P2pRange::new`] failed.
pub(crate) enum PinError {
    /// Part of the range could not be pinned: not mapped (`EFAULT`), not
    /// backed by pages (I/O mappings, `EFAULT`), or out of memory.
    Pin(Error),
    /// The page at this index of the range is not PCI P2PDMA memory.
    NotP2p(usize),
    /// The mapping changed while it was being pinned.
    Changed,
}

/// User pages of PCI P2PDMA memory, pinned for as long as this value lives.
///
/// # Invariants
///
/// Every entry of `pages` is a page pinned by `pin_user_pages_fast()`,
/// unpinned only by `drop`.
struct PinnedPages {
    pages: KVVec<*mut bindings::page>,
}

// SAFETY: a pin is a reference count on the page, dropped from any thread.
unsafe impl Send for PinnedPages {}
// SAFETY: shared references only read the page array.
unsafe impl Sync for PinnedPages {}

impl PinnedPages {
    /// Pins `size` bytes of the caller's memory from `addr`, both page
    /// aligned and `size` nonzero (the caller checks), for writes by DMA.
    ///
    /// Not `FOLL_LONGTERM`, which P2PDMA memory refuses: the pins last only
    /// as long as the user mapping, which [`P2pRange`] watches.
    fn pin(addr: usize, size: usize) -> Result<Self, PinError> {
        let n = size / PAGE_SIZE;
        let mut this = PinnedPages {
            pages: KVVec::with_capacity(n, GFP_KERNEL).map_err(|e| PinError::Pin(e.into()))?,
        };
        let flags = bindings::FOLL_WRITE | bindings::FOLL_PCI_P2PDMA;
        while this.pages.len() < n {
            let done = this.pages.len();
            let want = (n - done).min(PIN_BATCH);
            let spare = this.pages.spare_capacity_mut();
            // SAFETY: `spare` has room for `n - done >= want` page pointers,
            // which the call writes; it pins only pages of the caller's
            // address space.
            let got = unsafe {
                bindings::pin_user_pages_fast(
                    addr + done * PAGE_SIZE,
                    want as c_int,
                    flags,
                    spare.as_mut_ptr().cast(),
                )
            };
            if got <= 0 {
                return Err(PinError::Pin(if got < 0 {
                    Error::from_errno(got)
                } else {
                    EFAULT
                }));
            }
            let got = (got as usize).min(want);
            // SAFETY: the call initialised the first `got` spare entries.
            unsafe { this.pages.inc_len(got) };
        }
        for (i, &p) in this.pages.iter().enumerate() {
            // SAFETY: `p` is a page we pinned.
            if !unsafe { bindings::is_pci_p2pdma_page(p) } {
                return Err(PinError::NotP2p(i));
            }
        }
        Ok(this)
    }

    /// Size in bytes.
    fn size(&self) -> usize {
        self.pages.len() * PAGE_SIZE
    }

    /// Calls `f` with bytes `off..off + len` of the memory to write, if they
    /// are in it and in one page.
    ///
    /// The kernel maps P2PDMA memory uncached (`memremap_pages()`), so CPU
    /// writes reach the device, as the NVMe driver's writes to its own
    /// CMB do. The caller owns those bytes: netgpu writes only a buffer the
    /// copy fallback took off the region's free list.
    fn with_slice<R>(&self, off: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        let page = *self.pages.get(off / PAGE_SIZE)?;
        let in_page = off % PAGE_SIZE;
        if in_page.checked_add(len)? > PAGE_SIZE {
            return None;
        }
        // SAFETY: `page` is pinned (type invariant); the mapping is undone
        // below, in this context.
        let va = unsafe { bindings::kmap_local_page(page) }.cast::<u8>();
        // SAFETY: `in_page + len` bytes of the mapped page; the caller owns
        // them (see above).
        let r = f(unsafe { core::slice::from_raw_parts_mut(va.add(in_page), len) });
        // SAFETY: mapped above.
        unsafe { bindings::kunmap_local(va.cast()) };
        Some(r)
    }
}

impl Drop for PinnedPages {
    fn drop(&mut self) {
        // SAFETY: by the type invariant every entry is a page we pinned.
        unsafe { bindings::unpin_user_pages(self.pages.as_mut_ptr(), self.pages.len()) };
    }
}

/// The importer a [`P2pRange`] revokes: a [`Revoke`] implementor, type
/// erased.
struct Importer {
    data: *const c_void,
    revoke: unsafe fn(*const c_void),
}

// SAFETY: `data` points to the content of an `Arc` of a `Send + Sync`
// type (see `Mapping::new`); `revoke` is a plain function.
unsafe impl Send for Importer {}

/// Calls `R::revoke` on the `R` behind `data`.
///
/// # Safety
///
/// `data` is the content pointer of an `Arc<R>` that is alive.
unsafe fn revoke_importer<R: Revoke>(data: *const c_void) {
    // SAFETY: per the function's safety requirements.
    R::revoke(unsafe { ArcBorrow::from_raw(data.cast::<R>()) });
}

/// PCI P2PDMA memory mapped at a range of a process's address space, pinned
/// while that mapping lasts.
///
/// # Invariants
///
/// While `watched` is set, `mni` is inserted into the mm of the process
/// that made the range, with [`Self::OPS`], and owns one reference to the
/// `Arc` this value is in (so the notifier never sees it freed). While an
/// importer is registered, the `Arc` behind it is alive: the [`Mapping`]
/// that registered it takes it out before it goes.
#[pin_data]
pub(crate) struct P2pRange {
    #[pin]
    mni: Opaque<bindings::mmu_interval_notifier>,
    watched: AtomicBool,
    size: usize,
    /// Set, never cleared, when the mapping changed: the memory may be
    /// going away.
    revoked: AtomicBool,
    /// The range's own pins; taken by the release work after a revocation.
    #[pin]
    pages: Mutex<Option<Arc<PinnedPages>>>,
    /// The binding the memory is mapped for, if any.
    #[pin]
    importer: SpinLockIrq<Option<Importer>>,
    #[pin]
    release: Work<P2pRange>,
}

// SAFETY: `mni` is written only by the mmu notifier core, under its own
// locks, between `mmu_interval_notifier_insert()` and `_remove()`; every
// other field is a lock, an atomic or immutable.
unsafe impl Send for P2pRange {}
// SAFETY: see `Send`; shared references only pass `mni` to the mmu
// notifier core.
unsafe impl Sync for P2pRange {}

impl_has_work! {
    impl HasWork<Self> for P2pRange { self.release }
}

impl WorkItem for P2pRange {
    type Pointer = Arc<P2pRange>;

    fn run(this: Arc<P2pRange>) {
        // Unpins once the importer has unmapped too.
        drop(this.pages.lock().take());
        this.unwatch();
    }
}

struct Ops(bindings::mmu_interval_notifier_ops);
// SAFETY: an immutable table of function pointers.
unsafe impl Sync for Ops {}

impl P2pRange {
    const OPS: Ops = Ops(bindings::mmu_interval_notifier_ops {
        invalidate: Some(Self::invalidate),
        invalidate_start: None,
        invalidate_finish: None,
    });

    /// Pins `size` bytes of PCI P2PDMA memory the caller mapped at `addr`
    /// (both page aligned, `size` nonzero: the caller checks) and watches
    /// the mapping.
    pub(crate) fn new(addr: usize, size: usize) -> Result<Arc<Self>, PinError> {
        let this = Arc::pin_init(
            try_pin_init!(P2pRange {
                mni: Opaque::zeroed(),
                watched: AtomicBool::new(false),
                size,
                revoked: AtomicBool::new(false),
                pages <- new_mutex!(None),
                importer <- new_spinlock_irq!(None),
                release <- new_work!("P2pRange::release"),
            }? Error),
            GFP_KERNEL,
        )
        .map_err(PinError::Pin)?;
        // The caller's mm, through C: bindgen's layout of `struct
        // task_struct` does not match GCC's on every configuration (on the
        // test kernel's, `mm` is 48 bytes off), so `current->mm` is not read
        // from Rust.
        // SAFETY: in process context (an ioctl), `current` is valid.
        let mm = unsafe { bindings::get_task_mm(bindings::get_current()) };
        if mm.is_null() {
            return Err(PinError::Pin(EFAULT));
        }
        let ops: &'static Ops = &Self::OPS;
        // SAFETY: `mni` is zeroed and not inserted; `mm` is the caller's,
        // which the notifier holds on to (mmgrab); the ops are static.
        let ret = unsafe {
            bindings::mmu_interval_notifier_insert(this.mni.get(), mm, addr, size, &ops.0)
        };
        // SAFETY: the reference `get_task_mm()` took.
        unsafe { bindings::mmput(mm) };
        kernel::error::to_result(ret).map_err(PinError::Pin)?;
        // INVARIANT: the notifier owns this reference until `unwatch`.
        let _ = Arc::into_raw(this.clone());
        this.watched.store(true, Ordering::Release);
        // From here on, any change to the mapping sets `revoked`.
        let pages = PinnedPages::pin(addr, size).inspect_err(|_| this.unwatch())?;
        let pages = Arc::new(pages, GFP_KERNEL).map_err(|e| {
            this.unwatch();
            PinError::Pin(e.into())
        })?;
        let mut slot = this.pages.lock();
        // The release work takes the slot after setting `revoked`: either
        // this sees it set, or the work runs after the pins are stored.
        if this.revoked.load(Ordering::Acquire) {
            drop(slot);
            this.unwatch();
            return Err(PinError::Changed);
        }
        *slot = Some(pages);
        drop(slot);
        Ok(this)
    }

    /// Size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Whether the mapping changed and the memory was let go of.
    pub(crate) fn revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }

    /// Stops watching the mapping. The caller holds a reference besides the
    /// notifier's. Sleeps (waits for a running notifier call).
    pub(crate) fn unwatch(&self) {
        if self.watched.swap(false, Ordering::AcqRel) {
            // SAFETY: inserted (type invariant), removed once.
            unsafe { bindings::mmu_interval_notifier_remove(self.mni.get()) };
            // SAFETY: the notifier's reference, taken in `new`; not the last
            // one (the caller's).
            drop(unsafe { Arc::from_raw(core::ptr::from_ref(self)) });
        }
    }

    /// Calls `f` with bytes `off..off + len` of the memory to write. Fails
    /// with `ENXIO` once the memory was let go of, with `EINVAL` if the
    /// bytes are not in one page of it.
    ///
    /// The kernel maps P2PDMA memory uncached (`memremap_pages()`), so CPU
    /// writes reach the device, as the NVMe driver's writes to its own
    /// CMB do. The caller owns those bytes: netgpu writes only a buffer the
    /// copy fallback took off the region's free list.
    pub(crate) fn with_slice<R>(
        &self,
        off: usize,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R> {
        let pages = self.pages.lock();
        let pages = pages.as_ref().ok_or(ENXIO)?;
        pages.with_slice(off, len, f).ok_or(EINVAL)
    }

    /// # Safety
    ///
    /// Called by the mmu notifier core with the notifier inserted in `new`.
    unsafe extern "C" fn invalidate(
        mni: *mut bindings::mmu_interval_notifier,
        _range: *const bindings::mmu_notifier_range,
        _cur_seq: usize,
    ) -> bool {
        // SAFETY: `mni` is the `mni` field of a `P2pRange` in an `Arc`,
        // which the inserted notifier holds a reference to.
        let this = unsafe {
            ArcBorrow::from_raw(kernel::container_of!(
                mni.cast::<Opaque<bindings::mmu_interval_notifier>>(),
                P2pRange,
                mni
            ))
        };
        let importer = this.importer.lock();
        if !this.revoked.swap(true, Ordering::AcqRel) {
            if let Some(i) = importer.as_ref() {
                // SAFETY: a registered importer is alive (type invariant).
                unsafe { (i.revoke)(i.data) };
            }
            drop(importer);
            // The pins go from process context; a queued release already
            // holds its own reference.
            let _ = workqueue::system().enqueue(Arc::<P2pRange>::from(this));
        }
        // The notifier never makes us wait, and never fails.
        true
    }
}

/// The owner's handle on a [`P2pRange`]: when dropped, stops watching the
/// mapping and drops the range's pins (the pages are unpinned once no
/// [`Mapping`] of them is left either).
pub(crate) struct P2pMem(Arc<P2pRange>);

impl P2pMem {
    /// See [`P2pRange::new`].
    pub(crate) fn new(addr: usize, size: usize) -> Result<Self, PinError> {
        P2pRange::new(addr, size).map(P2pMem)
    }

    /// The range.
    pub(crate) fn range(&self) -> &Arc<P2pRange> {
        &self.0
    }
}

impl Drop for P2pMem {
    fn drop(&mut self) {
        drop(self.0.pages.lock().take());
        self.0.unwatch();
    }
}

/// P2PDMA pages mapped for DMA from a device.
///
/// # Invariants
///
/// `sgt` is a table built over the pages of `pages`, mapped with
/// `dma_map_sgtable()` for `dev` and `DMA_FROM_DEVICE`; unmapped and freed
/// only by `drop`, before the reference to `pages` goes. `range` holds the
/// importer this mapping registered until `drop` takes it out.
pub(crate) struct Mapping {
    sgt: KBox<Opaque<bindings::sg_table>>,
    dev: ARef<Device>,
    range: Arc<P2pRange>,
    _pages: Arc<PinnedPages>,
}

// SAFETY: the mapping may be used and torn down from any thread.
unsafe impl Send for Mapping {}
// SAFETY: shared references only read the mapped table.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the memory of `range` for DMA from `dev`; `revoke` is told when
    /// the mapping of the range changes. Fails with `ENXIO` when `dev`
    /// cannot reach the memory peer to peer (or is not a PCI device): the
    /// DMA layer's `EREMOTEIO`, as the ABI names "region not mappable by
    /// that device"; with `ENXIO` too once the memory was let go of; with
    /// `EBUSY` if it is mapped for another importer.
    ///
    /// # Safety
    ///
    /// The `Arc` behind `revoke` must stay alive until the returned value is
    /// dropped.
    pub(crate) unsafe fn new<R: Revoke + Send + Sync>(
        range: &Arc<P2pRange>,
        dev: ARef<Device>,
        revoke: ArcBorrow<'_, R>,
    ) -> Result<Self> {
        let pages = range.pages.lock().clone().ok_or(ENXIO)?;
        {
            let mut slot = range.importer.lock();
            if range.revoked() {
                return Err(ENXIO);
            }
            if slot.is_some() {
                return Err(EBUSY);
            }
            // INVARIANT: the caller keeps the importer alive while this
            // mapping exists; `drop` (or the failure paths below) take it
            // out.
            *slot = Some(Importer {
                data: core::ptr::from_ref::<R>(&revoke).cast(),
                revoke: revoke_importer::<R>,
            });
        }
        Self::map(&pages, &dev)
            .map(|sgt| Mapping {
                sgt,
                dev,
                range: range.clone(),
                _pages: pages,
            })
            .inspect_err(|_| *range.importer.lock() = None)
    }

    fn map(pages: &PinnedPages, dev: &Device) -> Result<KBox<Opaque<bindings::sg_table>>> {
        let n: u32 = pages.pages.len().try_into()?;
        let sgt = KBox::new(Opaque::<bindings::sg_table>::zeroed(), GFP_KERNEL)?;
        let raw = device_ptr(dev);
        // SAFETY: `raw` is a live device.
        let max = match unsafe { bindings::dma_max_mapping_size(raw) } {
            0 => u32::MAX,
            m => u32::try_from(m).unwrap_or(u32::MAX),
        };
        // SAFETY: `sgt` is a zeroed table; the page array holds `n` pinned
        // pages and is only read.
        kernel::error::to_result(unsafe {
            bindings::sg_alloc_table_from_pages_segment(
                sgt.get(),
                pages.pages.as_ptr().cast_mut(),
                n,
                0,
                pages.size(),
                max & !(PAGE_SIZE as u32 - 1),
                bindings::GFP_KERNEL,
            )
        })?;
        // SAFETY: the table was built above over pinned pages.
        let ret = unsafe {
            bindings::dma_map_sgtable(
                raw,
                sgt.get(),
                bindings::dma_data_direction::DMA_FROM_DEVICE,
                0,
            )
        };
        if ret != 0 {
            // SAFETY: built above, not mapped.
            unsafe { bindings::sg_free_table(sgt.get()) };
            let e = Error::from_errno(ret);
            return Err(if e == EREMOTEIO { ENXIO } else { e });
        }
        Ok(sgt)
    }

    /// The DMA segments of the mapping, as (address, length) in order.
    pub(crate) fn for_each_segment(
        &self,
        mut f: impl FnMut(bindings::dma_addr_t, u64) -> Result,
    ) -> Result {
        // SAFETY: the table stays mapped until `drop` and nobody modifies it.
        let sgt = unsafe { kernel::scatterlist::SGTable::from_raw(self.sgt.get()) };
        for e in sgt.iter() {
            f(e.dma_address(), e.dma_len())?;
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        *self.range.importer.lock() = None;
        // SAFETY: per the type invariant, mapped for `dev` in `new` with the
        // same direction, unmapped and freed once.
        unsafe {
            bindings::dma_unmap_sgtable(
                device_ptr(&self.dev),
                self.sgt.get(),
                bindings::dma_data_direction::DMA_FROM_DEVICE,
                0,
            );
            bindings::sg_free_table(self.sgt.get());
        }
    }
}
