// SPDX-License-Identifier: GPL-2.0

//! The C side of a netgpu-sim port: the `net_device_ops` and `rtnl_link_ops` tables and
//! their callbacks, which turn the core's raw pointers into the wrappers of
//! [`crate::netdev`] once and call the safe functions of [`crate::port`]. Also what those
//! functions need of C that is the port's own: the device's private area ([`Port`]), the
//! attributes of a request to create a pair ([`NewLink`]), and the faux device a pair maps
//! memory for ([`FauxDma`]).
//!
//! This is the only unsafe code of the port.

use core::ffi::c_int;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};

use kernel::bindings;
use kernel::device::{self, Bound};
use kernel::faux;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::Opaque;

use crate::ethtool_ops;
use crate::netdev::{
    NetDev, NetDevSetup, OwnerDev, Registered, Rtnl, Skb, UnregisterList, Unregistered,
};
use crate::port::{self, Pair, PortState, INFO_DMA_DEV, INFO_PEER, KIND};
use crate::queue_ops;

/// A `Sync` box for C ops tables that hold function pointers, so they can be `static`
/// (and so live in `.rodata`).
#[repr(transparent)]
pub(crate) struct Ops<T>(pub(crate) T);
// SAFETY: the tables are immutable and only hold function pointers and constants.
unsafe impl<T> Sync for Ops<T> {}

fn errno(r: Result) -> c_int {
    r.map_or_else(|e| e.to_errno(), |()| 0)
}

// ---- the private area ----

/// The private area of a netgpu-sim `net_device` (`rtnl_link_ops.priv_size`), zeroed by
/// `alloc_netdev`.
///
/// netgpu-sim only handles its own devices (those the core passes its callbacks, and their
/// peers), so every [`NetDev`] it has has a `Port` for its private area.
///
/// # Invariants
///
/// `state` is null or from `KBox::into_raw`, owned by this port from `ndo_init` to
/// `ndo_uninit`; `pending` likewise from [`prepare`] until `ndo_init` takes it. `peer` is
/// null or a netgpu-sim device held through `peer_tracker`, and registered while it is
/// paired: the driver unregisters a paired device only in `dellink`, which unpairs both ends
/// before the core unregisters them. `peer` and `peer_tracker` change under rtnl only.
#[repr(C)]
pub(crate) struct Port {
    state: AtomicPtr<PortState>,
    pending: AtomicPtr<PortState>,
    peer: AtomicPtr<bindings::net_device>,
    peer_tracker: Opaque<bindings::netdevice_tracker>,
}

/// The port of a netgpu-sim device.
pub(crate) fn port(dev: &NetDev) -> &Port {
    // SAFETY: every device netgpu-sim handles was allocated with the link ops of
    // `link_ops_value`, so with `priv_size` of a `Port`, zero-initialized, which is a valid
    // `Port`; it lives as long as the device.
    unsafe { &*bindings::netdev_priv(dev.as_raw()).cast::<Port>() }
}

impl Port {
    /// The device's state, if it is registered.
    pub(crate) fn state(&self) -> Option<&PortState> {
        let s = self.state.load(Ordering::Acquire);
        // SAFETY: by the type invariant `s` is null or valid until `ndo_uninit`, which runs
        // after the device stopped and an RCU grace period passed.
        unsafe { s.as_ref() }
    }

    /// The peer device, if paired. Must be called in an RCU read-side critical section (or
    /// under rtnl); the result is valid for its duration.
    pub(crate) fn peer(&self) -> Option<&NetDev> {
        let peer = self.peer.load(Ordering::Acquire);
        if peer.is_null() {
            return None;
        }
        // SAFETY: a paired device is held through `peer_tracker` (type invariant). `dellink`
        // drops that reference under rtnl once it unpaired the ports, and unregistering the
        // devices waits for an RCU grace period before they can be freed, so the caller's RCU
        // section or rtnl keeps `peer` allocated.
        Some(unsafe { NetDev::from_raw(peer) })
    }

