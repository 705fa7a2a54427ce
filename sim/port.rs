// SPDX-License-Identifier: GPL-2.0

//! One end of a netgpu-sim pair: the `net_device`, its link ops (creation and deletion of
//! pairs through rtnetlink) and its netdev ops (open, stop, transmit, stats).
//!
//! # Locking
//!
//! Control paths run under rtnl and the netdev instance lock (the device is ops-locked
//! because it has `queue_mgmt_ops`): creation, deletion, open, stop, queue restarts and
//! ethtool. They are the only writers of the queue set, the page pools and the steering
//! snapshot. The datapath (peer transmit, NAPI poll) takes no lock of ours: it reads the
//! peer pointer and the steering snapshot under RCU, and a queue's page pools only while
//! that queue's NAPI is enabled (restarts disable it first).

use core::ffi::c_int;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};

use kernel::bindings;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::{aref::ARef, rcu, Arc};
use kernel::types::Opaque;

use crate::ethtool;
use crate::ethtool_ops;
use crate::flow::{self, Steering, PARSE_LEN};
use crate::netdev::{self, NetDev, Skb};
use crate::pci::P2pWindows;
use crate::queue_ops;
use crate::rxq::{RxQueue, WireInfo};

/// `rtnl_link_ops` kind.
pub(crate) const KIND: &CStr = c"netgpu-sim";
/// Name template of a peer created without a name.
const PEER_TEMPLATE: &CStr = c"ngsp%d";
/// Attribute in `IFLA_INFO_DATA` carrying the peer's `ifinfomsg` and attributes (the same
/// number and layout as `VETH_INFO_PEER`).
pub(crate) const INFO_PEER: u16 = 1;
/// Attribute in `IFLA_INFO_DATA` naming the PCI function (bound to netgpu_sim) the pair
/// sits on, e.g. "0000:03:00.0"; without it the pair gets a faux device.
pub(crate) const INFO_DMA_DEV: u16 = 2;
/// Queues of a device created without `numrxqueues`/`numtxqueues`.
const DEFAULT_QUEUES: u32 = 4;
/// Largest MTU: jumbo frames.
pub(crate) const MAX_MTU: u32 = 9000;
/// Default and largest RX/TX ring sizes.
pub(crate) const DEFAULT_RING: u32 = 1024;
pub(crate) const MAX_RING: u32 = 16384;
pub(crate) const MIN_RING: u32 = 64;

const NETIF_F_SG: u64 = 1 << bindings::NETIF_F_SG_BIT;
const NETIF_F_HW_CSUM: u64 = 1 << bindings::NETIF_F_HW_CSUM_BIT;
const NETIF_F_HIGHDMA: u64 = 1 << bindings::NETIF_F_HIGHDMA_BIT;
const NETIF_F_RXCSUM: u64 = 1 << bindings::NETIF_F_RXCSUM_BIT;
const NETIF_F_GRO: u64 = 1 << bindings::NETIF_F_GRO_BIT;
const NETIF_F_GRO_HW: u64 = 1 << bindings::NETIF_F_GRO_HW_BIT;
pub(crate) const NETIF_F_NTUPLE: u64 = 1 << bindings::NETIF_F_NTUPLE_BIT;
const NETIF_F_RXHASH: u64 = 1 << bindings::NETIF_F_RXHASH_BIT;

/// A `Sync` box for C ops tables that hold function pointers, so they can be `static`
/// (and so live in `.rodata`).
#[repr(transparent)]
pub(crate) struct Ops<T>(pub(crate) T);
// SAFETY: the tables are immutable and only hold function pointers and constants.
unsafe impl<T> Sync for Ops<T> {}

/// The parent `struct device` of a pair, which maps memory for it: a faux device with a
/// 64-bit DMA mask (dma-direct, as for a PCI NIC without IOMMU), or a PCI function bound
/// to netgpu_sim (see [`crate::pci`]).
pub(crate) struct Pair {
    dev: DmaDev,
    /// The BARs the DMA engine reaches peer to peer.
    pub(crate) p2p: P2pWindows,
}

