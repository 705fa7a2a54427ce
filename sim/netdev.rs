// SPDX-License-Identifier: GPL-2.0

//! Thin wrappers over the C networking objects netgpu-sim's logic touches: the
//! `net_device`, its TX queues, and skbs the driver owns. The driver's control logic reads
//! and changes devices through these instead of raw pointers.

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
