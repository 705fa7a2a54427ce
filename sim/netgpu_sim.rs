// SPDX-License-Identifier: GPL-2.0

//! netgpu-sim: a software NIC with header/data split and memory-provider RX queues.
//!
//! Devices come in pairs, like veth: what one end transmits, the other receives. Unlike
//! veth, the receiving end behaves like a multi-queue NIC with header/data split: frames are
//! steered to an RX queue (ntuple rule, else Toeplitz RSS over an indirection table), and its
//! NAPI poll builds skbs from page pool buffers, writing TCP/UDP payloads through the DMA
//! address of buffers from the queue's data page pool. That pool allows unreadable netmem, so
//! a memory provider (devmem TCP, io_uring zcrx, netgpu) installed through the queue
//! management API receives payloads in its own memory, exactly as on hardware.
//!
//! ```text
//! ip link add ngs0 numrxqueues 4 numtxqueues 4 type netgpu-sim peer name ngs1
//! ```
//!
//! See `Documentation/netgpu-sim.rst`.

use core::sync::atomic::{AtomicPtr, Ordering};

use kernel::bindings;
use kernel::prelude::*;
use kernel::types::Opaque;

mod coalesce;
mod ethtool;
mod ethtool_ops;
mod flow;
mod netdev;
mod pci;
mod port;
mod port_ops;
mod queue_ops;
mod rxq;
mod txc;

module! {
    type: SimModule,
    name: "netgpu_sim",
    authors: ["netgpu developers"],
    description: "Software NIC with header/data split and memory-provider RX queues",
    license: "GPL",
    alias: ["rtnl-link-netgpu-sim"],
}

/// The registered link ops, for `newlink` to create peers with.
static LINK_OPS: AtomicPtr<bindings::rtnl_link_ops> = AtomicPtr::new(core::ptr::null_mut());

pub(crate) fn link_ops() -> *mut bindings::rtnl_link_ops {
    LINK_OPS.load(Ordering::Acquire)
}

/// The link ops, registered with (and linked into a list by) rtnetlink.
#[repr(transparent)]
struct LinkOps(Opaque<bindings::rtnl_link_ops>);

// SAFETY: after registration the ops are only touched by rtnetlink under its own locks.
unsafe impl Send for LinkOps {}
// SAFETY: see above.
unsafe impl Sync for LinkOps {}

struct SimModule {
    ops: Pin<KBox<LinkOps>>,
    /// Dropped after `ops` is unregistered, which deletes the pairs on its functions.
    _pci: Pin<KBox<kernel::driver::Registration<kernel::pci::Adapter<pci::SimPci>>>>,
}

impl kernel::Module for SimModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let pci = KBox::pin_init(
            kernel::driver::Registration::new(pci::DRIVER_NAME, module),
            GFP_KERNEL,
        )?;
        let ops = KBox::pin(LinkOps(Opaque::new(port_ops::link_ops_value())), GFP_KERNEL)?;
        LINK_OPS.store(ops.0.get(), Ordering::Release);
        // SAFETY: `ops` is pinned and lives until `drop` unregisters it.
        let err = unsafe { bindings::rtnl_link_register(ops.0.get()) };
        if err != 0 {
            LINK_OPS.store(core::ptr::null_mut(), Ordering::Release);
            return Err(Error::from_errno(err));
        }
        Ok(SimModule { ops, _pci: pci })
    }
}

impl Drop for SimModule {
    fn drop(&mut self) {
        // SAFETY: registered in `init`; this deletes every netgpu-sim device.
        unsafe { bindings::rtnl_link_unregister(self.ops.0.get()) };
        LINK_OPS.store(core::ptr::null_mut(), Ordering::Release);
    }
}
