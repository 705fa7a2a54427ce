// SPDX-License-Identifier: GPL-2.0

//! Bindings: a region installed as the memory provider of an RX queue.
//!
//! A binding maps its region for the queue's DMA device and installs
//! netgpu's provider on the queue. Page pools of the queue hold a reference
//! to the binding from their `init` to their `destroy`, so the binding, its
//! region and the region's buffers outlive every buffer in flight; the
//! context holds one more until it unbinds.
//!
//! Locking: [`Binding::dev`] and [`Binding::mapping`] are mutexes taken in
//! process context, each alone or inside the netdev instance lock (binding
//! records the netdev under it; the provider's `uninstall` runs under it),
//! never the other way round: unbinding takes the netdev out of
//! [`Binding::dev`] first and only then locks the netdev.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kernel::{
    bindings,
    device::Device,
    impl_has_work, new_mutex, new_work,
    prelude::*,
    sync::{aref::ARef, Arc, ArcBorrow, Mutex},
    workqueue::{self, Work, WorkItem},
};

use super::region::{Memory, Region};
use crate::{
    dmabuf::{self, device_ptr, Revoke},
    net::{netdev::NetDevRef, provider},
    p2pdma,
};

/// A region's DMA mapping for a queue's device.
enum Mapping {
    /// A pinned attachment of the region's DMA-buf.
    DmaBuf(dmabuf::Mapping<Binding>),
    /// The region's P2PDMA pages mapped with `dma_map_sgtable()`.
    P2p(p2pdma::Mapping),
}

impl Mapping {
    /// The DMA segments of the mapping, as (address, length) in order.
    fn for_each_segment(&self, f: impl FnMut(bindings::dma_addr_t, u64) -> Result) -> Result {
        match self {
            Mapping::DmaBuf(m) => m.for_each_segment(f),
            Mapping::P2p(m) => m.for_each_segment(f),
        }
    }
}

/// A region bound to an RX queue.
#[pin_data(PinnedDrop)]
pub(crate) struct Binding {
    /// Id of the binding in its context.
    pub(crate) id: u32,
    /// Id of the context, to tell its buffers from other contexts'.
    pub(crate) ctx_id: u64,
    /// The region whose buffers the queue receives into.
    pub(crate) region: Arc<Region>,
    /// Interface index of the netdev, for messages.
    pub(crate) ifindex: i32,
    /// The RX queue.
    pub(crate) queue: u32,
    /// The netdev while the provider is installed; taken by unbind or by
    /// the netdev's unregistration.
    #[pin]
    dev: Mutex<Option<NetDevRef>>,
    /// The region's DMA mapping for the queue's device.
    #[pin]
    mapping: Mutex<Option<Mapping>>,
    /// Address of the device the region is mapped for, to check page pools
    /// against.
    dma_dev: usize,
    /// Set when the exporter revoked the mapping: no buffer is handed out.
    revoked: AtomicBool,
    /// Unbinds after a revocation, outside the exporter's locks.
    #[pin]
    revoke_work: Work<Binding>,
    /// Payload bytes completed from this binding's buffers.
    pub(crate) zc_bytes: AtomicU64,
    /// Times a page pool asked for a buffer and none was free.
    pub(crate) alloc_failures: AtomicU64,
}

impl_has_work! {
    impl HasWork<Self> for Binding { self.revoke_work }
}

impl WorkItem for Binding {
    type Pointer = Arc<Binding>;

    fn run(this: Arc<Binding>) {
        this.unbind();
    }
}

impl Revoke for Binding {
    fn revoke(this: ArcBorrow<'_, Binding>) {
        if this.revoked.swap(true, Ordering::AcqRel) {
            return;
        }
        let what = match this.region.mem {
            Memory::DmaBuf(_) => "the DMA-buf exporter revoked",
            Memory::P2p(_) => "the user mapping changed under",
        };
        pr_warn!(
            "binding {}: {} region {}; unbinding queue {} of ifindex {}\n",
            this.id,
            what,
            this.region.id,
            this.queue,
            this.ifindex
        );
        // The exporter holds the reservation lock (the mmu notifier, the
        // mm's locks): stop the queue and unmap from a work item.
        let _ = workqueue::system().enqueue(Arc::<Binding>::from(this));
    }
}

/// Why [`Binding::bind`] failed.
pub(crate) enum BindError {
    /// The region is bound to a queue already.
    RegionBound,
    /// The queue's DMA device cannot attach, pin or map the region: the
    /// exporter's errno (`EINVAL` from vfio-pci when the device cannot
    /// reach the BAR peer to peer).
    Map(Error),
    /// Allocating the binding or installing the provider failed.
    Install(Error),
}

