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
    sync::{aref::ARef, Mutex, SpinLockIrq},
};

use crate::{
    dmabuf::{DmaBuf, Vmap},
    net::netmem::NiovArea,
};

/// Memory of a context, carved into page-sized receive buffers.
#[pin_data]
pub(crate) struct Region {
    /// Id of the region in its context.
    pub(crate) id: u32,
    /// The imported DMA-buf.
    pub(crate) dmabuf: ARef<DmaBuf>,
    /// The buffers.
    pub(crate) area: NiovArea,
    /// Per buffer, the completions naming it that user space still holds.
    urefs: KVVec<AtomicU32>,
    /// Indexes of the buffers nobody holds.
    #[pin]
    free: SpinLockIrq<KVVec<u32>>,
    /// Whether a binding uses the region.
    pub(crate) bound: AtomicBool,
    /// CPU mapping for the copy fallback, made on first use.
    #[pin]
    pub(crate) vmap: Mutex<Option<Vmap>>,
}

impl Region {
    /// Makes a region of `dmabuf`, whose size must be a nonzero multiple of
    /// the page size.
    pub(crate) fn new(id: u32, dmabuf: ARef<DmaBuf>) -> Result<impl PinInit<Self, Error>> {
        let size = dmabuf.size();
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
            dmabuf,
            area,
            urefs,
            free <- new_spinlock_irq!(free),
            bound: AtomicBool::new(false),
            vmap <- new_mutex!(None),
        }? Error))
    }

    /// Size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.dmabuf.size()
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
