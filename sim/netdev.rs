// SPDX-License-Identifier: GPL-2.0

//! Thin wrappers over the C networking objects netgpu-sim's logic touches: the
//! `net_device`, its TX queues, skbs the driver owns, NAPI instances and page pools. The
//! driver's control logic reads and changes devices through these instead of raw pointers.

use core::ffi::c_int;
use core::ptr::NonNull;

use kernel::bindings;
use kernel::prelude::*;
use kernel::types::Opaque;

/// Reads a field of a [`NetDev`].
macro_rules! field {
    ($dev:expr, $($f:tt)+) => {
        // SAFETY: the device is allocated (type invariant of `NetDev`). Fields that change
        // at run time change under locks the callers hold, or are read racily by C too
        // (queue counts, features, MTU).
        unsafe { (*$dev.0.get()).$($f)+ }
    };
}

/// A `struct net_device`.
///
/// # Invariants
///
/// The wrapped device is allocated for as long as the reference lives.
#[repr(transparent)]
pub(crate) struct NetDev(Opaque<bindings::net_device>);

impl NetDev {
    /// Wraps a device pointer.
    ///
    /// # Safety
    ///
    /// `ptr` points to an allocated `net_device` that stays allocated for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::net_device) -> &'a NetDev {
        // SAFETY: `NetDev` is a transparent wrapper; validity is the caller's promise.
        unsafe { &*ptr.cast() }
    }

    pub(crate) fn as_raw(&self) -> *mut bindings::net_device {
        self.0.get()
    }

    pub(crate) fn num_rx(&self) -> u32 {
        field!(self, num_rx_queues)
    }

    pub(crate) fn num_tx(&self) -> u32 {
        field!(self, num_tx_queues)
    }

    pub(crate) fn real_rx(&self) -> u32 {
        field!(self, real_num_rx_queues)
    }

    pub(crate) fn real_tx(&self) -> u32 {
        field!(self, real_num_tx_queues)
    }

    pub(crate) fn mtu(&self) -> u32 {
        field!(self, mtu)
    }

    pub(crate) fn ifindex(&self) -> c_int {
        field!(self, ifindex)
    }

    pub(crate) fn features(&self) -> u64 {
        field!(self, features)
    }

    /// The device's network namespace.
    pub(crate) fn net(&self) -> *mut bindings::net {
        field!(self, nd_net.net)
    }

    pub(crate) fn running(&self) -> bool {
        // SAFETY: the device is allocated.
        unsafe { bindings::netif_running(self.0.get()) }
    }

    pub(crate) fn carrier_on(&self) {
        // SAFETY: the device is allocated; the call is safe in any context.
        unsafe { bindings::netif_carrier_on(self.0.get()) }
    }

    pub(crate) fn carrier_off(&self) {
        // SAFETY: as above.
        unsafe { bindings::netif_carrier_off(self.0.get()) }
    }

    /// TX queue `i`, if the device has that many.
    pub(crate) fn tx_queue(&self, i: u32) -> Option<&TxQueue> {
        if i >= self.num_tx() {
            return None;
        }
        // SAFETY: `i` < num_tx_queues; the queue array lives as long as the device.
        Some(unsafe { &*bindings::netdev_get_tx_queue(self.0.get(), i).cast() })
    }

    /// Sets the active RX and TX queue counts. The caller holds rtnl and the instance lock,
    /// which the core asserts.
    pub(crate) fn set_real_queues(&self, rx: u32, tx: u32) -> Result {
        // SAFETY: the device is registered; the locks are the caller's duty and checked by
        // lockdep in the callee.
        kernel::error::to_result(unsafe {
            bindings::netif_set_real_num_queues(self.0.get(), tx, rx)
        })
    }
}

/// A `struct netdev_queue` (a TX queue).
#[repr(transparent)]
pub(crate) struct TxQueue(Opaque<bindings::netdev_queue>);

impl TxQueue {
    pub(crate) fn stop(&self) {
        // SAFETY: the queue belongs to an allocated device.
        unsafe { bindings::netif_tx_stop_queue(self.0.get()) }
    }

    pub(crate) fn wake(&self) {
        // SAFETY: as above.
        unsafe { bindings::netif_tx_wake_queue(self.0.get()) }
    }

    pub(crate) fn stopped(&self) -> bool {
        // SAFETY: as above.
        unsafe { bindings::netif_tx_queue_stopped(self.0.get()) }
    }
}

/// An skb the driver owns. Dropping it frees it as a drop (`dev_kfree_skb_any`); a frame
/// that was delivered is released with [`Skb::consume`].
///
/// # Invariants
///
/// The pointer is a valid skb owned by this value.
pub(crate) struct Skb(NonNull<bindings::sk_buff>);

// SAFETY: an owned skb may be handed between contexts.
unsafe impl Send for Skb {}

