// SPDX-License-Identifier: GPL-2.0

//! Thin wrappers over the C networking objects netgpu-sim's logic touches: the
//! `net_device` (and, while rtnetlink creates or deletes it, its setup, registration and
//! unregistration), its TX queues, skbs the driver owns, NAPI instances, page pools and
//! RCU-protected values. The driver's control logic reads and changes devices through these
//! instead of raw pointers.

use core::ffi::c_int;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};

use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::rcu;
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

    /// Gives the device's instance lock (and TX queue locks) a lockdep class of its own, which
    /// allows holding the locks of two devices of the driver at once.
    ///
    /// # Safety
    ///
    /// The device is being registered: the caller is its `ndo_init`, and none of those locks
    /// is held.
    pub(crate) unsafe fn set_lockdep_classes(&self) {
        // SAFETY: the device is allocated (type invariant); the rest is the caller's promise.
        unsafe { bindings::netdev_lockdep_set_classes(self.0.get()) };
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

/// What a TSO send asks of the NIC: cut the payload into `segs` segments of `mss` bytes
/// (the last one shorter), headers in front of each.
#[derive(Clone, Copy)]
pub(crate) struct Tso {
    pub(crate) mss: u16,
    pub(crate) segs: u16,
    /// `SKB_GSO_*` bits.
    pub(crate) gso_type: u32,
}

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

    /// Borrows `ptr`, which the caller keeps owning: the result never frees it.
    ///
    /// # Safety
    ///
    /// `ptr` is null or a valid skb for as long as the result lives.
    pub(crate) unsafe fn borrow(ptr: *mut bindings::sk_buff) -> Option<ManuallyDrop<Skb>> {
        NonNull::new(ptr).map(|p| ManuallyDrop::new(Skb(p)))
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

    /// The TSO metadata of a send of more than one segment, or `None` for one frame.
    pub(crate) fn tso(&self) -> Option<Tso> {
        let skb = self.0.as_ptr();
        // SAFETY: valid skb (type invariant); its shared info lives with it, and its GSO
        // fields do not change while the owner transmits it.
        let (mss, segs, gso_type) = unsafe {
            let sh = bindings::skb_shinfo(skb);
            ((*sh).gso_size, (*sh).gso_segs, (*sh).gso_type)
        };
        (mss != 0 && segs > 1).then_some(Tso {
            mss,
            segs,
            gso_type,
        })
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
/// The struct is zeroed, or was set up by `netif_napi_add_config_locked` or
/// `netif_napi_add_weight_locked` (and may have been deleted since, which leaves it ready for another add). It lives in pinned memory: its
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

    /// Adds the instance to `dev` with `poll` and `weight`, as an instance that serves no
    /// RX queue (no NAPI config: its own ID, its own settings).
    ///
    /// # Safety
    ///
    /// The instance is not added (zeroed, or deleted since it was). `poll` may be called
    /// with the instance's pointer as long as it is added. The caller holds the instance
    /// lock of `dev` (lockdep checks it).
    pub(crate) unsafe fn add_tx_locked(
        &self,
        dev: &NetDev,
        poll: unsafe extern "C" fn(*mut bindings::napi_struct, c_int) -> c_int,
        weight: c_int,
    ) {
        // SAFETY: the device is allocated and the struct valid (type invariants); the rest
        // is the caller's promise.
        unsafe {
            bindings::netif_napi_add_weight_locked(dev.as_raw(), self.0.get(), Some(poll), weight)
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

    /// Schedules a poll, if the instance is enabled and not scheduled yet; returns whether
    /// it did.
    ///
    /// # Safety
    ///
    /// The instance was added at least once: scheduling one that is disabled, or was
    /// disabled and then deleted (which leaves it marked as scheduled), is a no-op, but a
    /// zeroed one would be queued without a poll function.
    pub(crate) unsafe fn schedule(&self) -> bool {
        // SAFETY: the caller's promise.
        unsafe { bindings::napi_schedule(self.0.get()) }
    }
}

/// The kind of queue a NAPI instance serves.
#[derive(Clone, Copy)]
pub(crate) enum QueueType {
    Rx,
    Tx,
}

impl NetDev {
    /// Associates queue `index` of kind `ty` with `napi`, or with none.
    ///
    /// # Safety
    ///
    /// `index` is below the device's number of queues of that kind. `napi`, if any, is
    /// added to this device and stays so until the association is cleared. The caller holds
    /// the instance lock (lockdep checks it).
    pub(crate) unsafe fn set_queue_napi(&self, ty: QueueType, index: u32, napi: Option<&Napi>) {
        let ty = match ty {
            QueueType::Rx => bindings::netdev_queue_type_NETDEV_QUEUE_TYPE_RX,
            QueueType::Tx => bindings::netdev_queue_type_NETDEV_QUEUE_TYPE_TX,
        };
        // SAFETY: the device is allocated (type invariant); the rest is the caller's
        // promise.
        unsafe {
            bindings::netif_queue_set_napi(
                self.as_raw(),
                index,
                ty,
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

/// Proof that rtnl is held for `'a`.
///
/// # Invariants
///
/// The thread that has the value holds rtnl for `'a` (the value cannot leave it).
#[derive(Clone, Copy)]
pub(crate) struct Rtnl<'a>(PhantomData<(&'a (), *mut ())>);

impl<'a> Rtnl<'a> {
    /// # Safety
    ///
    /// The caller holds rtnl for `'a`, as the rtnetlink callbacks that create and delete links
    /// are called.
    pub(crate) unsafe fn assume() -> Rtnl<'a> {
        Rtnl(PhantomData)
    }
}

/// A `struct net_device` being set up: allocated and not registered yet. Its fields are
/// still the setup's to write.
///
/// # Invariants
///
/// The device is allocated and not registered for as long as the reference lives, and only
/// its holder writes its fields.
#[repr(transparent)]
pub(crate) struct NetDevSetup(NetDev);

/// Writes a field of a [`NetDevSetup`].
macro_rules! setup {
    ($dev:expr, |$d:ident| $body:expr) => {{
        let $d = $dev.as_raw();
        // SAFETY: the device is allocated and not registered, so nothing but its holder reads
        // or writes its fields (type invariant of `NetDevSetup`).
        unsafe { $body }
    }};
}

impl NetDevSetup {
    /// Wraps a device being set up.
    ///
    /// # Safety
    ///
    /// `ptr` points to an allocated `net_device` that stays allocated and unregistered for
    /// `'a`, and whose fields only the caller (through the result) writes meanwhile.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::net_device) -> &'a NetDevSetup {
        // SAFETY: `NetDevSetup` is a transparent wrapper of `NetDev`; validity is the caller's
        // promise.
        unsafe { &*ptr.cast() }
    }

    /// Sets up Ethernet defaults (`ether_setup`).
    pub(crate) fn ether_setup(&self) {
        setup!(self, |d| bindings::ether_setup(d))
    }

    /// Sets the `netdev_priv_flags` the device has (`priv_flags`).
    pub(crate) fn update_priv_flags(&self, clear: usize, set: usize) {
        setup!(self, |d| {
            // The fast path fields of `net_device` are a struct group: the union's members
            // are the same bytes.
            let fast = &mut (*d).__bindgen_anon_1.__bindgen_anon_1;
            let flags = fast.priv_flags();
            fast.set_priv_flags((flags & !clear) | set);
        })
    }

    /// Sets `lltx`: the driver's transmit takes no TX queue lock of the core.
    pub(crate) fn set_lltx(&self, on: bool) {
        setup!(self, |d| {
            let fast = &mut (*d).__bindgen_anon_1.__bindgen_anon_1;
            fast.set_lltx(on.into());
        })
    }

    /// Turns on `features` and offers `hw_features` to the user.
    pub(crate) fn add_features(&self, features: u64, hw_features: u64) {
        setup!(self, |d| {
            (*d).features |= features;
            (*d).hw_features |= hw_features;
        })
    }

    /// Has the core free the device when it is unregistered (`needs_free_netdev`).
    pub(crate) fn set_needs_free(&self) {
        setup!(self, |d| (*d).needs_free_netdev = true)
    }

    pub(crate) fn set_max_mtu(&self, mtu: u32) {
        setup!(self, |d| (*d).max_mtu = mtu)
    }

    /// Gives the device a random MAC address.
    pub(crate) fn random_addr(&self) {
        setup!(self, |d| bindings::eth_hw_addr_random(d))
    }

    /// Asks for interface index `ifindex` at registration (0: any).
    pub(crate) fn set_ifindex(&self, ifindex: c_int) {
        setup!(self, |d| (*d).ifindex = ifindex)
    }

    /// Sets the committed header/data split configuration (allocated with the device).
    pub(crate) fn set_hds_config(&self, split: u8, thresh: u32) {
        setup!(self, |d| {
            (*(*d).cfg).hds_config = split;
            (*(*d).cfg).hds_thresh = thresh;
        })
    }

    /// Sets the parent device (`SET_NETDEV_DEV`).
    ///
    /// # Safety
    ///
    /// `parent` is a valid `struct device` that stays valid until the net device is
    /// registered (registration takes a reference on it) or freed.
    pub(crate) unsafe fn set_parent(&self, parent: *mut bindings::device) {
        setup!(self, |d| (*d).dev.parent = parent)
    }

    /// Installs the device's ops tables.
    ///
    /// # Safety
    ///
    /// The tables stay valid as long as the device may use them, and their callbacks accept
    /// this device (its private area is what they take it for).
    pub(crate) unsafe fn set_ops(
        &self,
        netdev: *const bindings::net_device_ops,
        ethtool: *const bindings::ethtool_ops,
        stat: *const bindings::netdev_stat_ops,
        queue_mgmt: *const bindings::netdev_queue_mgmt_ops,
    ) {
        setup!(self, |d| {
            (*d).netdev_ops = netdev;
            (*d).ethtool_ops = ethtool;
            (*d).stat_ops = stat;
            (*d).queue_mgmt_ops = queue_mgmt;
        })
    }
}

/// A `net_device` an rtnetlink operation registers: the one the core allocated for it, or
/// one the driver allocated (a peer). Dropping it frees the device if the driver allocated
/// it (`free_netdev`); the core frees its own.
///
/// # Invariants
///
/// `dev` is allocated and not registered, and only this value sets it up; rtnl is held for
/// `'a`. If `owned`, the driver allocated the device and frees it.
pub(crate) struct Unregistered<'a> {
    dev: NonNull<bindings::net_device>,
    owned: bool,
    rtnl: Rtnl<'a>,
}

impl<'a> Unregistered<'a> {
    /// The device the core allocated for an rtnetlink operation (it frees it if the operation
    /// fails).
    ///
    /// # Safety
    ///
    /// `ptr` is allocated and not registered, and only the result sets it up; the core frees
    /// it after `'a` if it is not registered then. `rtnl` is held by the caller.
    pub(crate) unsafe fn from_core(ptr: *mut bindings::net_device, rtnl: Rtnl<'a>) -> Self {
        Unregistered {
            // SAFETY: the caller's promise: an allocated device.
            dev: unsafe { NonNull::new_unchecked(ptr) },
            owned: false,
            rtnl,
        }
    }

    /// A device the driver allocated, which the result frees unless it registers it.
    ///
    /// # Safety
    ///
    /// `ptr` is allocated (by `alloc_netdev` or `rtnl_create_link`) and not registered, and
    /// is the caller's to free, which passes that on to the result.
    pub(crate) unsafe fn from_new(ptr: NonNull<bindings::net_device>, rtnl: Rtnl<'a>) -> Self {
        Unregistered {
            dev: ptr,
            owned: true,
            rtnl,
        }
    }

    /// Registers the device (`register_netdevice`). On failure the device comes back, to be
    /// cleaned up before it is dropped.
    pub(crate) fn register(self) -> Result<NewlyRegistered<'a>, (Self, Error)> {
        // SAFETY: the device is allocated and set up, not registered, and rtnl is held
        // (type invariants).
        let err = unsafe { bindings::register_netdevice(self.dev.as_ptr()) };
        if err < 0 {
            return Err((self, Error::from_errno(err)));
        }
        // INVARIANT: the device is registered, and nothing else has it as registered yet.
        let dev = NewlyRegistered {
            // SAFETY: registered, so allocated while rtnl is held, for `'a`.
            dev: unsafe { NetDev::from_raw(self.dev.as_ptr()) },
            rtnl: self.rtnl,
        };
        // The core owns the registered device, and frees it after unregistering it.
        core::mem::forget(self);
        Ok(dev)
    }
}

impl Deref for Unregistered<'_> {
    type Target = NetDevSetup;

    fn deref(&self) -> &NetDevSetup {
        // SAFETY: allocated, not registered and set up only through this value (type
        // invariants).
        unsafe { NetDevSetup::from_raw(self.dev.as_ptr()) }
    }
}

impl Drop for Unregistered<'_> {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: the driver allocated the device, which was never registered, and this
            // is the last use (type invariants).
            unsafe { bindings::free_netdev(self.dev.as_ptr()) };
        }
    }
}

