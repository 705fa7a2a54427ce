// SPDX-License-Identifier: GPL-2.0

//! netgpu's page_pool memory provider (`struct memory_provider_ops`).
//!
//! The ops live in this module's read-only data with `owner` set, so the
//! page pool core pins netgpu.ko while any page pool uses them (patch 1 of
//! the series) and the module cannot be unloaded under a live pool.
//!
//! A pool's `mp_priv` is a [`Binding`]; `init` takes a reference to it that
//! `destroy` drops, so the binding outlives the pool.

use kernel::{bindings, prelude::*, sync::Arc};

use super::netmem::{NetIov, Netmem, PagePool};
use crate::netgpu::binding::Binding;

struct Ops<T>(T);
// SAFETY: an immutable table of function pointers and a module pointer.
unsafe impl<T> Sync for Ops<T> {}

static MP_OPS: Ops<bindings::memory_provider_ops> = Ops(bindings::memory_provider_ops {
    alloc_netmems: Some(alloc_netmems),
    release_netmem: Some(release_netmem),
    init: Some(init),
    destroy: Some(destroy),
    nl_fill: Some(nl_fill),
    uninstall: Some(uninstall),
    owner: kernel::module::this_module::<crate::LocalModule>().as_ptr(),
});

/// netgpu's provider ops, to install on a queue or recognise a pool by.
pub(crate) fn ops() -> *const bindings::memory_provider_ops {
    &MP_OPS.0
}

/// The binding whose buffer `niov` is, if netgpu's provider owns it.
pub(crate) fn binding_of_niov(niov: &NetIov) -> Option<&Binding> {
    let pool = niov.pool()?;
    if !pool.has_ops(ops()) {
        return None;
    }
    // SAFETY: the pool holds `niov` in flight, so it is between `init` and
    // `destroy`.
    Some(unsafe { binding_of(pool) })
}

/// The binding of a pool that uses netgpu's ops.
///
/// # Safety
///
/// `pool` must be between `init` and `destroy`, which hold a reference.
unsafe fn binding_of(pool: &PagePool) -> &Binding {
    // SAFETY: per the function's contract `mp_priv` is a live binding.
    unsafe { &*pool.mp_priv().cast::<Binding>() }
}

/// # Safety
///
/// Called by the page pool core, as `struct memory_provider_ops` documents.
unsafe extern "C" fn alloc_netmems(
    pp: *mut bindings::page_pool,
    _gfp: bindings::gfp_t,
) -> bindings::netmem_ref {
    // SAFETY: the page pool core calls this between `init` and `destroy`.
    let pool = unsafe { PagePool::from_raw(pp) };
    // SAFETY: as above.
    let b = unsafe { binding_of(pool) };
    if b.revoked() {
        return 0;
    }
    let region = &b.region;
    let Some(niov) = region.take_free().and_then(|i| region.area.get(i as usize)) else {
        b.alloc_failures
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        return 0;
    };
    pool.take_niov(niov);
    niov.netmem().0
}

/// # Safety
///
/// Called by the page pool core, as `struct memory_provider_ops` documents.
unsafe extern "C" fn release_netmem(
    pp: *mut bindings::page_pool,
    netmem: bindings::netmem_ref,
) -> bool {
    // SAFETY: the pool is releasing a netmem it owns, so it is alive.
    let pool = unsafe { PagePool::from_raw(pp) };
    // SAFETY: a pool releasing netmems is before `destroy`.
    let b = unsafe { binding_of(pool) };
    let region = &b.region;
    match region.area.index_of(Netmem(netmem)) {
        Some(idx) => {
            if let Some(niov) = region.area.get(idx) {
                niov.clear_pool();
            }
            region.put_free(idx as u32);
        }
        None => pr_warn!(
            "binding {}: pool released a netmem not of region {}\n",
            b.id,
            region.id
        ),
    }
    false
}

/// # Safety
///
/// Called by the page pool core, as `struct memory_provider_ops` documents.
unsafe extern "C" fn init(pp: *mut bindings::page_pool) -> c_int {
    // SAFETY: the pool is being created.
    let pool = unsafe { PagePool::from_raw(pp) };
    let ptr = pool.mp_priv().cast::<Binding>();
    if ptr.is_null() {
        return EINVAL.to_errno();
    }
    // SAFETY: the provider is installed with a live binding, which the
    // context keeps until it uninstalls the provider.
    let b = unsafe { &*ptr };
    if !b.same_dma_dev(pool.dma_dev()) {
        pr_err!(
            "binding {}: page pool maps for another device than the binding\n",
            b.id
        );
        return EINVAL.to_errno();
    }
    if let Err(e) = pool.check_and_setup() {
        pr_err!(
            "binding {}: page pool cannot serve net_iovs (errno {})\n",
            b.id,
            e.to_errno()
        );
        return e.to_errno();
    }
    // SAFETY: `ptr` came from `Arc::as_ptr` of a live `Arc<Binding>`.
    let arc: Arc<Binding> = unsafe { kernel::sync::ArcBorrow::from_raw(ptr) }.into();
    // The pool owns this reference until `destroy`.
    let _ = Arc::into_raw(arc);
    0
}

/// # Safety
///
/// Called by the page pool core, as `struct memory_provider_ops` documents.
unsafe extern "C" fn destroy(pp: *mut bindings::page_pool) {
    // SAFETY: the pool is being destroyed; `init` succeeded on it.
    let pool = unsafe { PagePool::from_raw(pp) };
    // SAFETY: `init` leaked one reference for this pool.
    drop(unsafe { Arc::from_raw(pool.mp_priv().cast::<Binding>().cast_const()) });
}

/// # Safety
///
/// Called by the page pool core, as `struct memory_provider_ops` documents.
unsafe extern "C" fn nl_fill(
    _mp_priv: *mut c_void,
    _rsp: *mut bindings::sk_buff,
    _rxq: *mut bindings::netdev_rx_queue,
) -> c_int {
    // The netdev netlink family has attributes for devmem and io_uring
    // providers only; netgpu adds none.
    0
}

/// # Safety
///
/// Called by the page pool core, as `struct memory_provider_ops` documents.
unsafe extern "C" fn uninstall(mp_priv: *mut c_void, rxq: *mut bindings::netdev_rx_queue) {
    // SAFETY: the provider is installed, so its binding is alive.
    let b = unsafe { &*mp_priv.cast::<Binding>() };
    b.detach_from_netdev();
    // SAFETY: the netdev core calls this with the queue's device locked.
    unsafe {
        (*rxq).mp_params.mp_ops = core::ptr::null();
        (*rxq).mp_params.mp_priv = core::ptr::null_mut();
    }
}