impl Skb {
    /// Takes ownership of `ptr`, if not null.
    ///
    /// # Safety
    ///
    /// `ptr` is null or a valid skb whose ownership the caller passes on.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::sk_buff) -> Option<Skb> {
        NonNull::new(ptr).map(Skb)
    }

    pub(crate) fn as_raw(&self) -> *mut bindings::sk_buff {
        self.0.as_ptr()
    }

    /// Gives up ownership.
    pub(crate) fn into_raw(self) -> *mut bindings::sk_buff {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }

    pub(crate) fn len(&self) -> u32 {
        // SAFETY: valid skb (type invariant).
        unsafe { (*self.0.as_ptr()).len }
    }

    pub(crate) fn queue_mapping(&self) -> u16 {
        // SAFETY: valid skb.
        unsafe { bindings::skb_get_queue_mapping(self.0.as_ptr()) }
    }

    /// Copies `dst.len()` bytes from offset `off` of the frame.
    pub(crate) fn copy_bits(&self, off: usize, dst: &mut [u8]) -> Result {
        let off = c_int::try_from(off).map_err(|_| EINVAL)?;
        let len = c_int::try_from(dst.len()).map_err(|_| EINVAL)?;
        // SAFETY: valid skb; `dst` has room for `len` bytes; the callee checks the range.
        kernel::error::to_result(unsafe {
            bindings::skb_copy_bits(self.0.as_ptr(), off, dst.as_mut_ptr().cast(), len)
        })
    }

    /// The frame's linear part, where a sender's headers are.
    pub(crate) fn linear(&self) -> &[u8] {
        let skb = self.0.as_ptr();
        // SAFETY: valid skb (type invariant): `data` has `len - data_len` bytes in the head.
        // Nobody writes them while the frame is in flight: a sender that transmits the same
        // data again (a TCP retransmission) copies a head that is still in use.
        unsafe {
            let n = (*skb).len.saturating_sub((*skb).data_len) as usize;
            core::slice::from_raw_parts((*skb).data, n)
        }
    }

    /// The control block: private to the owner of the skb.
    pub(crate) fn cb(&mut self) -> &mut [u8; 48] {
        // SAFETY: valid skb we own; `cb` is 48 bytes.
        unsafe { &mut *(&raw mut (*self.0.as_ptr()).cb).cast() }
    }

    /// Completes the transmission for the sending socket, as a NIC's TX
    /// completion would: its send-buffer accounting (and TCP small queues)
    /// is released now, on the sender's CPU, not when the peer's NAPI frees
    /// the frame on the receiving side's CPU. A full RX ring still holds
    /// the sender back by stopping its TX queue.
    pub(crate) fn orphan_tx(&mut self) {
        // SAFETY: valid skb we own (type invariant).
        unsafe { bindings::skb_orphan_partial(self.0.as_ptr()) }
    }

    /// Releases a frame that was delivered (not dropped), from the NAPI poll
    /// given `budget` (nonzero), as a driver completes transmissions there.
    pub(crate) fn consume_in_napi(self, budget: c_int) {
        // SAFETY: we own the skb and give it up here; the caller is a NAPI
        // poll, as a nonzero budget tells the function.
        unsafe { bindings::napi_consume_skb(self.into_raw(), budget) }
    }
}

impl Drop for Skb {
    fn drop(&mut self) {
        // SAFETY: we own the skb; this is the last use.
        unsafe { bindings::dev_kfree_skb_any(self.0.as_ptr()) }
    }
}

/// A `struct napi_struct`, embedded in one of the driver's RX queues.
///
/// # Invariants
///
/// The struct is zeroed, or was set up by `netif_napi_add_config_locked` (and may have been
/// deleted since, which leaves it ready for another add). It lives in pinned memory: its
/// address does not change while the device may use it.
#[repr(transparent)]
pub(crate) struct Napi(Opaque<bindings::napi_struct>);

impl Napi {
    /// Wraps a NAPI struct embedded in the driver's memory.
    ///
    /// # Safety
    ///
    /// `napi` is zeroed, or set up and deleted only through [`Napi`]'s methods, and it is
    /// pinned.
    pub(crate) unsafe fn from_opaque(napi: &Opaque<bindings::napi_struct>) -> &Napi {
        // SAFETY: `Napi` is a transparent wrapper; the invariants are the caller's promise.
        unsafe { &*core::ptr::from_ref(napi).cast() }
    }

    pub(crate) fn as_raw(&self) -> *mut bindings::napi_struct {
        self.0.get()
    }

    /// Adds the instance to `dev` with `poll`, using NAPI config `index`.
    ///
    /// # Safety
    ///
    /// The instance is not added (zeroed, or deleted since it was). `poll` may be called
    /// with the instance's pointer as long as it is added. `index` is below `dev`'s number
    /// of RX queues. The caller holds the instance lock of `dev` (lockdep checks it).
    pub(crate) unsafe fn add_locked(
        &self,
        dev: &NetDev,
        poll: unsafe extern "C" fn(*mut bindings::napi_struct, c_int) -> c_int,
        index: u32,
    ) {
        // SAFETY: the device is allocated and the struct valid (type invariants); the rest
        // is the caller's promise.
        unsafe {
            bindings::netif_napi_add_config_locked(
                dev.as_raw(),
                self.0.get(),
                Some(poll),
                index as c_int,
            )
        };
    }

