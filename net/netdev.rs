// SPDX-License-Identifier: GPL-2.0

//! Thin wrappers over the net devices and RX queues netgpu binds to.
//!
//! C headers: [`include/linux/netdevice.h`](srctree/include/linux/netdevice.h),
//! [`include/net/netdev_rx_queue.h`](srctree/include/net/netdev_rx_queue.h).

use core::ptr::NonNull;

use kernel::{bindings, device::Device, prelude::*, sync::aref::ARef};

/// A reference to a network namespace (`get_net`/`put_net`).
///
/// # Invariants
///
/// `self.0` is a network namespace on which this value holds a reference.
struct NetNs(NonNull<bindings::net>);

impl NetNs {
    /// The network namespace of the calling task.
    ///
    /// Found through the task's pid rather than `current->nsproxy`: with a
    /// GCC-built kernel, bindgen's layout of `struct task_struct` does not
    /// match the compiler's (checked on 7.3: `nsproxy` 48 bytes off), so
    /// Rust must not read its fields directly.
    fn current() -> Result<Self> {
        // SAFETY: `current` is the running task; with a NULL namespace the
        // function reports its pid in its own pid namespace.
        let tid = unsafe {
            bindings::__task_pid_nr_ns(
                bindings::get_current(),
                bindings::pid_type_PIDTYPE_PID,
                core::ptr::null_mut(),
            )
        };
        // SAFETY: looks up a task by number; returns a referenced namespace
        // or an error pointer.
        let net = kernel::error::from_err_ptr(unsafe { bindings::get_net_ns_by_pid(tid) })?;
        // INVARIANT: `get_net_ns_by_pid()` took a reference.
        NonNull::new(net).map(NetNs).ok_or(ESRCH)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // SAFETY: we own a reference.
        unsafe { bindings::put_net(self.0.as_ptr()) };
    }
}

/// A reference to a net device (`netdev_hold`/`netdev_put`, tracked).
///
/// # Invariants
///
/// `dev` is a net device on which this value holds one reference, tracked
/// by `tracker`, dropped only by `drop`.
pub(crate) struct NetDevRef {
    dev: NonNull<bindings::net_device>,
    tracker: bindings::netdevice_tracker,
}

// SAFETY: net device references may be taken and dropped on any thread.
unsafe impl Send for NetDevRef {}
// SAFETY: shared references only read fields that are fixed while the
// device is registered or go through the device's own locking.
unsafe impl Sync for NetDevRef {}

impl NetDevRef {
    /// The device with `ifindex` in the calling task's network namespace.
    pub(crate) fn get_in_current_netns(ifindex: i32) -> Result<Self> {
        let ns = NetNs::current()?;
        let net = ns.0.as_ptr();
        // SAFETY: all-zero is an empty tracker.
        let mut tracker: bindings::netdevice_tracker = unsafe { core::mem::zeroed() };
        // SAFETY: `net` is alive; the function takes a reference tracked by
        // `tracker` or returns NULL.
        let dev = unsafe {
            bindings::netdev_get_by_index(net, ifindex, &mut tracker, bindings::GFP_KERNEL)
        };
        let dev = NonNull::new(dev).ok_or(ENODEV)?;
        // INVARIANT: a tracked reference was taken above.
        Ok(NetDevRef { dev, tracker })
    }

    fn raw(&self) -> *mut bindings::net_device {
        self.dev.as_ptr()
    }

    /// Another tracked reference to the same device.
    pub(crate) fn clone_ref(&self) -> Self {
        // SAFETY: all-zero is an empty tracker.
        let mut tracker: bindings::netdevice_tracker = unsafe { core::mem::zeroed() };
        // SAFETY: the device is alive (we hold a reference).
        unsafe { bindings::netdev_hold(self.raw(), &mut tracker, bindings::GFP_KERNEL) };
        // INVARIANT: a tracked reference was taken above.
        NetDevRef {
            dev: self.dev,
            tracker,
        }
    }

    /// Whether the calling task has `CAP_NET_ADMIN` in the user namespace
    /// that owns the device's network namespace.
    pub(crate) fn caller_is_admin(&self) -> bool {
        // SAFETY: the device is alive (type invariant) and `nd_net` is
        // stable while the caller can find it by index in that namespace;
        // a namespace's `user_ns` is fixed.
        unsafe {
            let net = (*self.raw()).nd_net.net;
            bindings::ns_capable((*net).user_ns, bindings::CAP_NET_ADMIN as i32)
        }
    }

    /// The interface index.
    pub(crate) fn ifindex(&self) -> i32 {
        // SAFETY: the device is alive; `ifindex` is fixed while registered.
        unsafe { (*self.raw()).ifindex }
    }

    /// Takes the device's instance lock (`netdev_lock`).
    pub(crate) fn lock(&self) -> Locked<'_> {
        // SAFETY: the device is alive.
        unsafe { bindings::netdev_lock(self.raw()) };
        Locked(self)
    }
}

impl Drop for NetDevRef {
    fn drop(&mut self) {
        // SAFETY: we own the tracked reference.
        unsafe { bindings::netdev_put(self.raw(), &mut self.tracker) };
    }
}