    /// Pairs this port with `peer`, holding a reference on it.
    pub(crate) fn set_peer(&self, peer: &Registered) {
        self.peer.store(peer.as_raw(), Ordering::Release);
        // SAFETY: `peer` is allocated; rtnl, which `Registered` proves held, serializes the
        // users of `peer_tracker`.
        unsafe {
            bindings::netdev_hold(peer.as_raw(), self.peer_tracker.get(), bindings::GFP_KERNEL)
        };
    }

    /// Unpairs this port, handing over its reference on the former peer.
    pub(crate) fn unpair<'a>(&'a self, rtnl: Rtnl<'a>) -> Option<PeerRef<'a>> {
        let peer = self.peer.swap(ptr::null_mut(), Ordering::AcqRel);
        if peer.is_null() {
            return None;
        }
        // INVARIANT: the swap took the reference held through `peer_tracker` out of the port.
        Some(PeerRef {
            // SAFETY: `peer` was paired, so it is registered (type invariant); rtnl is held
            // for `'a`.
            peer: unsafe { Registered::from_raw(peer, rtnl) },
            tracker: &self.peer_tracker,
        })
    }

    /// Takes over the state [`prepare`] left, when the device registers (`ndo_init`). False
    /// if there is none.
    fn activate(&self) -> bool {
        let s = self.pending.swap(ptr::null_mut(), Ordering::AcqRel);
        if s.is_null() {
            return false;
        }
        self.state.store(s, Ordering::Release);
        true
    }

    /// Frees the state [`prepare`] left if `ndo_init` did not take it (registration failed
    /// early).
    pub(crate) fn drop_pending(&self) {
        let s = self.pending.swap(ptr::null_mut(), Ordering::AcqRel);
        if !s.is_null() {
            // SAFETY: from `KBox::into_raw` in `prepare` (type invariant); the swap took it
            // out of the port, and no reference to a pending state is ever given out.
            drop(unsafe { KBox::from_raw(s) });
        }
    }
}

/// A port's reference (`netdev_hold`) on its former peer, dropped with this value.
///
/// # Invariants
///
/// The reference was taken through `tracker`, and this value owns it.
pub(crate) struct PeerRef<'a> {
    peer: &'a Registered,
    tracker: &'a Opaque<bindings::netdevice_tracker>,
}

impl<'a> PeerRef<'a> {
    pub(crate) fn dev(&self) -> &'a Registered {
        self.peer
    }
}

impl Drop for PeerRef<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the reference taken through `tracker` (type invariant); rtnl, which
        // `Registered` proves held, serializes the users of the tracker.
        unsafe { bindings::netdev_put(self.peer.as_raw(), self.tracker.get()) };
    }
}

/// Gives `dev` a fresh state tied to `pair`, to be taken over by `ndo_init`, and makes the
/// pair's device its parent.
pub(crate) fn prepare(dev: &NetDevSetup, pair: &Arc<Pair>) -> Result {
    // SAFETY: the state goes into `dev`'s private area right below, which owns it until
    // `ndo_uninit` or `Port::drop_pending` frees it, before the device is freed.
    let owner = unsafe { OwnerDev::new(dev) };
    let s = PortState::new(owner, pair.clone())?;
    port(dev)
        .pending
        .store(KBox::into_raw(s), Ordering::Release);
    // SAFETY: `dev` is not registered (`NetDevSetup`). The pair's device lives as long as the
    // pair, which the pending state (then the state) holds until `dev` is freed or
    // unregistered; registration takes a reference of its own on the parent.
    unsafe { dev.set_parent(pair.device()) };
    Ok(())
}

// ---- the pair's DMA device ----

/// A faux device with a 64-bit DMA mask: it maps memory as dma-direct does for a PCI NIC
/// without IOMMU. Dropping it destroys the device.
pub(crate) struct FauxDma(faux::Registration);

