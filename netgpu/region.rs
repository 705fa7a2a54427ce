// SPDX-License-Identifier: GPL-2.0

//! Regions: memory a context imported to receive payload into.
//!
//! A region is carved into page-sized buffers, each a `net_iov`. A buffer is
//! in exactly one place at a time: the region's free list, a page pool of
//! the binding that uses the region (and from there in skbs), or user
//! space, which holds it from the completion that names it until it comes
//! back through the refill ring.
//!
//! Locking: [`Region::free`] is an irq-safe spinlock, innermost of netgpu;
//! it is taken from page pool callbacks in softirq context.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use kernel::{
    alloc::KVVec,
    new_mutex, new_spinlock_irq,
    page::PAGE_SIZE,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex, SpinLockIrq},
};

use crate::{
    dmabuf::{DmaBuf, Vmap},
    net::netmem::NiovArea,
    p2pdma::{P2pMem, P2pRange},
};

/// What backs a region.
pub(crate) enum Memory {
    /// An imported DMA-buf (`NETGPU_IOC_IMPORT_DMABUF`).
    DmaBuf(ARef<DmaBuf>),
    /// PCI P2PDMA memory pinned while the user mapping lasts
    /// (`NETGPU_IOC_IMPORT_P2PMEM`).
    P2p(P2pMem),
}

impl Memory {
    /// Size in bytes; fixed for the memory's lifetime.
    pub(crate) fn size(&self) -> usize {
        match self {
            Memory::DmaBuf(d) => d.size(),
            Memory::P2p(p) => p.range().size(),
        }
    }
}

/// The kernel's CPU access to a region, for the copy fallback.
pub(crate) enum CpuMap {
    /// A DMA-buf mapped with `dma_buf_vmap`.
    DmaBuf(Vmap),
    /// P2PDMA pages, which the kernel maps uncached when they are added.
    P2p(Arc<P2pRange>),
}

impl CpuMap {
    /// Calls `f` with bytes `off..off + len` of the region to write; the
    /// caller owns the buffer they are in. Fails with `EINVAL` if they are
    /// not in one buffer, with `ENXIO` if the memory was let go of (the
    /// user mapping of P2PDMA memory changed).
    pub(crate) fn with_slice<R>(
        &self,
        off: usize,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R> {
        if off % PAGE_SIZE + len > PAGE_SIZE {
            return Err(EINVAL);
        }
        match self {
            CpuMap::DmaBuf(v) => v.with_slice(off, len, f).ok_or(EINVAL),
            CpuMap::P2p(p) => p.with_slice(off, len, f),
        }
    }

    /// Brackets CPU writes for the exporter (cache maintenance).
    pub(crate) fn begin_cpu_write(&self) -> Result {
        match self {
            CpuMap::DmaBuf(v) => v.begin_cpu_write(),
            CpuMap::P2p(_) => Ok(()),
        }
    }

    /// Ends what [`Self::begin_cpu_write`] began.
    pub(crate) fn end_cpu_write(&self) {
        if let CpuMap::DmaBuf(v) = self {
            v.end_cpu_write();
        }
    }
}

/// Memory of a context, carved into page-sized receive buffers.
#[pin_data]
pub(crate) struct Region {
    /// Id of the region in its context.
    pub(crate) id: u32,
    /// The memory the buffers are in.
    pub(crate) mem: Memory,
    /// The buffers.
    pub(crate) area: NiovArea,
    /// Per buffer, the completions naming it that user space still holds.
    urefs: KVVec<AtomicU32>,
    /// Indexes of the buffers nobody holds.
    #[pin]
    free: SpinLockIrq<KVVec<u32>>,
    /// Whether a binding uses the region.
    pub(crate) bound: AtomicBool,
    /// CPU access for the copy fallback, set up on first use.
    #[pin]
    pub(crate) cpu: Mutex<Option<CpuMap>>,
}

impl Region {
    /// Makes a region of `mem`, whose size must be a nonzero multiple of
    /// the page size.
    pub(crate) fn new(id: u32, mem: Memory) -> Result<impl PinInit<Self, Error>> {
        let size = mem.size();
        if !size_ok(size) {
            return Err(EINVAL);
        }
        let area = NiovArea::new(size)?;
        let n = area.len();
        let mut urefs = KVVec::with_capacity(n, GFP_KERNEL)?;
        let mut free = KVVec::with_capacity(n, GFP_KERNEL)?;
        for i in 0..n {
            urefs.push(AtomicU32::new(0), GFP_KERNEL)?;
            // Handed out from the end: the lowest offsets first.
            free.push((n - 1 - i) as u32, GFP_KERNEL)?;
        }
        Ok(try_pin_init!(Region {
            id,
            mem,
            area,
            urefs,
            free <- new_spinlock_irq!(free),
            bound: AtomicBool::new(false),
            cpu <- new_mutex!(None),
        }? Error))
    }