/// A registered `struct net_device`, in an rtnetlink operation.
///
/// # Invariants
///
/// The device was registered when the reference was made, and rtnl is held for as long as
/// the reference lives. So the device stays allocated: the core frees an unregistered device
/// only once rtnl has been released.
#[repr(transparent)]
pub(crate) struct Registered(NetDev);

/// Lets transparent wrappers of [`NetDev`] be used as one.
macro_rules! deref_netdev {
    ($($t:ty),*) => {$(
        impl Deref for $t {
            type Target = NetDev;

            fn deref(&self) -> &NetDev {
                &self.0
            }
        }
    )*};
}

deref_netdev!(NetDevSetup, Registered);

impl Registered {
    /// # Safety
    ///
    /// `ptr` is a registered device.
    pub(crate) unsafe fn from_raw<'a>(
        ptr: *mut bindings::net_device,
        _rtnl: Rtnl<'a>,
    ) -> &'a Registered {
        // SAFETY: `Registered` is a transparent wrapper of `NetDev`; the device is
        // registered (the caller's promise) and `_rtnl` proves rtnl is held for `'a`.
        unsafe { &*ptr.cast() }
    }
}

/// A device that the rtnetlink operation in progress registered. Dropping it unregisters it
/// at once (`unregister_netdevice_queue` without a list), which undoes the registration if
/// the operation fails, unless [`NewlyRegistered::keep`] kept it.
///
/// # Invariants
///
/// `dev` is registered, nothing else has it as [`Registered`] (so nothing paired with it or
/// queued it for unregistration), and rtnl is held for `'a`.
pub(crate) struct NewlyRegistered<'a> {
    dev: &'a NetDev,
    rtnl: Rtnl<'a>,
}

