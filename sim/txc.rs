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
//! It also frees the port's frames that the peer's engines are done with, in batches. A
//! NIC's TX completion frees the sender's buffers on the sending host; freed by the engine,
//! the frames went through `skb_attempt_defer_free()` back to the CPU that allocated them,
//! a tenth of the receiving CPU in the capacity benchmark. An engine poll gathers its
//! frames ([`Completed`]) and hands them over under one lock if they are many; a few (a
//! TCP stream's ACKs) it frees itself, as a wakeup of the sending side would cost more.
//!
//! The instance is the NAPI instance of all the port's TX queues (netdev netlink reports it
//! as theirs). It is added and enabled while the port is up.
//!
//! Locking: `done` (interrupts off) is a leaf lock; no skb is freed while it is held.

use core::ffi::c_int;
use core::sync::atomic::{AtomicBool, Ordering};

use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::{new_spinlock_irq, SpinLockIrq};
use kernel::types::Opaque;

use crate::netdev::{self, Napi, NetDev, QueueType, Skb};

/// Weight of the instance (`NAPI_POLL_WEIGHT`): frames freed per poll.
const WEIGHT: usize = 64;
/// Fewest frames an engine poll hands over without a wake request; it frees fewer itself.
/// Scheduling the instance is a wakeup on the sending side's CPU, and a stream's ACKs come
/// one or two per engine poll: the receiving host of a TCP stream would pay a wakeup per
/// poll of its peer's engine. NICs moderate TX completion interrupts the same way.
const HANDOVER_MIN: usize = 32;
/// Most frames waiting to be freed; beyond that, an engine frees its frames itself.
const DONE_MAX: usize = 4096;

/// What the peer's engines hand over, under the `done` lock.
struct Done {
    /// The instance is up and frees what is handed over; else the engines free their frames.
    up: bool,
    /// Frames to free: addresses of skbs this list owns. Never grows past its capacity.
    skbs: KVec<usize>,
    /// An engine asked for the TX queues to be woken.
    wake: bool,
}

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
    #[pin]
    done: SpinLockIrq<Done>,
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
        let done = Done {
            up: false,
            skbs: KVec::with_capacity(DONE_MAX, GFP_KERNEL)?,
            wake: false,
        };
        KBox::pin_init(
            pin_init!(TxCompletion {
                napi <- Opaque::zeroed(),
                done <- new_spinlock_irq!(done, "netgpu_sim_txc_done"),
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
            napi.add_tx_locked(dev, poll, WEIGHT as c_int);
            napi.enable_locked();
            for i in 0..dev.num_tx() {
                dev.set_queue_napi(QueueType::Tx, i, Some(napi));
            }
        }
        self.added_once.store(true, Ordering::Release);
        self.done.lock().up = true;
        wake_queues(dev);
    }

    /// Dissociates the TX queues, disables and deletes the instance. The port is closing;
    /// instance lock held.
    pub(crate) fn close(&self, dev: &NetDev) {
        let napi = self.napi();
        // SAFETY: added and enabled by `open` (the port was up); instance lock held.
        unsafe {
            for i in 0..dev.num_tx() {
                dev.set_queue_napi(QueueType::Tx, i, None);
            }
            napi.disable_locked();
            napi.del_locked();
        }
        netdev::synchronize_net();
        // From here on the engines free their frames themselves; free what they left.
        let mut left = Completed::new();
        loop {
            let p = {
                let mut d = self.done.lock();
                d.up = false;
                d.wake = false;
                d.skbs.pop()
            };
            let Some(p) = p else { break };
            left.push_raw(p, 0);
        }
    }

    /// Takes over the frames of `c` to free them, and wakes the port's stopped TX queues if
    /// `wake`: schedules the instance to do both on its CPU. Fewer than [`HANDOVER_MIN`]
    /// frames and no wake, or the port down (or too many frames waiting), and the frames
    /// are freed here, from a NAPI poll given `budget`.
    /// Called by the peer's engine, in an RCU read-side critical section that keeps the
    /// port's state alive.
    pub(crate) fn complete(&self, c: &mut Completed, wake: bool, budget: c_int) {
        if !wake && c.len < HANDOVER_MIN {
            c.free(budget);
            return;
        }
        let schedule = {
            let mut d = self.done.lock();
            if d.up {
                // What does not fit is freed below.
                while c.len > 0 && d.skbs.push_within_capacity(c.skbs[c.len - 1]).is_ok() {
                    c.len -= 1;
                }
                d.wake |= wake;
            }
            d.up && (d.wake || !d.skbs.is_empty())
        };
        c.free(budget);
        if schedule && self.added_once.load(Ordering::Acquire) {
            // SAFETY: the instance was added (`added_once`); scheduling it while it is
            // disabled or deleted is a no-op (type invariant).
            unsafe { self.napi().schedule() };
        }
    }

    /// Frees up to [`WEIGHT`] handed-over frames from NAPI poll with `budget`, and wakes
    /// the TX queues of `dev` if asked. Returns whether frames are left.
    fn poll(&self, dev: &NetDev, budget: c_int) -> bool {
        let mut c = Completed::new();
        let (wake, more) = {
            let mut d = self.done.lock();
            while c.len < WEIGHT {
                let Some(p) = d.skbs.pop() else { break };
                c.skbs[c.len] = p;
                c.len += 1;
            }
            (core::mem::take(&mut d.wake), !d.skbs.is_empty())
        };
        c.free(budget);
        if wake {
            wake_queues(dev);
        }
        more
    }
}