impl FauxDma {
    pub(crate) fn new(name: &CStr) -> Result<Self> {
        let faux = FauxDma(faux::Registration::new(name, None).map_err(|_| ENOMEM)?);
        let dev = faux.device();
        // SAFETY: `dev` is the registered faux device, which nothing maps memory for yet.
        // Like a platform device, it gets its DMA mask storage pointed at its coherent mask
        // before the mask is set.
        let err = unsafe {
            (*dev).dma_mask = &raw mut (*dev).coherent_dma_mask;
            bindings::dma_set_mask_and_coherent(dev, u64::MAX)
        };
        kernel::error::to_result(err)?;
        Ok(faux)
    }

    /// The `struct device`, for the C API.
    pub(crate) fn device(&self) -> *mut bindings::device {
        let dev: &device::Device<Bound> = self.0.as_ref().as_ref();
        // `device::Device` is a transparent wrapper of `struct device`.
        ptr::from_ref(dev).cast_mut().cast()
    }
}

// ---- netlink attributes ----

/// A netlink attribute of the request a callback handles.
///
/// # Invariants
///
/// The attribute, header and payload, is valid for as long as the reference lives.
#[repr(transparent)]
pub(crate) struct NlAttr(Opaque<bindings::nlattr>);

impl NlAttr {
    /// Copies the attribute's string into `dst`, truncated to fit and NUL-terminated
    /// (`nla_strscpy`).
    pub(crate) fn strscpy(&self, dst: &mut [u8]) {
        // SAFETY: a valid attribute (type invariant); `dst` has `dst.len()` bytes.
        unsafe { bindings::nla_strscpy(dst.as_mut_ptr().cast(), self.0.get(), dst.len()) };
    }
}

/// The `IFLA_*` attributes of a link by type, as netlink's parsers fill them.
pub(crate) type IfAttrs<'a> = [Option<&'a NlAttr>; bindings::__IFLA_MAX as usize];

/// Entries of our `IFLA_INFO_DATA`: maxtype + 1.
const INFO_ATTRS: usize = INFO_DMA_DEV as usize + 1;

/// Attribute `kind` of `tb`, if present.
pub(crate) fn attr<'a>(tb: &[Option<&'a NlAttr>], kind: u32) -> Option<&'a NlAttr> {
    tb.get(kind as usize).copied().flatten()
}

/// The peer's part of a request to create a pair (`INFO_PEER`).
pub(crate) struct PeerReq<'a> {
    pub(crate) ifm: &'a bindings::ifinfomsg,
    pub(crate) tb: IfAttrs<'a>,
}

/// A request to create a pair, as rtnetlink passes `newlink`.
///
/// # Invariants
///
/// For `'a`, during which rtnl is held: the attribute tables and the attributes they point
/// to are valid, `data`'s checked against [`POLICY`]; `peer_net` is valid; `extack` is null
/// or valid.
pub(crate) struct NewLink<'a> {
    tb: &'a IfAttrs<'a>,
    data: Option<&'a [Option<&'a NlAttr>; INFO_ATTRS]>,
    peer_net: *mut bindings::net,
    extack: *mut bindings::netlink_ext_ack,
    rtnl: Rtnl<'a>,
}

impl<'a> NewLink<'a> {
    /// # Safety
    ///
    /// `params` and `extack` are what rtnetlink passes `newlink`, valid for `'a`, and rtnl is
    /// held.
    unsafe fn from_raw(
        params: *mut bindings::rtnl_newlink_params,
        extack: *mut bindings::netlink_ext_ack,
        rtnl: Rtnl<'a>,
    ) -> Self {
        // SAFETY: rtnetlink passes valid params; `tb` has IFLA_MAX + 1 entries and `data` (if
        // not null) our maxtype + 1, checked against our policy. A table of null or valid
        // attribute pointers is one of `Option<&NlAttr>`, which has the same layout.
        unsafe {
            let p = &*params;
            let peer_net = if !p.peer_net.is_null() {
                p.peer_net
            } else if !p.link_net.is_null() {
                p.link_net
            } else {
                p.src_net
            };
            NewLink {
                tb: &*p.tb.cast(),
                data: p.data.cast::<[Option<&NlAttr>; INFO_ATTRS]>().as_ref(),
                peer_net,
                extack,
                rtnl,
            }
        }
    }