impl<'a> NewlyRegistered<'a> {
    /// Applies the `ifinfomsg` of the request that created the device
    /// (`rtnl_configure_link`).
    pub(crate) fn configure(&self, ifm: Option<&bindings::ifinfomsg>) -> Result {
        // SAFETY: the device is registered and rtnl held (type invariant); `ifm` is null or
        // valid.
        kernel::error::to_result(unsafe {
            bindings::rtnl_configure_link(
                self.dev.as_raw(),
                ifm.map_or(core::ptr::null(), core::ptr::from_ref),
                0,
                core::ptr::null(),
            )
        })
    }

    /// Keeps the device registered.
    pub(crate) fn keep(self) -> &'a Registered {
        let (dev, rtnl) = (self.dev, self.rtnl);
        core::mem::forget(self);
        // SAFETY: `dev` is registered, and rtnl held for `'a` (type invariant).
        unsafe { Registered::from_raw(dev.as_raw(), rtnl) }
    }
}

impl Deref for NewlyRegistered<'_> {
    type Target = NetDev;

    fn deref(&self) -> &NetDev {
        self.dev
    }
}

impl Drop for NewlyRegistered<'_> {
    fn drop(&mut self) {
        // SAFETY: the device is registered and neither paired nor queued for unregistration,
        // and rtnl is held (type invariant); it is no longer used as registered.
        unsafe { bindings::unregister_netdevice_queue(self.dev.as_raw(), core::ptr::null_mut()) };
    }
}