    /// Size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.mem.size()
    }

    /// CPU access to the region for the copy fallback. Fails with `ENXIO`
    /// when a DMA-buf exporter has no CPU mapping to give (device memory
    /// exported by vfio-pci), or P2PDMA memory was let go of.
    pub(crate) fn cpu_map(&self) -> Result<CpuMap> {
        Ok(match &self.mem {
            Memory::DmaBuf(d) => CpuMap::DmaBuf(Vmap::new(d)?),
            Memory::P2p(p) if p.range().revoked() => return Err(ENXIO),
            Memory::P2p(p) => CpuMap::P2p(p.range().clone()),
        })
    }

    /// Takes a free buffer.
    pub(crate) fn take_free(&self) -> Option<u32> {
        self.free.lock().pop()
    }

    /// Puts buffer `idx` on the free list.
    pub(crate) fn put_free(&self, idx: u32) {
        // The list has room for every buffer, so this never allocates; a
        // full list means a buffer was freed twice, a netgpu bug.
        if self.free.lock().push_within_capacity(idx).is_err() {
            pr_warn!("region {}: buffer {} freed twice\n", self.id, idx);
        }
    }

    /// Number of free buffers.
    pub(crate) fn free_count(&self) -> usize {
        self.free.lock().len()
    }

    /// Records that user space holds one more completion of buffer `idx`.
    pub(crate) fn uref_get(&self, idx: usize) {
        if let Some(u) = self.urefs.get(idx) {
            u.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes back one completion of buffer `idx` from user space; `None` if
    /// it holds none, else whether that was its last.
    pub(crate) fn uref_put(&self, idx: usize) -> Option<bool> {
        let u = self.urefs.get(idx)?;
        u.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| v.checked_sub(1))
            .ok()
            .map(|old| old == 1)
    }

    /// Takes back one completion of buffer `idx` from user space, as a
    /// refill entry names it; `false` if user space holds none of it.
    pub(crate) fn user_return(&self, idx: usize) -> bool {
        match self.uref_put(idx) {
            None => false,
            Some(last) => {
                match self.area.get(idx).and_then(|n| n.pool().map(|p| (n, p))) {
                    Some((niov, pool)) => {
                        if niov.pp_unref(1) == 0 {
                            pool.put_unrefed(niov.netmem());
                        }
                    }
                    None if last => self.put_free(idx as u32),
                    None => (),
                }
                true
            }
        }
    }

    /// Takes back `n` completions of buffer `idx` that user space held:
    /// the page pool references they carried are dropped, and a buffer
    /// nobody else holds goes back to its pool or, if it came from the copy
    /// fallback, to the free list.
    pub(crate) fn return_buffer(&self, idx: usize, n: u32) {
        let Some(niov) = self.area.get(idx) else {
            return;
        };
        match niov.pool() {
            Some(pool) => {
                if niov.pp_unref(i64::from(n)) == 0 {
                    pool.put_unrefed(niov.netmem());
                }
            }
            None => self.put_free(idx as u32),
        }
    }

    /// Takes back every buffer user space holds (the context is closing).
    pub(crate) fn reclaim_user_buffers(&self) {
        for (i, u) in self.urefs.iter().enumerate() {
            let n = u.swap(0, Ordering::AcqRel);
            if n != 0 {
                self.return_buffer(i, n);
            }
        }
    }

    /// Byte offset of buffer `idx` in the region.
    pub(crate) fn offset_of(idx: usize) -> u64 {
        (idx * PAGE_SIZE) as u64
    }
}

/// Whether a buffer of `size` bytes can be a region: a nonzero multiple of
/// the page size, so that it splits into whole receive buffers.
pub(crate) fn size_ok(size: usize) -> bool {
    size != 0 && size % PAGE_SIZE == 0
}

#[kunit_tests(netgpu_region)]
mod tests {
    use super::*;

    #[test]
    fn region_sizes() {
        assert!(!size_ok(0));
        assert!(!size_ok(1));
        assert!(!size_ok(PAGE_SIZE - 1));
        assert!(size_ok(PAGE_SIZE));
        assert!(!size_ok(PAGE_SIZE + 1));
        assert!(size_ok(1 << 30));
        assert!(!size_ok(usize::MAX));
    }
}