    /// The `IFLA_*` attributes of the device.
    pub(crate) fn tb(&self) -> &'a IfAttrs<'a> {
        self.tb
    }

    /// Our attribute `kind` of `IFLA_INFO_DATA`, if present.
    pub(crate) fn info(&self, kind: u16) -> Option<&'a NlAttr> {
        self.data.and_then(|d| attr(d, kind.into()))
    }

    /// The peer's `ifinfomsg` and attributes, if the request has them.
    pub(crate) fn peer(&self) -> Result<Option<PeerReq<'a>>> {
        let Some(a) = self.info(INFO_PEER) else {
            return Ok(None);
        };
        let mut tb: IfAttrs<'a> = [None; bindings::__IFLA_MAX as usize];
        // SAFETY: the policy made the attribute hold at least an `ifinfomsg`, 4-byte aligned
        // as netlink payloads are and valid for `'a` as the attribute is. The parser fills
        // `tb`, of IFLA_MAX + 1 entries, with null or attributes inside that payload;
        // `extack` is null or valid.
        let ifm = unsafe {
            let ifm = &*bindings::nla_data(a.0.get()).cast::<bindings::ifinfomsg>();
            kernel::error::to_result(bindings::rtnl_nla_parse_ifinfomsg(
                tb.as_mut_ptr().cast(),
                a.0.get(),
                self.extack,
            ))?;
            ifm
        };
        Ok(Some(PeerReq { ifm, tb }))
    }

    /// Reports `msg` with the error the request fails with.
    pub(crate) fn set_err_msg(&self, msg: &'static CStr) {
        if !self.extack.is_null() {
            // SAFETY: `extack` is valid (type invariant); the message is a static string.
            unsafe { (*self.extack)._msg = msg.as_char_ptr() };
        }
    }

    /// Allocates the peer device, named `name`, from the attributes `tb`
    /// (`rtnl_create_link`).
    pub(crate) fn create_peer(
        &self,
        name: &CStr,
        assign: u8,
        tb: &IfAttrs<'a>,
    ) -> Result<Unregistered<'a>> {
        // SAFETY: `peer_net` and `extack` are valid (type invariant); `name` is a C string,
        // which the callee copies; our link ops are registered while the core calls them;
        // `tb` has IFLA_MAX + 1 entries, null or valid, which the callee only reads.
        let dev = unsafe {
            bindings::rtnl_create_link(
                self.peer_net,
                name.as_char_ptr(),
                assign,
                crate::link_ops(),
                tb.as_ptr().cast_mut().cast(),
                self.extack,
            )
        };
        let dev = NonNull::new(kernel::error::from_err_ptr(dev)?).ok_or(ENOMEM)?;
        // SAFETY: allocated for us and not registered; rtnl is held for `'a`.
        Ok(unsafe { Unregistered::from_new(dev, self.rtnl) })
    }
}

// ---- netdev ops ----

/// # Safety
///
/// Called by the core as `ndo_init`, with its device.
unsafe extern "C" fn ndo_init(dev: *mut bindings::net_device) -> c_int {
    // SAFETY: the core passes its device.
    let dev = unsafe { NetDev::from_raw(dev) };
    if !port(dev).activate() {
        return EINVAL.to_errno();
    }
    // SAFETY: we are its `ndo_init`. Giving its instance lock a class of its own allows taking
    // the locks of both ends (batched unregistration does).
    unsafe { dev.set_lockdep_classes() };
    0
}

/// # Safety
///
/// Called by the core as `ndo_uninit`, with its device, stopped and unregistered.
unsafe extern "C" fn ndo_uninit(dev: *mut bindings::net_device) {
    // SAFETY: the core passes its device.
    let port = port(unsafe { NetDev::from_raw(dev) });
    let s = port.state.swap(ptr::null_mut(), Ordering::AcqRel);
    if !s.is_null() {
        // SAFETY: from `KBox::into_raw` (`Port` invariant); the device is stopped and
        // unregistered, nothing else uses the state.
        drop(unsafe { KBox::from_raw(s) });
    }
}