/// The devices an rtnetlink operation unregisters together (`unregister_netdevice_many`).
///
/// # Invariants
///
/// `head` is null (unregister each device at once) or a list the core unregisters under
/// the rtnl it holds for `'a`, valid for `'a`.
pub(crate) struct UnregisterList<'a> {
    head: *mut bindings::list_head,
    rtnl: Rtnl<'a>,
}

impl<'a> UnregisterList<'a> {
    /// # Safety
    ///
    /// `head` is null or a list the core unregisters under `rtnl`, valid for `'a`.
    pub(crate) unsafe fn from_raw(head: *mut bindings::list_head, rtnl: Rtnl<'a>) -> Self {
        UnregisterList { head, rtnl }
    }

    /// Proof that rtnl is held (type invariant).
    pub(crate) fn rtnl(&self) -> Rtnl<'a> {
        self.rtnl
    }

    /// Queues `dev` for unregistration (`unregister_netdevice_queue`).
    pub(crate) fn queue(&self, dev: &Registered) {
        // SAFETY: `dev` is allocated until the core unregistered it, after this rtnl section
        // (invariant of `Registered`); the list is valid and rtnl held (type invariant).
        unsafe { bindings::unregister_netdevice_queue(dev.as_raw(), self.head) };
    }
}

/// The `net_device` whose private area owns (through the driver's state) the value that
/// holds this.
///
/// # Invariants
///
/// The device stays allocated for as long as this value lives.
pub(crate) struct OwnerDev(NonNull<bindings::net_device>);

