// SPDX-License-Identifier: GPL-2.0

//! TX completion of a netgpu-sim port: the NAPI instance that wakes the port's TX queues
//! once the peer's RX rings have room again.
//!
//! The port's transmit posts frames to the peer's RX rings and stops its TX queue when one
//! fills up ([`crate::rxq::RxQueue::post`]). The peer's NIC engine drains the ring; once it
//! is at most half full, the engine schedules this instance instead of waking the queues
//! itself. Waking a TX queue runs its qdisc on the waking CPU (`__netif_schedule()` raises
//! NET_TX there), so woken from the engine, the sending side's qdisc and transmit path ran
//! on the CPU of the receiving side: a sixth of that CPU in the sim's capacity benchmark. A
//! NIC tells its own host that transmissions completed, and that host's driver wakes the
//! queue from its NAPI poll: so does this instance, on the CPU where the port's NAPI runs.
//!
//! The instance is the NAPI instance of all the port's TX queues (netdev netlink reports it
//! as theirs). It is added and enabled while the port is up.

use core::ffi::c_int;
use core::sync::atomic::{AtomicBool, Ordering};

use kernel::bindings;
use kernel::prelude::*;
use kernel::types::Opaque;

use crate::netdev::{self, Napi, NetDev};

/// Weight of the instance (`NAPI_POLL_WEIGHT`); it reports no work.
const WEIGHT: c_int = 64;

/// A port's TX completion NAPI instance.
///
/// # Invariants
///
/// `napi` is zeroed until the first [`TxCompletion::open`], and changes only through
/// [`Napi`]'s methods: added and enabled by `open`, disabled and deleted by `close`, which
/// the port's control path calls alternately under the instance lock. `added_once` is set
/// once `napi` was first added, and never cleared.
#[repr(C)]
#[pin_data]
pub(crate) struct TxCompletion {
    #[pin]
    napi: Opaque<bindings::napi_struct>,
    /// From the first `open` on, scheduling the instance is safe at any time: a disabled or
    /// deleted instance stays marked as scheduled, which makes scheduling it a no-op.
    added_once: AtomicBool,
}

// SAFETY: the NAPI struct is synchronized by the core and the control-path rules above.
unsafe impl Send for TxCompletion {}
// SAFETY: see above.
unsafe impl Sync for TxCompletion {}

impl TxCompletion {
    pub(crate) fn new() -> Result<Pin<KBox<Self>>> {
        KBox::pin_init(
            pin_init!(TxCompletion {
                napi <- Opaque::zeroed(),
                added_once: AtomicBool::new(false),
            }),
            GFP_KERNEL,
        )
    }

    fn napi(&self) -> &Napi {
        // SAFETY: `napi` is zeroed at creation, changes only through `Napi`, and lives in
        // the pinned box (type invariant).
        unsafe { Napi::from_opaque(&self.napi) }
    }

    /// Adds and enables the instance, makes it the NAPI instance of `dev`'s TX queues, and
    /// wakes those: a ring that drained while the port was down scheduled no one. The port
    /// is opening; instance lock held.
    pub(crate) fn open(&self, dev: &NetDev) {
        let napi = self.napi();
        // SAFETY: the instance is zeroed or was deleted by `close` (the port was down);
        // `poll` needs nothing but the instance's device; the TX queues are `dev`'s, and
        // the instance stays added to it until `close` dissociates them; instance lock held.
        unsafe {
            napi.add_tx_locked(dev, poll, WEIGHT);
            napi.enable_locked();
            for i in 0..dev.num_tx() {
                dev.set_tx_queue_napi(i, Some(napi));
            }
        }
        self.added_once.store(true, Ordering::Release);
        wake_queues(dev);
    }

    /// Dissociates the TX queues, disables and deletes the instance. The port is closing;
    /// instance lock held.
    pub(crate) fn close(&self, dev: &NetDev) {
        let napi = self.napi();
        // SAFETY: added and enabled by `open` (the port was up); instance lock held.
        unsafe {
            for i in 0..dev.num_tx() {
                dev.set_tx_queue_napi(i, None);
            }
            napi.disable_locked();
            napi.del_locked();
        }
        netdev::synchronize_net();
    }

    /// Schedules the instance, which wakes the port's stopped TX queues. Called by the peer's
    /// engine, in an RCU read-side critical section that keeps the port's state alive.
    pub(crate) fn wake(&self) {
        if self.added_once.load(Ordering::Acquire) {
            // SAFETY: the instance was added (`added_once`); scheduling it while it is
            // disabled or deleted is a no-op (type invariant).
            unsafe { self.napi().schedule() };
        }
    }
}

/// Wakes the stopped TX queues of `dev`.
fn wake_queues(dev: &NetDev) {
    for q in (0..dev.real_tx()).filter_map(|i| dev.tx_queue(i)) {
        if q.stopped() {
            q.wake();
        }
    }
}

/// The instance's NAPI poll: wakes the port's stopped TX queues, whose qdiscs then run
/// here. Reports no work.
extern "C" fn poll(napi: *mut bindings::napi_struct, _budget: c_int) -> c_int {
    // SAFETY: the NAPI instance was added for this device, which outlives it.
    let dev = unsafe { NetDev::from_raw((*napi).dev) };
    wake_queues(dev);
    // SAFETY: we are the NAPI poll of `napi`.
    unsafe { bindings::napi_complete_done(napi, 0) };
    0
}