/// Frames whose transmission completed, gathered by an engine poll for the sending port's
/// [`TxCompletion`]. Frees what it still holds when dropped.
///
/// # Invariants
///
/// The first `len` entries of `skbs` are addresses of skbs this value owns.
pub(crate) struct Completed {
    skbs: [usize; WEIGHT],
    len: usize,
}

impl Completed {
    pub(crate) fn new() -> Self {
        Completed {
            skbs: [0; WEIGHT],
            len: 0,
        }
    }

    /// Adds `skb`, a frame whose transmission completed; if full, frees the frames held so
    /// far first, from a NAPI poll given `budget`.
    pub(crate) fn push(&mut self, skb: Skb, budget: c_int) {
        self.push_raw(skb.into_raw() as usize, budget);
    }

    fn push_raw(&mut self, skb: usize, budget: c_int) {
        if self.len == WEIGHT {
            self.free(budget);
        }
        self.skbs[self.len] = skb;
        self.len += 1;
    }

    /// Frees the frames held, as transmitted: from a NAPI poll if `budget` is nonzero.
    pub(crate) fn free(&mut self, budget: c_int) {
        for &p in &self.skbs[..self.len] {
            // SAFETY: the first `len` entries are owned skbs (type invariant), given up
            // here.
            if let Some(skb) = unsafe { Skb::from_raw(p as *mut bindings::sk_buff) } {
                skb.consume_in_napi(budget);
            }
        }
        self.len = 0;
    }
}

impl Drop for Completed {
    fn drop(&mut self) {
        self.free(0);
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

/// The instance's NAPI poll: frees handed-over frames and wakes the port's stopped TX
/// queues, whose qdiscs then run here. Reports no work unless frames are left.
extern "C" fn poll(napi: *mut bindings::napi_struct, budget: c_int) -> c_int {
    // SAFETY: `napi` is the first field of a `TxCompletion` (`repr(C)`), pinned in its box.
    let txc = unsafe { &*napi.cast::<TxCompletion>() };
    // SAFETY: the NAPI instance was added for this device, which outlives it.
    let dev = unsafe { NetDev::from_raw((*napi).dev) };
    if txc.poll(dev, budget) && budget > 0 {
        return budget;
    }
    // SAFETY: we are the NAPI poll of `napi`.
    unsafe { bindings::napi_complete_done(napi, 0) };
    0
}