// SAFETY: the device is only reached through `&NetDev`, whose methods call C functions that
// synchronize themselves or read fields as C does, racily (see `field!`).
unsafe impl Send for OwnerDev {}
// SAFETY: see above.
unsafe impl Sync for OwnerDev {}

impl OwnerDev {
    /// # Safety
    ///
    /// The result is dropped before `dev` is freed: the caller stores it where `dev`'s private
    /// area owns it.
    pub(crate) unsafe fn new(dev: &NetDev) -> Self {
        OwnerDev(NonNull::from(dev).cast())
    }

    pub(crate) fn get(&self) -> &NetDev {
        // SAFETY: the device is allocated while we live (type invariant).
        unsafe { NetDev::from_raw(self.0.as_ptr()) }
    }
}

/// A value that readers see under RCU and writers replace whole, freeing the old one after a
/// grace period (`synchronize_net`).
///
/// # Invariants
///
/// `ptr` is never null: it comes from `KBox::into_raw` and is owned by this value. A value it
/// no longer points to is freed only after an RCU grace period that started once it was
/// replaced.
pub(crate) struct RcuBox<T> {
    ptr: AtomicPtr<T>,
    _owns: PhantomData<KBox<T>>,
}

impl<T> RcuBox<T> {
    pub(crate) fn new(value: KBox<T>) -> Self {
        RcuBox {
            ptr: AtomicPtr::new(KBox::into_raw(value)),
            _owns: PhantomData,
        }
    }

    /// Runs `f` on the current value, in an RCU read-side critical section.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let _guard = rcu::read_lock();
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: `p` is not null and is freed only after a grace period that starts after it
        // was replaced (type invariant); we are in a read-side critical section.
        f(unsafe { &*p })
    }

    /// Replaces the value with `new` and frees the old one once no reader can see it. Sleeps.
    pub(crate) fn replace(&self, new: KBox<T>)
    where
        T: Send,
    {
        let old = self.ptr.swap(KBox::into_raw(new), Ordering::AcqRel);
        synchronize_net();
        // SAFETY: `old` came from `KBox::into_raw` and this swap took it out, so nothing else
        // frees it; after the grace period no reader can still see it.
        drop(unsafe { KBox::from_raw(old) });
    }
}

impl<T> Drop for RcuBox<T> {
    fn drop(&mut self) {
        // SAFETY: from `KBox::into_raw` and owned by us (type invariant); `&mut self` means
        // nobody reads it any more.
        drop(unsafe { KBox::from_raw(*self.ptr.get_mut()) });
    }
}