/// # Safety
///
/// Called by the core as `ndo_open`, with its device.
unsafe extern "C" fn ndo_open(dev: *mut bindings::net_device) -> c_int {
    // SAFETY: the core passes its device.
    errno(port::open(unsafe { NetDev::from_raw(dev) }))
}

/// # Safety
///
/// Called by the core as `ndo_stop`, with its device.
unsafe extern "C" fn ndo_stop(dev: *mut bindings::net_device) -> c_int {
    // SAFETY: the core passes its device.
    port::stop(unsafe { NetDev::from_raw(dev) });
    0
}

/// # Safety
///
/// Called by the core as `ndo_start_xmit`, with an skb to own and its device, under
/// `rcu_read_lock_bh`.
unsafe extern "C" fn ndo_start_xmit(
    skb: *mut bindings::sk_buff,
    dev: *mut bindings::net_device,
) -> bindings::netdev_tx_t {
    // SAFETY: the core hands us a valid skb to own, and its device.
    let (skb, dev) = unsafe { (Skb::from_raw(skb), NetDev::from_raw(dev)) };
    if let Some(skb) = skb {
        port::xmit(skb, dev);
    }
    bindings::netdev_tx_NETDEV_TX_OK
}

/// # Safety
///
/// Called by the core as `ndo_features_check`, with an skb it is about to transmit and its
/// device.
unsafe extern "C" fn ndo_features_check(
    skb: *mut bindings::sk_buff,
    dev: *mut bindings::net_device,
    features: bindings::netdev_features_t,
) -> bindings::netdev_features_t {
    // SAFETY: the core passes its device.
    let dev = unsafe { NetDev::from_raw(dev) };
    // SAFETY: the core passes a valid skb for the call.
    let Some(skb) = (unsafe { Skb::borrow(skb) }) else {
        return features;
    };
    port::features_check(&skb, dev, features)
}

/// # Safety
///
/// Called by the core as `ndo_get_stats64`, with its device and a valid, zeroed `stats`.
unsafe extern "C" fn ndo_get_stats64(
    dev: *mut bindings::net_device,
    stats: *mut bindings::rtnl_link_stats64,
) {
    // SAFETY: the core passes its device and a valid struct.
    let (dev, stats) = unsafe { (NetDev::from_raw(dev), &mut *stats) };
    port::get_stats64(dev, stats)
}

/// # Safety
///
/// Called by the core as `ndo_get_iflink`, with its device.
unsafe extern "C" fn ndo_get_iflink(dev: *const bindings::net_device) -> c_int {
    // SAFETY: the core passes its device.
    port::iflink(unsafe { NetDev::from_raw(dev.cast_mut()) })
}

/// # Safety
///
/// Called by the core as `ndo_set_features`, with its device.
unsafe extern "C" fn ndo_set_features(dev: *mut bindings::net_device, features: u64) -> c_int {
    // SAFETY: the core passes its device.
    let dev = unsafe { NetDev::from_raw(dev) };
    errno(port::set_features(dev, features))
}

static NETDEV_OPS: Ops<bindings::net_device_ops> = Ops(bindings::net_device_ops {
    ndo_init: Some(ndo_init),
    ndo_uninit: Some(ndo_uninit),
    ndo_open: Some(ndo_open),
    ndo_stop: Some(ndo_stop),
    ndo_start_xmit: Some(ndo_start_xmit),
    ndo_features_check: Some(ndo_features_check),
    ndo_get_stats64: Some(ndo_get_stats64),
    ndo_get_iflink: Some(ndo_get_iflink),
    ndo_set_features: Some(ndo_set_features),
    ndo_set_mac_address: Some(bindings::eth_mac_addr),
    ndo_validate_addr: Some(bindings::eth_validate_addr),
    // All-zero for the remaining fields: no other callbacks.
    ..pin_init::zeroed()
});