/// Why an RX queue cannot take a memory provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QueueBusy {
    /// A memory provider is installed.
    Provider,
    /// AF_XDP zero-copy uses the queue.
    Xsk,
    /// The queue is leased to or from another device.
    Leased,
}

/// A net device with its instance lock held.
pub(crate) struct Locked<'a>(&'a NetDevRef);

impl Locked<'_> {
    fn raw(&self) -> *mut bindings::net_device {
        self.0.raw()
    }

    /// Whether the device is still registered.
    pub(crate) fn registered(&self) -> bool {
        // SAFETY: the device is alive and locked; `reg_state` changes under
        // the instance lock.
        unsafe {
            u32::from((*self.raw()).reg_state) == bindings::netdev_reg_state_NETREG_REGISTERED
        }
    }

    /// Number of RX queues in use.
    pub(crate) fn rx_queues(&self) -> u32 {
        // SAFETY: the device is locked; the count changes under the lock.
        unsafe { (*self.raw()).real_num_rx_queues }
    }

    /// Whether the driver implements the queue management API.
    pub(crate) fn has_queue_api(&self) -> bool {
        // SAFETY: the device is alive; the ops are fixed at registration.
        unsafe { !(*self.raw()).queue_mgmt_ops.is_null() }
    }

    /// The committed header/data split setting and threshold.
    pub(crate) fn hds(&self) -> (bool, u32) {
        // SAFETY: the device is locked; `cfg` is replaced under the lock.
        unsafe {
            let cfg = (*self.raw()).cfg;
            if cfg.is_null() {
                return (false, 0);
            }
            (
                u32::from((*cfg).hds_config)
                    == bindings::ethtool_tcp_data_split_ETHTOOL_TCP_DATA_SPLIT_ENABLED,
                (*cfg).hds_thresh,
            )
        }
    }

    /// Whether an XDP program is attached.
    pub(crate) fn xdp_attached(&self) -> bool {
        // SAFETY: the device is alive and locked.
        unsafe { bindings::dev_xdp_prog_count(self.raw()) != 0 }
    }

    fn rxq(&self, idx: u32) -> Option<*mut bindings::netdev_rx_queue> {
        // SAFETY: `idx` is below the queue count, checked first.
        (idx < self.rx_queues()).then(|| unsafe { bindings::__netif_get_rx_queue(self.raw(), idx) })
    }

    /// Whether RX queue `idx` (which must exist) is taken.
    pub(crate) fn rxq_busy(&self, idx: u32) -> Option<QueueBusy> {
        let rxq = self.rxq(idx)?;
        // SAFETY: the queue is alive and its fields change under the lock.
        unsafe {
            if !(*rxq).mp_params.mp_ops.is_null() {
                Some(QueueBusy::Provider)
            } else if !(*rxq).pool.is_null() {
                Some(QueueBusy::Xsk)
            } else if !(*rxq).lease.is_null() {
                Some(QueueBusy::Leased)
            } else {
                None
            }
        }
    }

    /// The device that DMAs for RX queue `idx`, if it has a DMA mask.
    pub(crate) fn dma_dev(&self, idx: u32) -> Option<ARef<Device>> {
        self.rxq(idx)?;
        let dev = self.raw();
        // SAFETY: the device is alive; the ops and parent are fixed while it
        // is registered, and the driver's callback may be called locked.
        let dma = unsafe {
            let ops = (*dev).queue_mgmt_ops;
            match (*ops).ndo_queue_get_dma_dev {
                Some(f) => f(dev, idx as i32),
                None => (*dev).dev.parent,
            }
        };
        // SAFETY: a non-NULL result is a live device.
        if dma.is_null() || unsafe { (*dma).dma_mask.is_null() } {
            return None;
        }
        // SAFETY: `dma` is a live device; this takes a reference.
        Some(unsafe { Device::get_device(dma) })
    }

    /// Installs the provider `ops` with private pointer `priv_` on RX queue
    /// `idx`, restarting the queue.
    pub(crate) fn mp_open(
        &self,
        idx: u32,
        ops: *const bindings::memory_provider_ops,
        priv_: *mut c_void,
    ) -> Result {
        let p = bindings::pp_memory_provider_params {
            mp_priv: priv_,
            mp_ops: ops,
            rx_page_size: 0,
        };
        // SAFETY: the device is alive and locked, as the function requires.
        let ret =
            unsafe { bindings::netif_mp_open_rxq(self.raw(), idx, &p, core::ptr::null_mut()) };
        kernel::error::to_result(ret)
    }

    /// Removes what [`Self::mp_open`] installed, restarting the queue.
    pub(crate) fn mp_close(
        &self,
        idx: u32,
        ops: *const bindings::memory_provider_ops,
        priv_: *mut c_void,
    ) {
        let p = bindings::pp_memory_provider_params {
            mp_priv: priv_,
            mp_ops: ops,
            rx_page_size: 0,
        };
        if idx < self.rx_queues() {
            // SAFETY: the device is alive and locked, `idx` exists.
            unsafe { bindings::netif_mp_close_rxq(self.raw(), idx, &p) };
        }
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // SAFETY: locked in `NetDevRef::lock`.
        unsafe { bindings::netdev_unlock(self.raw()) };
    }
}