    /// Enables the instance.
    ///
    /// # Safety
    ///
    /// The instance is added and disabled; the caller holds its device's instance lock.
    pub(crate) unsafe fn enable_locked(&self) {
        // SAFETY: the caller's promise.
        unsafe { bindings::napi_enable_locked(self.0.get()) };
    }

    /// Disables the instance, waiting for a running poll to finish.
    ///
    /// # Safety
    ///
    /// The instance is added and enabled; the caller holds its device's instance lock.
    pub(crate) unsafe fn disable_locked(&self) {
        // SAFETY: the caller's promise.
        unsafe { bindings::napi_disable_locked(self.0.get()) };
    }

    /// Deletes the instance from its device. The device may still reach it until an RCU
    /// grace period passed ([`synchronize_net`]).
    ///
    /// # Safety
    ///
    /// The instance is added and disabled; the caller holds its device's instance lock.
    pub(crate) unsafe fn del_locked(&self) {
        // SAFETY: the caller's promise.
        unsafe { bindings::__netif_napi_del_locked(self.0.get()) };
    }

    /// Schedules a poll, if the instance is enabled.
    ///
    /// # Safety
    ///
    /// The instance is added: scheduling an added NAPI that is not enabled is a no-op, but
    /// a zeroed one would be queued without a poll function.
    pub(crate) unsafe fn schedule(&self) {
        // SAFETY: the caller's promise.
        unsafe { bindings::napi_schedule(self.0.get()) };
    }
}

impl NetDev {
    /// Associates RX queue `index` with `napi`, or with none.
    ///
    /// # Safety
    ///
    /// `index` is below the device's number of RX queues. `napi`, if any, is added to this
    /// device and stays so until the association is cleared. The caller holds the instance
    /// lock (lockdep checks it).
    pub(crate) unsafe fn set_rx_queue_napi(&self, index: u32, napi: Option<&Napi>) {
        // SAFETY: the device is allocated (type invariant); the rest is the caller's
        // promise.
        unsafe {
            bindings::netif_queue_set_napi(
                self.as_raw(),
                index,
                bindings::netdev_queue_type_NETDEV_QUEUE_TYPE_RX,
                napi.map_or(core::ptr::null_mut(), Napi::as_raw),
            )
        };
    }
}

/// Waits for an RCU grace period of the networking core.
pub(crate) fn synchronize_net() {
    // SAFETY: only waits; the callers run in process context.
    unsafe { bindings::synchronize_net() };
}

/// A page pool the driver owns. Dropping it destroys it (`page_pool_destroy`): the pool
/// goes away once its last buffer came back.
///
/// # Invariants
///
/// The pointer is a page pool from `page_pool_create`, owned by this value and not
/// installed where the datapath allocates from it.
pub(crate) struct PagePool(NonNull<bindings::page_pool>);

impl PagePool {
    /// Creates a pool.
    ///
    /// # Safety
    ///
    /// The device, `net_device` and NAPI instance of `params` stay valid until the pool is
    /// destroyed. The caller holds the instance lock of the `net_device`, as
    /// `page_pool_init` requires for queues that may have a memory provider.
    pub(crate) unsafe fn create(params: &bindings::page_pool_params) -> Result<PagePool> {
        // SAFETY: `params` is valid; the rest is the caller's promise.
        let pool = unsafe { bindings::page_pool_create(params) };
        let pool = kernel::error::from_err_ptr(pool)?;
        // `page_pool_create` returns a pool or an error, never null.
        NonNull::new(pool).map(PagePool).ok_or(ENOMEM)
    }

    /// Gives up ownership, to install the pool for the datapath.
    pub(crate) fn into_raw(self) -> *mut bindings::page_pool {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }

    /// Takes ownership of `ptr`, if not null.
    ///
    /// # Safety
    ///
    /// `ptr` is null or a pool from [`PagePool::into_raw`] whose ownership the caller
    /// passes on: no one allocates from it any more.
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::page_pool) -> Option<PagePool> {
        NonNull::new(ptr).map(PagePool)
    }

    /// Detaches the pool from its NAPI instance: no more direct recycling.
    ///
    /// # Safety
    ///
    /// The pool's NAPI instance, if any, is disabled (its polls cannot race with this).
    pub(crate) unsafe fn disable_direct_recycling(&self) {
        // SAFETY: a live pool (type invariant); the rest is the caller's promise.
        unsafe { bindings::page_pool_disable_direct_recycling(self.0.as_ptr()) };
    }
}

impl Drop for PagePool {
    fn drop(&mut self) {
        // SAFETY: we own the pool and it is installed nowhere (type invariant).
        unsafe { bindings::page_pool_destroy(self.0.as_ptr()) };
    }
}