// ---- link ops ----

/// # Safety
///
/// Called by `alloc_netdev_mqs` as `setup`, with the device it allocates for our link ops.
unsafe extern "C" fn setup(dev: *mut bindings::net_device) {
    // SAFETY: `dev` is being allocated, not registered, and only its setup writes it.
    let dev = unsafe { NetDevSetup::from_raw(dev) };
    port::setup(dev);
    // SAFETY: the tables are static. Their callbacks take the device's private area for a
    // `Port`, which the link ops' `priv_size` makes it.
    unsafe {
        dev.set_ops(
            &NETDEV_OPS.0,
            ethtool_ops::ops(),
            ethtool_ops::stat_ops(),
            queue_ops::queue_mgmt_ops(),
        )
    };
}

extern "C" fn get_num_queues() -> u32 {
    port::DEFAULT_QUEUES
}

/// # Safety
///
/// Called by rtnetlink as `get_link_net`, under rtnl, with a device of ours.
unsafe extern "C" fn get_link_net(dev: *const bindings::net_device) -> *mut bindings::net {
    // SAFETY: the core passes its device.
    port::link_net(unsafe { NetDev::from_raw(dev.cast_mut()) })
}

/// # Safety
///
/// Called by rtnetlink as `newlink`, under rtnl, with the device it allocated for the
/// request (not registered; it frees it if we fail), valid `params` and a null or valid
/// `extack`.
unsafe extern "C" fn newlink(
    dev: *mut bindings::net_device,
    params: *mut bindings::rtnl_newlink_params,
    extack: *mut bindings::netlink_ext_ack,
) -> c_int {
    // SAFETY: rtnl is held for the call; the rest is what the core passes.
    let (dev, req) = unsafe {
        let rtnl = Rtnl::assume();
        (
            Unregistered::from_core(dev, rtnl),
            NewLink::from_raw(params, extack, rtnl),
        )
    };
    errno(port::newlink(dev, &req))
}

/// # Safety
///
/// Called by rtnetlink as `dellink`, under rtnl, with a registered device of ours and null or
/// the list of devices it unregisters.
unsafe extern "C" fn dellink(dev: *mut bindings::net_device, head: *mut bindings::list_head) {
    // SAFETY: rtnl is held for the call; the rest is what the core passes.
    let (dev, kill) = unsafe {
        let rtnl = Rtnl::assume();
        (
            Registered::from_raw(dev, rtnl),
            UnregisterList::from_raw(head, rtnl),
        )
    };
    port::dellink(dev, &kill)
}

/// Builds the link ops (mutable: the core links them into its list).
pub(crate) fn link_ops_value() -> bindings::rtnl_link_ops {
    // All-zero for the fields not set below: no other callbacks.
    let mut ops: bindings::rtnl_link_ops = pin_init::zeroed();
    ops.kind = KIND.as_char_ptr();
    ops.priv_size = core::mem::size_of::<Port>();
    ops.setup = Some(setup);
    ops.newlink = Some(newlink);
    ops.dellink = Some(dellink);
    ops.policy = POLICY.0.as_ptr();
    ops.maxtype = INFO_DMA_DEV.into();
    ops.peer_type = INFO_PEER;
    ops.get_link_net = Some(get_link_net);
    ops.get_num_tx_queues = Some(get_num_queues);
    ops.get_num_rx_queues = Some(get_num_queues);
    ops
}

const fn policy() -> [bindings::nla_policy; INFO_ATTRS] {
    // All-zero is NLA_UNSPEC without a length.
    let mut p: [bindings::nla_policy; INFO_ATTRS] = pin_init::zeroed();
    p[INFO_PEER as usize].len = core::mem::size_of::<bindings::ifinfomsg>() as u16;
    p[INFO_DMA_DEV as usize].type_ = bindings::NLA_NUL_STRING as u8;
    p[INFO_DMA_DEV as usize].len = 31;
    p
}

static POLICY: Ops<[bindings::nla_policy; INFO_ATTRS]> = Ops(policy());
