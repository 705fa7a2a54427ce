// SPDX-License-Identifier: GPL-2.0

//! The C side of netgpu-sim's queue management API (`netdev_queue_mgmt_ops`), which memory
//! providers use to restart an RX queue with their own buffers: the ops table and its
//! callbacks, which turn the core's raw pointers into references once and call the safe
//! methods of [`crate::rxq::RxQueue`].

use core::ffi::{c_int, c_void};

use kernel::bindings;
use kernel::prelude::*;

use crate::netdev::NetDev;
use crate::port::{self, PortState};
use crate::port_ops::Ops;
use crate::rxq::{self, QueueMem, RxQueue};

fn errno(r: Result) -> c_int {
    r.map_or_else(|e| e.to_errno(), |()| 0)
}

/// The queue memory of a callback.
///
/// # Safety
///
/// `mem` is the `ndo_queue_mem_size` bytes the core passes to the callback: zeroed when
/// allocated, and passed to one callback at a time, under the instance lock.
unsafe fn qmem<'a>(mem: *mut c_void) -> &'a mut QueueMem {
    // SAFETY: the caller's promise; all zeros is a valid `QueueMem`, and the callbacks only
    // leave valid ones.
    unsafe { &mut *mem.cast::<QueueMem>() }
}

/// The state and RX queue `idx` of `dev`, for the queue API callbacks.
fn queue(dev: &NetDev, idx: c_int) -> Result<(&PortState, &RxQueue)> {
    let s = port::state(dev).ok_or(ENODEV)?;
    let q = usize::try_from(idx)
        .ok()
        .and_then(|i| s.rxqs.get(i))
        .ok_or(ERANGE)?;
    Ok((s, q))
}

/// Runs `f` on the state, RX queue `idx` and queue memory of a callback, and returns its
/// errno.
///
/// # Safety
///
/// `dev` is the core's device, and `mem` queue memory as for [`qmem`].
unsafe fn on_queue(
    dev: *mut bindings::net_device,
    mem: *mut c_void,
    idx: c_int,
    f: impl FnOnce(&PortState, &RxQueue, &mut QueueMem) -> Result,
) -> c_int {
    // SAFETY: the caller's promise.
    let (dev, mem) = unsafe { (NetDev::from_raw(dev), qmem(mem)) };
    errno(queue(dev, idx).and_then(|(s, q)| f(s, q, mem)))
}

/// # Safety
///
/// Called by the core as `ndo_queue_mem_alloc`, with its device and queue memory.
unsafe extern "C" fn queue_mem_alloc(
    dev: *mut bindings::net_device,
    _qcfg: *mut bindings::netdev_queue_config,
    mem: *mut c_void,
    idx: c_int,
) -> c_int {
    // SAFETY: the core passes its device and the queue memory.
    unsafe { on_queue(dev, mem, idx, |s, q, m| q.alloc_mem(s, m)) }
}

/// # Safety
///
/// Called by the core as `ndo_queue_mem_free`, with queue memory.
unsafe extern "C" fn queue_mem_free(_dev: *mut bindings::net_device, mem: *mut c_void) {
    // SAFETY: the core passes the queue memory.
    rxq::free_mem(unsafe { qmem(mem) });
}

/// # Safety
///
/// Called by the core as `ndo_queue_start`, with its device and queue memory.
unsafe extern "C" fn queue_start(
    dev: *mut bindings::net_device,
    _qcfg: *mut bindings::netdev_queue_config,
    mem: *mut c_void,
    idx: c_int,
) -> c_int {
    // The pools now belong to the queue: `start` takes them out of `mem`.
    // SAFETY: the core passes its device and the queue memory.
    unsafe {
        on_queue(dev, mem, idx, |s, q, m| {
            q.start(s, m);
            Ok(())
        })
    }
}

/// # Safety
///
/// Called by the core as `ndo_queue_stop`, with its device and queue memory.
unsafe extern "C" fn queue_stop(
    dev: *mut bindings::net_device,
    mem: *mut c_void,
    idx: c_int,
) -> c_int {
    // SAFETY: the core passes its device and the queue memory.
    unsafe {
        on_queue(dev, mem, idx, |s, q, m| {
            q.stop(s, m);
            Ok(())
        })
    }
}

static QUEUE_MGMT_OPS: Ops<bindings::netdev_queue_mgmt_ops> =
    Ops(bindings::netdev_queue_mgmt_ops {
        ndo_queue_mem_size: core::mem::size_of::<QueueMem>(),
        ndo_queue_mem_alloc: Some(queue_mem_alloc),
        ndo_queue_mem_free: Some(queue_mem_free),
        ndo_queue_start: Some(queue_start),
        ndo_queue_stop: Some(queue_stop),
        // SAFETY: all-zero is valid for the remaining optional callbacks.
        ..unsafe { core::mem::zeroed() }
    });

pub(crate) fn queue_mgmt_ops() -> *const bindings::netdev_queue_mgmt_ops {
    &QUEUE_MGMT_OPS.0
}