/// The device a pair maps memory for.
///
/// # Invariants
///
/// A `Faux` device is registered, and destroyed when the pair is dropped.
enum DmaDev {
    Faux(ptr::NonNull<bindings::faux_device>),
    Pci(ARef<kernel::pci::Device>),
}

// SAFETY: the faux device is only registered and destroyed, from any thread; the rest is
// `Send` and `Sync`.
unsafe impl Send for Pair {}
// SAFETY: `&Pair` only gives out the device pointer and the windows.
unsafe impl Sync for Pair {}

static PAIR_IDS: AtomicU32 = AtomicU32::new(0);

impl Pair {
    fn new() -> Result<Arc<Self>> {
        let id = PAIR_IDS.fetch_add(1, Ordering::Relaxed);
        let name = CString::try_from_fmt(fmt!("netgpu-sim.{id}"))?;
        // SAFETY: `name` is a valid C string, copied by the callee; no parent, no ops.
        let faux = unsafe {
            bindings::faux_device_create(name.as_char_ptr(), ptr::null_mut(), ptr::null())
        };
        let faux = ptr::NonNull::new(faux).ok_or(ENOMEM)?;
        let pair = Arc::new(
            Pair {
                dev: DmaDev::Faux(faux),
                p2p: P2pWindows::none(),
            },
            GFP_KERNEL,
        )?;
        let dev = pair.device();
        // SAFETY: `dev` is the registered faux device. Like a platform device, it gets its
        // DMA mask storage pointed at its coherent mask before the mask is set.
        let err = unsafe {
            (*dev).dma_mask = &raw mut (*dev).coherent_dma_mask;
            bindings::dma_set_mask_and_coherent(dev, u64::MAX)
        };
        kernel::error::to_result(err)?;
        Ok(pair)
    }

    /// A pair on PCI function `pdev`, bound to netgpu_sim (which set its DMA mask).
    fn on_pci(pdev: ARef<kernel::pci::Device>) -> Result<Arc<Self>> {
        let p2p = P2pWindows::of(&pdev)?;
        Ok(Arc::new(
            Pair {
                dev: DmaDev::Pci(pdev),
                p2p,
            },
            GFP_KERNEL,
        )?)
    }

    /// The DMA device of the pair.
    pub(crate) fn device(&self) -> *mut bindings::device {
        match &self.dev {
            DmaDev::Pci(p) => crate::pci::device_ptr(p),
            // SAFETY: the faux device is registered, by the type invariant.
            DmaDev::Faux(f) => unsafe { &raw mut (*f.as_ptr()).dev },
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        if let DmaDev::Faux(f) = self.dev {
            // SAFETY: created by `faux_device_create`, destroyed once, here.
            unsafe { bindings::faux_device_destroy(f.as_ptr()) };
        }
    }
}

/// Per TX queue counters.
#[derive(Default)]
pub(crate) struct TxStats {
    pub(crate) packets: AtomicU64,
    pub(crate) bytes: AtomicU64,
    /// Frames dropped because the peer was gone, down, or the frame too long.
    pub(crate) drops: AtomicU64,
    pub(crate) stops: AtomicU64,
}

/// Ring configuration set through ethtool.
pub(crate) struct RingCfg {
    pub(crate) rx: AtomicU32,
    pub(crate) tx: AtomicU32,
    /// `enum ethtool_tcp_data_split` value applied to the datapath.
    pub(crate) hds: AtomicU8,
    pub(crate) hds_thresh: AtomicU32,
}

/// What a netgpu-sim port owns. Created by `newlink`, owned by the `net_device` from
/// `ndo_init` to `ndo_uninit`.
pub(crate) struct PortState {
    pub(crate) dev: *mut bindings::net_device,
    pub(crate) pair: Arc<Pair>,
    /// One queue per `num_rx_queues`; the first `real_num_rx_queues` are active.
    pub(crate) rxqs: KVec<Pin<KBox<RxQueue>>>,
    pub(crate) txqs: KVec<TxStats>,
    /// RCU-protected snapshot, never null while the state lives.
    steering: AtomicPtr<Steering>,
    pub(crate) rings: RingCfg,
    /// Queues `0..active` have NAPI and page pools (while the device is up).
    pub(crate) active: AtomicU32,
    /// Frames dropped because the RX queue they were steered to was not running: channels
    /// being reconfigured, or the device closing.
    pub(crate) reconfig_drops: AtomicU64,
}

// SAFETY: the raw pointers are to the owning `net_device` (which outlives the state) and to
// C objects synchronized as the module docs describe.
unsafe impl Send for PortState {}
// SAFETY: see above; shared access goes through atomics and RCU.
unsafe impl Sync for PortState {}

impl PortState {
    fn new(dev: &NetDev, pair: Arc<Pair>) -> Result<KBox<Self>> {
        let (nrx, ntx) = (dev.num_rx(), dev.num_tx());
        let mut rxqs = KVec::with_capacity(nrx as usize, GFP_KERNEL)?;
        for i in 0..nrx {
            rxqs.push(RxQueue::new(i)?, GFP_KERNEL)?;
        }
        let mut txqs = KVec::with_capacity(ntx as usize, GFP_KERNEL)?;
        for _ in 0..ntx {
            txqs.push(TxStats::default(), GFP_KERNEL)?;
        }
        let steering = KBox::new(Steering::new(nrx), GFP_KERNEL)?;
        Ok(KBox::new(
            PortState {
                dev: dev.as_raw(),
                pair,
                rxqs,
                txqs,
                steering: AtomicPtr::new(KBox::into_raw(steering)),
                rings: RingCfg {
                    rx: AtomicU32::new(DEFAULT_RING),
                    tx: AtomicU32::new(DEFAULT_RING),
                    hds: AtomicU8::new(
                        bindings::ethtool_tcp_data_split_ETHTOOL_TCP_DATA_SPLIT_ENABLED as u8,
                    ),
                    hds_thresh: AtomicU32::new(0),
                },
                active: AtomicU32::new(0),
                reconfig_drops: AtomicU64::new(0),
            },
            GFP_KERNEL,
        )?)
    }

