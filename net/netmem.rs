// SPDX-License-Identifier: GPL-2.0

//! Thin wrappers over net_iovs, netmem references and page pools, the
//! objects a memory provider deals in.
//!
//! C headers: [`include/net/netmem.h`](srctree/include/net/netmem.h),
//! [`include/net/page_pool/types.h`](srctree/include/net/page_pool/types.h),
//! [`include/net/page_pool/memory_provider.h`](srctree/include/net/page_pool/memory_provider.h).

use core::ptr::NonNull;

use kernel::{alloc::KVVec, bindings, page::PAGE_SIZE, prelude::*, types::Opaque};

/// A netmem reference: a `struct page` or a `struct net_iov`, told apart by
/// the low bit. Only a value; it owns no reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Netmem(pub(crate) bindings::netmem_ref);

impl Netmem {
    /// Whether this is a net_iov rather than a page.
    pub(crate) fn is_net_iov(self) -> bool {
        // SAFETY: the helper only tests a bit of the value.
        unsafe { bindings::netmem_is_net_iov(self.0) }
    }
}

/// A page pool, `struct page_pool`, seen from its memory provider.
///
/// # Invariants
///
/// A `&PagePool` points to a page pool between the provider's `init` and
/// `destroy` callbacks, or one that holds an inflight netmem the caller owns
/// a reference to; either keeps it alive.
#[repr(transparent)]
pub(crate) struct PagePool(Opaque<bindings::page_pool>);

impl PagePool {
    /// Wraps the pool a provider callback got.
    ///
    /// # Safety
    ///
    /// `pp` must point to a page pool that stays alive for `'a`, as the
    /// type invariant describes.
    pub(crate) unsafe fn from_raw<'a>(pp: *mut bindings::page_pool) -> &'a Self {
        // SAFETY: transparent wrapper; the caller guarantees the lifetime.
        unsafe { &*pp.cast() }
    }

    fn raw(&self) -> *mut bindings::page_pool {
        self.0.get()
    }

    /// The provider's private pointer of the pool (`mp_priv`).
    pub(crate) fn mp_priv(&self) -> *mut c_void {
        // SAFETY: the pool is alive; `mp_priv` is set before `init` and
        // never changes.
        unsafe { (*self.raw()).mp_priv }
    }

    /// Whether the pool's provider ops are `ops`.
    pub(crate) fn has_ops(&self, ops: *const bindings::memory_provider_ops) -> bool {
        // SAFETY: the pool is alive; `mp_ops` is set before `init` and
        // never changes.
        core::ptr::eq(unsafe { (*self.raw()).mp_ops }, ops)
    }

    /// The device the pool maps for.
    pub(crate) fn dma_dev(&self) -> *mut bindings::device {
        // SAFETY: the pool is alive; its parameters are fixed at creation.
        unsafe { (*self.raw()).p.dev }
    }

    /// Checks, at `init`, that the pool can serve net_iovs: it DMA-maps
    /// (so the stack asks the pool, not the page, for DMA addresses), hands
    /// out order-0 buffers and receives from the device. Turns syncing off:
    /// DMA-buf addresses must not be synced through the DMA API.
    pub(crate) fn check_and_setup(&self) -> Result {
        let pp = self.raw();
        // SAFETY: the pool is alive and being initialised by this thread;
        // nothing else uses it yet, so its flags may be written.
        unsafe {
            if !(*pp).dma_map() {
                return Err(EOPNOTSUPP);
            }
            if (*pp).p.order != 0 {
                return Err(E2BIG);
            }
            if (*pp).p.dma_dir != bindings::dma_data_direction::DMA_FROM_DEVICE {
                return Err(EOPNOTSUPP);
            }
            (*pp).set_dma_sync(false);
            (*pp).set_dma_sync_for_cpu(false);
        }
        Ok(())
    }

    /// Gives `niov` to the pool, accounted as allocated by it.
    pub(crate) fn take_niov(&self, niov: &NetIov) {
        // SAFETY: the pool is alive and `niov` is free (owned by no pool),
        // which the caller's freelist guarantees.
        unsafe { bindings::net_mp_niov_set_page_pool(self.raw(), niov.raw()) };
    }

    /// Puts a netmem whose last reference the caller dropped back into the
    /// pool, from any context (not the pool's fast path).
    pub(crate) fn put_unrefed(&self, netmem: Netmem) {
        // SAFETY: the pool is alive (it has `netmem` in flight) and the
        // caller dropped the last reference, which this call consumes.
        unsafe { bindings::page_pool_put_unrefed_netmem(self.raw(), netmem.0, u32::MAX, false) };
    }
}

/// A `struct net_iov`: one page-sized receive buffer of a region.
///
/// # Invariants
///
/// A `&NetIov` is an element of a live [`NiovArea`].
#[repr(transparent)]
pub(crate) struct NetIov(Opaque<bindings::net_iov>);

impl NetIov {
    fn raw(&self) -> *mut bindings::net_iov {
        self.0.get()
    }