impl Binding {
    /// Maps `region` for RX queue `queue` of `dev` and installs netgpu's
    /// provider on it. `dev` must be locked by the caller's checks having
    /// passed; the lock is taken here.
    pub(crate) fn bind(
        id: u32,
        ctx_id: u64,
        region: Arc<Region>,
        dev: NetDevRef,
        queue: u32,
        dma: ARef<Device>,
    ) -> Result<Arc<Self>, BindError> {
        if region.bound.swap(true, Ordering::AcqRel) {
            return Err(BindError::RegionBound);
        }
        let ifindex = dev.ifindex();
        let r = region.clone();
        let dma_dev = device_ptr(&dma) as usize;
        let b = Arc::pin_init(
            try_pin_init!(Binding {
                id,
                ctx_id,
                region,
                ifindex,
                queue,
                dev <- new_mutex!(None),
                mapping <- new_mutex!(None),
                dma_dev,
                revoked: AtomicBool::new(false),
                revoke_work <- new_work!("Binding::revoke_work"),
                zc_bytes: AtomicU64::new(0),
                alloc_failures: AtomicU64::new(0),
            }? Error),
            GFP_KERNEL,
        )
        .map_err(|e| {
            r.bound.store(false, Ordering::Release);
            BindError::Install(e)
        })?;
        // From here on dropping `b` clears `region.bound`.
        let mapping = match &r.mem {
            Memory::DmaBuf(d) => {
                // SAFETY: `b` owns the mapping, so the `Arc` outlives it.
                unsafe { dmabuf::Mapping::new(d, dma, b.as_arc_borrow()) }.map(Mapping::DmaBuf)
            }
            Memory::P2p(p) => {
                // SAFETY: as above.
                unsafe { p2pdma::Mapping::new(p.range(), dma, b.as_arc_borrow()) }.map(Mapping::P2p)
            }
        }
        .map_err(BindError::Map)?;
        b.set_dma_addrs(&mapping).map_err(BindError::Map)?;
        *b.mapping.lock() = Some(mapping);
        // Installed and recorded under the instance lock, which the
        // provider's `uninstall` also runs under: it either sees the netdev
        // recorded or runs after `mp_open` failed.
        let keep = dev.clone_ref();
        let locked = dev.lock();
        // Unmapped while `b` is alive: a revocation may still call it.
        let fail = |e| {
            b.unmap();
            BindError::Install(e)
        };
        if !locked.registered() {
            return Err(fail(ENODEV));
        }
        locked
            .mp_open(queue, provider::ops(), Arc::as_ptr(&b).cast_mut().cast())
            .map_err(fail)?;
        *b.dev.lock() = Some(keep);
        drop(locked);
        Ok(b)
    }

    /// Gives every buffer its DMA address, page by page through the
    /// mapping's segments.
    fn set_dma_addrs(&self, m: &Mapping) -> Result {
        let area = &self.region.area;
        let page = kernel::page::PAGE_SIZE as u64;
        let mut idx = 0usize;
        m.for_each_segment(|addr, len| {
            if addr % page != 0 || len % page != 0 {
                return Err(EINVAL);
            }
            for k in 0..len / page {
                let niov = area.get(idx).ok_or(EINVAL)?;
                if !niov.set_dma_addr(addr + k * page) {
                    return Err(EINVAL);
                }
                idx += 1;
            }
            Ok(())
        })?;
        if idx != area.len() {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Clears every buffer's DMA address and unmaps the region.
    fn unmap(&self) {
        if let Some(m) = self.mapping.lock().take() {
            for i in 0..self.region.area.len() {
                if let Some(niov) = self.region.area.get(i) {
                    niov.set_dma_addr(0);
                }
            }
            drop(m);
        }
    }

    /// Removes the provider from the queue and unmaps the region; buffers
    /// still in flight come back to the region as their pools release them.
    pub(crate) fn unbind(&self) {
        let dev = self.dev.lock().take();
        if let Some(dev) = dev {
            let locked = dev.lock();
            locked.mp_close(
                self.queue,
                provider::ops(),
                core::ptr::from_ref::<Self>(self).cast_mut().cast(),
            );
            drop(locked);
        }
        self.unmap();
    }

    /// The netdev is going away (provider `uninstall`, instance lock held).
    pub(crate) fn detach_from_netdev(&self) {
        let dev = self.dev.lock().take();
        if dev.is_some() {
            pr_info!(
                "binding {}: ifindex {} unregistered, queue {} unbound\n",
                self.id,
                self.ifindex,
                self.queue
            );
        }
        drop(dev);
        self.unmap();
    }

    /// Whether a page pool that maps for `dev` may use this binding.
    pub(crate) fn same_dma_dev(&self, dev: *mut bindings::device) -> bool {
        self.dma_dev == dev as usize
    }

    /// Whether the exporter revoked the mapping.
    pub(crate) fn revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }

    /// Whether the provider is still installed.
    pub(crate) fn installed(&self) -> bool {
        self.dev.lock().is_some()
    }
}

#[pinned_drop]
impl PinnedDrop for Binding {
    fn drop(self: Pin<&mut Self>) {
        self.unmap();
        self.region.bound.store(false, Ordering::Release);
    }
}