    /// Runs `f` on the current steering snapshot.
    pub(crate) fn with_steering<R>(&self, f: impl FnOnce(&Steering) -> R) -> R {
        let _guard = rcu::read_lock();
        let s = self.steering.load(Ordering::Acquire);
        // SAFETY: the snapshot is never null and is freed only after a grace period that
        // starts after it was replaced; we are in an RCU read-side critical section.
        f(unsafe { &*s })
    }

    /// Replaces the steering snapshot with `f` applied to a copy of it. Control path only
    /// (rtnl and the instance lock serialize writers).
    pub(crate) fn update_steering(&self, f: impl FnOnce(&mut Steering) -> Result) -> Result {
        let old = self.steering.load(Ordering::Acquire);
        // SAFETY: writers are serialized, so `old` stays valid while we copy it.
        let mut new = KBox::new(unsafe { (*old).clone() }, GFP_KERNEL)?;
        f(&mut new)?;
        self.steering.store(KBox::into_raw(new), Ordering::Release);
        // SAFETY: `synchronize_net` only waits.
        unsafe { bindings::synchronize_net() };
        // SAFETY: `old` came from `KBox::into_raw`, and after the grace period no reader
        // can still see it.
        drop(unsafe { KBox::from_raw(old) });
        Ok(())
    }

    /// The device this state belongs to.
    pub(crate) fn dev(&self) -> &NetDev {
        // SAFETY: the state is owned by its device, which outlives it.
        unsafe { NetDev::from_raw(self.dev) }
    }

    /// Brings up RX queues `from..to`: page pools, NAPI, and queue/NAPI association.
    pub(crate) fn open_queues(&self, from: u32, to: u32) -> Result {
        for i in from..to {
            let q = &self.rxqs[i as usize];
            if let Err(e) = q.open(self) {
                self.close_queues(from, i);
                return Err(e);
            }
        }
        self.active.store(to, Ordering::Release);
        Ok(())
    }

    /// Takes down RX queues `from..to`.
    pub(crate) fn close_queues(&self, from: u32, to: u32) {
        // First stop the peer's transmit from posting to them: it reads `active` under RCU,
        // and a frame posted while a queue closes would stay in its ring after the purge.
        self.active.store(from, Ordering::Release);
        netdev::synchronize_net();
        for i in (from..to).rev() {
            self.rxqs[i as usize].close(self);
        }
    }