    /// The netmem reference of this net_iov.
    pub(crate) fn netmem(&self) -> Netmem {
        // SAFETY: only computes the tagged pointer value.
        Netmem(unsafe { bindings::net_iov_to_netmem(self.raw()) })
    }

    /// The page pool that owns the net_iov now, if any.
    ///
    /// The pool stays alive while the caller holds a reference to the
    /// net_iov that keeps it in flight.
    pub(crate) fn pool(&self) -> Option<&PagePool> {
        // SAFETY: the net_iov is alive; `pp` is written by the page pool
        // core when a pool takes or releases it, both excluded by the
        // caller's reference.
        let pp = unsafe { (*self.raw()).desc.pp };
        // SAFETY: a pool that owns an inflight net_iov is alive.
        (!pp.is_null()).then(|| unsafe { PagePool::from_raw(pp) })
    }

    /// Takes a page pool reference on the net_iov.
    pub(crate) fn pp_ref(&self) {
        // SAFETY: the net_iov is owned by a pool and referenced by the
        // caller (an skb fragment), so the count is positive.
        unsafe { bindings::page_pool_ref_netmem(self.netmem().0) };
    }

    /// Drops `n` page pool references; returns the references left.
    pub(crate) fn pp_unref(&self, n: i64) -> i64 {
        // SAFETY: the caller owns `n` references taken with `pp_ref`.
        unsafe { bindings::page_pool_unref_netmem(self.netmem().0, n as isize) as i64 }
    }

    /// Sets the DMA address the NIC writes this buffer at; `false` if the
    /// address does not fit the page pool's encoding.
    pub(crate) fn set_dma_addr(&self, addr: bindings::dma_addr_t) -> bool {
        // SAFETY: the net_iov is alive and free, or being unmapped while no
        // pool hands it out. The function returns true on failure.
        !unsafe { bindings::net_mp_niov_set_dma_addr(self.raw(), addr) }
    }

    /// Detaches the net_iov from the pool releasing it.
    pub(crate) fn clear_pool(&self) {
        // SAFETY: called from `release_netmem`, when the pool gives it up.
        unsafe { bindings::net_mp_niov_clear_page_pool(self.raw()) };
    }
}

/// The net_iovs of a region, one per page, in a `struct net_iov_area`.
///
/// # Invariants
///
/// `area` is a boxed (address-stable) `net_iov_area` whose `niovs` points
/// to the buffer of `niovs`, which is never reallocated; every net_iov is
/// initialised with `area` as its owner and type `NET_IOV_MODULE`.
pub(crate) struct NiovArea {
    area: KBox<Opaque<bindings::net_iov_area>>,
    niovs: KVVec<NetIov>,
}

// SAFETY: the area is plain memory; net_iov fields are written only under
// the page pool core's rules or by their owner.
unsafe impl Send for NiovArea {}
// SAFETY: see `Send`.
unsafe impl Sync for NiovArea {}

impl NiovArea {
    /// Net_iovs for `size` bytes (a multiple of the page size).
    pub(crate) fn new(size: usize) -> Result<Self> {
        let n = size / PAGE_SIZE;
        let mut niovs = KVVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            niovs.push(NetIov(Opaque::zeroed()), GFP_KERNEL)?;
        }
        let area = KBox::new(Opaque::<bindings::net_iov_area>::zeroed(), GFP_KERNEL)?;
        let a = area.get();
        // SAFETY: `a` is the freshly boxed area, not yet shared.
        unsafe {
            (*a).niovs = niovs.as_mut_ptr().cast();
            (*a).num_niovs = n;
            (*a).base_virtual = 0;
        }
        for niov in niovs.iter() {
            // SAFETY: both are live and not yet shared.
            unsafe { bindings::net_iov_init(niov.raw(), a, bindings::net_iov_type_NET_IOV_MODULE) };
        }
        Ok(NiovArea { area, niovs })
    }

    /// Number of net_iovs.
    pub(crate) fn len(&self) -> usize {
        self.niovs.len()
    }

    /// The net_iov of page `idx`.
    pub(crate) fn get(&self, idx: usize) -> Option<&NetIov> {
        self.niovs.get(idx)
    }

    /// The index of `netmem` if it is a net_iov of this area.
    pub(crate) fn index_of(&self, netmem: Netmem) -> Option<usize> {
        if !netmem.is_net_iov() {
            return None;
        }
        // SAFETY: `netmem` is a net_iov reference (checked), the helper
        // only clears the tag bit.
        let niov = unsafe { bindings::netmem_to_net_iov(netmem.0) };
        // SAFETY: a net_iov in an skb or a pool is alive; `owner` is set
        // once at init.
        let owner = unsafe { (*niov).owner };
        if !core::ptr::eq(owner, self.area.get()) {
            return None;
        }
        let base = NonNull::from(&self.niovs[..]).cast::<bindings::net_iov>();
        let off = (niov as usize).wrapping_sub(base.as_ptr() as usize);
        let idx = off / core::mem::size_of::<bindings::net_iov>();
        (idx < self.len()).then_some(idx)
    }
}