    /// The peer's state, if paired. Must be called in an RCU read-side critical section
    /// (or under rtnl); the result is valid for its duration.
    pub(crate) fn peer(&self) -> Option<&PortState> {
        let port = port(self.dev);
        let peer = port.peer.load(Ordering::Acquire);
        if peer.is_null() {
            return None;
        }
        state(peer)
    }
}

impl Drop for PortState {
    fn drop(&mut self) {
        let s = self.steering.swap(ptr::null_mut(), Ordering::AcqRel);
        if !s.is_null() {
            // SAFETY: from `KBox::into_raw`; the device is unregistered, no readers remain.
            drop(unsafe { KBox::from_raw(s) });
        }
    }
}

/// The private area of a netgpu-sim `net_device` (`rtnl_link_ops.priv_size`), zeroed by
/// `alloc_netdev`.
///
/// # Invariants
///
/// `state` is null or from `KBox::into_raw`, owned by this port from `ndo_init` to
/// `ndo_uninit`; `pending` likewise from `newlink` until `ndo_init` takes it. `peer` is
/// null or a netgpu-sim device held through `peer_tracker`.
#[repr(C)]
pub(crate) struct Port {
    state: AtomicPtr<PortState>,
    pending: AtomicPtr<PortState>,
    peer: AtomicPtr<bindings::net_device>,
    peer_tracker: Opaque<bindings::netdevice_tracker>,
}

/// The port of a netgpu-sim device.
pub(crate) fn port<'a>(dev: *mut bindings::net_device) -> &'a Port {
    // SAFETY: every device using these ops was allocated with `priv_size` of a `Port`,
    // zero-initialized, which is a valid `Port`; it lives as long as the device.
    unsafe { &*bindings::netdev_priv(dev).cast::<Port>() }
}

/// The state of a netgpu-sim device, if it is registered.
pub(crate) fn state<'a>(dev: *mut bindings::net_device) -> Option<&'a PortState> {
    let s = port(dev).state.load(Ordering::Acquire);
    // SAFETY: by the `Port` invariant `s` is null or valid until `ndo_uninit`, which runs
    // after the device stopped and an RCU grace period passed.
    unsafe { s.as_ref() }
}

// ---- netdev ops ----

extern "C" fn ndo_init(dev: *mut bindings::net_device) -> c_int {
    let port = port(dev);
    let s = port.pending.swap(ptr::null_mut(), Ordering::AcqRel);
    if s.is_null() {
        return EINVAL.to_errno();
    }
    port.state.store(s, Ordering::Release);
    // SAFETY: `dev` is being registered; gives its instance lock a class of its own, which
    // allows taking the locks of both ends (batched unregistration does).
    unsafe { bindings::netdev_lockdep_set_classes(dev) };
    0
}

extern "C" fn ndo_uninit(dev: *mut bindings::net_device) {
    let s = port(dev).state.swap(ptr::null_mut(), Ordering::AcqRel);
    if !s.is_null() {
        // SAFETY: from `KBox::into_raw` (`Port` invariant); the device is stopped and
        // unregistered, nothing else uses the state.
        drop(unsafe { KBox::from_raw(s) });
    }
}

extern "C" fn ndo_open(dev: *mut bindings::net_device) -> c_int {
    let Some(s) = state(dev) else {
        return ENODEV.to_errno();
    };
    if let Err(e) = s.open_queues(0, s.dev().real_rx()) {
        return e.to_errno();
    }
    let _guard = rcu::read_lock();
    if let Some(peer) = s.peer().filter(|p| p.dev().running()) {
        s.dev().carrier_on();
        peer.dev().carrier_on();
    }
    0
}

extern "C" fn ndo_stop(dev: *mut bindings::net_device) -> c_int {
    let Some(s) = state(dev) else {
        return 0;
    };
    s.dev().carrier_off();
    {
        let _guard = rcu::read_lock();
        if let Some(peer) = s.peer() {
            peer.dev().carrier_off();
        }
    }
    s.close_queues(0, s.active.load(Ordering::Acquire));
    0
}

extern "C" fn ndo_start_xmit(
    skb: *mut bindings::sk_buff,
    dev: *mut bindings::net_device,
) -> bindings::netdev_tx_t {
    // SAFETY: the core hands us a valid skb to own.
    if let Some(skb) = unsafe { Skb::from_raw(skb) } {
        xmit(skb, dev);
    }
    bindings::netdev_tx_NETDEV_TX_OK
}

/// The wire: steers `skb` to an RX queue of the peer and posts it there. A frame that
/// cannot go anywhere is dropped (and counted) by dropping `skb`.
fn xmit(mut skb: Skb, dev: *mut bindings::net_device) {
    let Some(s) = state(dev) else {
        return;
    };
    let len = skb.len();
    let txq = u32::from(skb.queue_mapping());
    let (Some(tx), Some(txq)) = (s.txqs.get(txq as usize), s.dev().tx_queue(txq)) else {
        return;
    };
    // The caller holds rcu_read_lock_bh, which covers the peer and its state.
    let Some(peer) = s.peer().filter(|p| p.dev().running()) else {
        tx.drops.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if len as usize > peer.dev().mtu() as usize + flow::ETH_HLEN + bindings::VLAN_HLEN as usize {
        tx.drops.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut head = [0u8; PARSE_LEN];
    let n = (len as usize).min(PARSE_LEN);
    let parsed = skb
        .copy_bits(0, &mut head[..n])
        .ok()
        .and_then(|()| flow::parse(&head[..n]));
    let active = peer.active.load(Ordering::Acquire);
    let verdict = peer.with_steering(|st| st.classify(parsed.as_ref(), peer.dev().real_rx()));
    let info = WireInfo {
        hash: verdict.hash,
        hdr_len: parsed.map_or(0, |f| f.hdr_len) as u16,
        l4: parsed.is_some_and(|f| f.l4.is_some()),
        by_rule: verdict.by_rule,
    };
    tx.packets.fetch_add(1, Ordering::Relaxed);
    tx.bytes.fetch_add(u64::from(len), Ordering::Relaxed);
    if verdict.queue >= active {
        // The queue is being reconfigured, or the peer is closing.
        peer.reconfig_drops.fetch_add(1, Ordering::Relaxed);
        return;
    }
    skb.orphan_tx();
    let ring = peer.rings.rx.load(Ordering::Relaxed);
    peer.rxqs[verdict.queue as usize].post(skb, info, ring, txq, tx);
}

extern "C" fn ndo_get_stats64(
    dev: *mut bindings::net_device,
    stats: *mut bindings::rtnl_link_stats64,
) {
    let Some(s) = state(dev) else {
        return;
    };
    // SAFETY: the core passes a valid, zeroed stats struct.
    let stats = unsafe { &mut *stats };
    for q in s.rxqs.iter() {
        let st = q.stats();
        stats.rx_packets += st.packets.load(Ordering::Relaxed);
        stats.rx_bytes += st.bytes.load(Ordering::Relaxed);
        stats.rx_dropped +=
            st.ring_full.load(Ordering::Relaxed) + st.alloc_fail.load(Ordering::Relaxed);
    }
    stats.rx_dropped += s.reconfig_drops.load(Ordering::Relaxed);
    for t in s.txqs.iter() {
        stats.tx_packets += t.packets.load(Ordering::Relaxed);
        stats.tx_bytes += t.bytes.load(Ordering::Relaxed);
        stats.tx_dropped += t.drops.load(Ordering::Relaxed);
    }
}

/// The peer of `dev`, or `dev` itself when unpaired. Under RCU or rtnl.
fn peer_or_self<'a>(dev: *const bindings::net_device) -> &'a NetDev {
    let dev = dev.cast_mut();
    let peer = port(dev).peer.load(Ordering::Acquire);
    let d = if peer.is_null() { dev } else { peer };
    // SAFETY: `d` is `dev` or its peer, which stays allocated while we are paired, and
    // the caller's RCU section or rtnl keeps the pairing.
    unsafe { NetDev::from_raw(d) }
}

extern "C" fn ndo_get_iflink(dev: *const bindings::net_device) -> c_int {
    let _guard = rcu::read_lock();
    peer_or_self(dev).ifindex()
}

extern "C" fn ndo_set_features(dev: *mut bindings::net_device, features: u64) -> c_int {
    if let Some(s) = state(dev) {
        if s.dev().features() & NETIF_F_NTUPLE != 0 && features & NETIF_F_NTUPLE == 0 {
            if let Err(e) = ethtool::flush_rules(s) {
                return e.to_errno();
            }
        }
    }
    0
}

static NETDEV_OPS: Ops<bindings::net_device_ops> = Ops(bindings::net_device_ops {
    ndo_init: Some(ndo_init),
    ndo_uninit: Some(ndo_uninit),
    ndo_open: Some(ndo_open),
    ndo_stop: Some(ndo_stop),
    ndo_start_xmit: Some(ndo_start_xmit),
    ndo_get_stats64: Some(ndo_get_stats64),
    ndo_get_iflink: Some(ndo_get_iflink),
    ndo_set_features: Some(ndo_set_features),
    ndo_set_mac_address: Some(bindings::eth_mac_addr),
    ndo_validate_addr: Some(bindings::eth_validate_addr),
    // SAFETY: all-zero is a valid `net_device_ops` (no callbacks).
    ..unsafe { core::mem::zeroed() }
});

// ---- link ops ----

extern "C" fn setup(dev: *mut bindings::net_device) {
    // SAFETY: `dev` is being allocated by `alloc_netdev_mqs`, not yet registered.
    unsafe {
        bindings::ether_setup(dev);
        let d = &mut *dev;
        let fast = &mut d.__bindgen_anon_1.__bindgen_anon_1;
        let flags = fast.priv_flags();
        fast.set_priv_flags(
            (flags & !bindings::netdev_priv_flags_IFF_TX_SKB_SHARING as usize)
                | bindings::netdev_priv_flags_IFF_LIVE_ADDR_CHANGE as usize,
        );
        fast.set_lltx(1);
        d.netdev_ops = &NETDEV_OPS.0;
        d.ethtool_ops = ethtool_ops::ops();
        d.stat_ops = ethtool_ops::stat_ops();
        d.queue_mgmt_ops = queue_ops::queue_mgmt_ops();
        // Receive coalescing (`NETIF_F_GRO_HW`, see `crate::coalesce`) is on by default, as
        // on NICs that have it.
        let features = NETIF_F_SG
            | NETIF_F_HW_CSUM
            | NETIF_F_HIGHDMA
            | NETIF_F_RXCSUM
            | NETIF_F_GRO
            | NETIF_F_GRO_HW;
        d.features |= features | NETIF_F_RXHASH;
        d.hw_features |= features | NETIF_F_NTUPLE | NETIF_F_RXHASH;
        d.needs_free_netdev = true;
        d.max_mtu = MAX_MTU;
    }
}

extern "C" fn get_num_queues() -> u32 {
    DEFAULT_QUEUES
}

extern "C" fn get_link_net(dev: *const bindings::net_device) -> *mut bindings::net {
    // Called under rtnl.
    peer_or_self(dev).net()
}

/// Gives `dev` a fresh state tied to `pair`, to be taken over by `ndo_init`.
fn prepare(dev: *mut bindings::net_device, pair: &Arc<Pair>) -> Result {
    // SAFETY: `dev` was just allocated by rtnetlink or `rtnl_create_link`.
    let s = PortState::new(unsafe { NetDev::from_raw(dev) }, pair.clone())?;
    port(dev)
        .pending
        .store(KBox::into_raw(s), Ordering::Release);
    // SAFETY: `dev` is not registered yet: SET_NETDEV_DEV, and the committed ring config
    // (allocated with the device) starts with header/data split on, threshold 0, which
    // is what the datapath does and memory providers require.
    unsafe {
        (*dev).dev.parent = pair.device();
        (*(*dev).cfg).hds_config =
            bindings::ethtool_tcp_data_split_ETHTOOL_TCP_DATA_SPLIT_ENABLED as u8;
        (*(*dev).cfg).hds_thresh = 0;
    }
    Ok(())
}

/// Frees a state that `ndo_init` never took (registration failed early).
fn unprepare(dev: *mut bindings::net_device) {
    let s = port(dev).pending.swap(ptr::null_mut(), Ordering::AcqRel);
    if !s.is_null() {
        // SAFETY: from `KBox::into_raw` in `prepare`, never taken by `ndo_init`.
        drop(unsafe { KBox::from_raw(s) });
    }
}

extern "C" fn newlink(
    dev: *mut bindings::net_device,
    params: *mut bindings::rtnl_newlink_params,
    extack: *mut bindings::netlink_ext_ack,
) -> c_int {
    match newlink_inner(dev, params, extack) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

fn newlink_inner(
    dev: *mut bindings::net_device,
    params: *mut bindings::rtnl_newlink_params,
    extack: *mut bindings::netlink_ext_ack,
) -> Result {
    // SAFETY: rtnetlink passes valid params; `tb` has IFLA_MAX + 1 entries and `data`
    // (if not null) our maxtype + 1.
    let (tb, data, peer_net) = unsafe {
        let p = &*params;
        let peer_net = if !p.peer_net.is_null() {
            p.peer_net
        } else if !p.link_net.is_null() {
            p.link_net
        } else {
            p.src_net
        };
        (p.tb, p.data, peer_net)
    };
    let mut peer_tb = [ptr::null_mut::<bindings::nlattr>(); bindings::__IFLA_MAX as usize];
    let mut ifmp: *mut bindings::ifinfomsg = ptr::null_mut();
    let mut tbp = tb;
    let peer_attr = if data.is_null() {
        ptr::null_mut()
    } else {
        // SAFETY: `data` is an array of INFO_PEER + 1 attribute pointers.
        unsafe { *data.add(INFO_PEER.into()) }
    };
    if !peer_attr.is_null() {
        // SAFETY: the policy guarantees the attribute holds at least an `ifinfomsg`.
        unsafe {
            ifmp = bindings::nla_data(peer_attr).cast();
            let err = bindings::rtnl_nla_parse_ifinfomsg(peer_tb.as_mut_ptr(), peer_attr, extack);
            kernel::error::to_result(err)?;
        }
        tbp = peer_tb.as_mut_ptr();
    }
    let mut name = [0u8; bindings::IFNAMSIZ as usize];
    // SAFETY: `tbp` has IFLA_MAX + 1 entries.
    let ifname = unsafe { *tbp.add(bindings::IFLA_IFNAME as usize) };
    let assign = if !ifmp.is_null() && !ifname.is_null() {
        // SAFETY: `name` has IFNAMSIZ bytes; the attribute is a validated string.
        unsafe { bindings::nla_strscpy(name.as_mut_ptr().cast(), ifname, name.len()) };
        bindings::NET_NAME_USER
    } else {
        let t = PEER_TEMPLATE.to_bytes_with_nul();
        name[..t.len()].copy_from_slice(t);
        bindings::NET_NAME_ENUM
    };
    let dma_dev = if data.is_null() {
        ptr::null_mut()
    } else {
        // SAFETY: `data` is an array of maxtype + 1 attribute pointers.
        unsafe { *data.add(INFO_DMA_DEV.into()) }
    };
    let pair = if dma_dev.is_null() {
        Pair::new()?
    } else {
        let mut bdf = [0u8; 32];
        // SAFETY: `bdf` has 32 bytes; the policy made the attribute a NUL-terminated string.
        unsafe { bindings::nla_strscpy(bdf.as_mut_ptr().cast(), dma_dev, bdf.len()) };
        let bdf = CStr::from_bytes_until_nul(&bdf).map_err(|_| EINVAL)?;
        let pdev = crate::pci::bound_function(bdf).inspect_err(|_| {
            // SAFETY: `extack` is null or valid; the message is a static string.
            unsafe {
                if !extack.is_null() {
                    (*extack)._msg =
                        c"dma-dev is not a PCI function bound to netgpu_sim".as_char_ptr();
                }
            }
        })?;
        Pair::on_pci(pdev)?
    };
    // SAFETY: valid net, name and attributes; the ops are ours and registered.
    let peer = unsafe {
        bindings::rtnl_create_link(
            peer_net,
            name.as_ptr().cast(),
            assign as u8,
            crate::link_ops(),
            tbp,
            extack,
        )
    };
    let peer = kernel::error::from_err_ptr(peer)?;
    // SAFETY: `peer` was just allocated and is not registered.
    unsafe {
        if ifmp.is_null() || (*tbp.add(bindings::IFLA_ADDRESS as usize)).is_null() {
            bindings::eth_hw_addr_random(peer);
        }
        if !ifmp.is_null() && (*dev).ifindex != 0 {
            (*peer).ifindex = (*ifmp).ifi_index;
        }
    }
    if let Err(e) = prepare(peer, &pair) {
        // SAFETY: never registered.
        unsafe { bindings::free_netdev(peer) };
        return Err(e);
    }
    // SAFETY: `peer` is fully set up.
    let err = unsafe { bindings::register_netdevice(peer) };
    if err < 0 {
        unprepare(peer);
        // SAFETY: registration failed; the caller of register frees.
        unsafe { bindings::free_netdev(peer) };
        return Err(Error::from_errno(err));
    }
    // SAFETY: `peer` is registered, we hold rtnl.
    let err = unsafe {
        bindings::netif_carrier_off(peer);
        bindings::rtnl_configure_link(peer, ifmp, 0, ptr::null_mut())
    };
    let fail_peer = |e: Error| {
        // SAFETY: registered by us above, under rtnl.
        unsafe { bindings::unregister_netdevice_queue(peer, ptr::null_mut()) };
        e
    };
    if err < 0 {
        return Err(fail_peer(Error::from_errno(err)));
    }
    // SAFETY: `dev` is not registered yet.
    unsafe {
        if (*tb.add(bindings::IFLA_ADDRESS as usize)).is_null() {
            bindings::eth_hw_addr_random(dev);
        }
    }
    prepare(dev, &pair).map_err(fail_peer)?;
    // SAFETY: `dev` is fully set up; its name was set by the core from IFLA_IFNAME or is
    // the kind's template.
    let err = unsafe { bindings::register_netdevice(dev) };
    if err < 0 {
        unprepare(dev);
        return Err(fail_peer(Error::from_errno(err)));
    }
    // SAFETY: both registered; tie them together, each holding a reference on the other.
    unsafe {
        bindings::netif_carrier_off(dev);
        let p = port(dev);
        p.peer.store(peer, Ordering::Release);
        bindings::netdev_hold(peer, p.peer_tracker.get(), bindings::GFP_KERNEL);
        let q = port(peer);
        q.peer.store(dev, Ordering::Release);
        bindings::netdev_hold(dev, q.peer_tracker.get(), bindings::GFP_KERNEL);
    }
    Ok(())
}

extern "C" fn dellink(dev: *mut bindings::net_device, head: *mut bindings::list_head) {
    let p = port(dev);
    let peer = p.peer.swap(ptr::null_mut(), Ordering::AcqRel);
    if peer.is_null() {
        return;
    }
    // SAFETY: under rtnl; both devices are registered netgpu-sim devices and each holds a
    // reference on the other, dropped here after both are queued for unregistration.
    unsafe {
        bindings::unregister_netdevice_queue(dev, head);
        let q = port(peer);
        let back = q.peer.swap(ptr::null_mut(), Ordering::AcqRel);
        if !back.is_null() {
            bindings::unregister_netdevice_queue(peer, head);
        }
        bindings::netdev_put(peer, p.peer_tracker.get());
        if !back.is_null() {
            bindings::netdev_put(dev, q.peer_tracker.get());
        }
    }
}

/// Builds the link ops (mutable: the core links them into its list).
pub(crate) fn link_ops_value() -> bindings::rtnl_link_ops {
    // SAFETY: all-zero is a valid `rtnl_link_ops`.
    let mut ops: bindings::rtnl_link_ops = unsafe { core::mem::zeroed() };
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

const fn policy() -> [bindings::nla_policy; 3] {
    // SAFETY: all-zero is a valid `nla_policy` (NLA_UNSPEC, no length).
    let mut p: [bindings::nla_policy; 3] = unsafe { core::mem::zeroed() };
    p[INFO_PEER as usize].len = core::mem::size_of::<bindings::ifinfomsg>() as u16;
    p[INFO_DMA_DEV as usize].type_ = bindings::NLA_NUL_STRING as u8;
    p[INFO_DMA_DEV as usize].len = 31;
    p
}

static POLICY: Ops<[bindings::nla_policy; 3]> = Ops(policy());
