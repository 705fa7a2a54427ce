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
//!
//! The C callbacks and ops tables are in [`crate::port_ops`], which turns the core's
//! pointers into the wrappers these functions take.

use core::ffi::c_int;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use kernel::bindings;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::{aref::ARef, rcu, Arc};

use crate::coalesce::{Run, Segment};
use crate::ethtool;
use crate::flow::{self, Steering, PARSE_LEN};
use crate::netdev::{
    self, NetDev, NetDevSetup, NewlyRegistered, OwnerDev, RcuBox, Registered, Skb, Tso,
    UnregisterList, Unregistered,
};
use crate::pci::P2pWindows;
use crate::port_ops::{self, attr, FauxDma, NewLink};
use crate::rxq::{self, RxQueue, WireInfo};
use crate::txc::TxCompletion;

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
pub(crate) const DEFAULT_QUEUES: u32 = 4;
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
const NETIF_F_TSO: u64 = 1 << bindings::NETIF_F_TSO_BIT;
const NETIF_F_TSO6: u64 = 1 << bindings::NETIF_F_TSO6_BIT;
/// All segmentation offloads (`NETIF_F_GSO_MASK`).
const NETIF_F_GSO_MASK: u64 =
    ((1 << (bindings::NETIF_F_GSO_LAST + 1)) - 1) & !((1 << bindings::NETIF_F_GSO_SHIFT) - 1);

/// The parent `struct device` of a pair, which maps memory for it: a faux device with a
/// 64-bit DMA mask (dma-direct, as for a PCI NIC without IOMMU), or a PCI function bound
/// to netgpu_sim (see [`crate::pci`]).
pub(crate) struct Pair {
    dev: DmaDev,
    /// The BARs the DMA engine reaches peer to peer.
    pub(crate) p2p: P2pWindows,
}

/// The device a pair maps memory for.
enum DmaDev {
    Faux(FauxDma),
    Pci(ARef<kernel::pci::Device>),
}

static PAIR_IDS: AtomicU32 = AtomicU32::new(0);

impl Pair {
    fn new() -> Result<Arc<Self>> {
        let id = PAIR_IDS.fetch_add(1, Ordering::Relaxed);
        let name = CString::try_from_fmt(fmt!("netgpu-sim.{id}"))?;
        Ok(Arc::new(
            Pair {
                dev: DmaDev::Faux(FauxDma::new(&name)?),
                p2p: P2pWindows::none(),
            },
            GFP_KERNEL,
        )?)
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
            DmaDev::Faux(f) => f.device(),
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
    /// TSO sends the wire carried whole, and their bytes.
    pub(crate) hw_gso_packets: AtomicU64,
    pub(crate) hw_gso_bytes: AtomicU64,
    /// The frames they make, and the frames' bytes.
    pub(crate) hw_gso_wire_packets: AtomicU64,
    pub(crate) hw_gso_wire_bytes: AtomicU64,
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
    dev: OwnerDev,
    pub(crate) pair: Arc<Pair>,
    /// One queue per `num_rx_queues`; the first `real_num_rx_queues` are active.
    pub(crate) rxqs: KVec<Pin<KBox<RxQueue>>>,
    pub(crate) txqs: KVec<TxStats>,
    /// Wakes the TX queues, scheduled by the peer's engines.
    txc: Pin<KBox<TxCompletion>>,
    /// The steering snapshot the datapath reads.
    steering: RcuBox<Steering>,
    pub(crate) rings: RingCfg,
    /// Queues `0..active` have NAPI and page pools (while the device is up).
    pub(crate) active: AtomicU32,
    /// Frames dropped because the RX queue they were steered to was not running: channels
    /// being reconfigured, or the device closing.
    pub(crate) reconfig_drops: AtomicU64,
}

impl PortState {
    /// A state for device `dev`, which will own it.
    pub(crate) fn new(dev: OwnerDev, pair: Arc<Pair>) -> Result<KBox<Self>> {
        let (nrx, ntx) = (dev.get().num_rx(), dev.get().num_tx());
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
                dev,
                pair,
                rxqs,
                txqs,
                txc: TxCompletion::new()?,
                steering: RcuBox::new(steering),
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
        self.steering.read(f)
    }

    /// Replaces the steering snapshot with `f` applied to a copy of it. Control path only
    /// (rtnl and the instance lock serialize writers, so no update is lost).
    pub(crate) fn update_steering(&self, f: impl FnOnce(&mut Steering) -> Result) -> Result {
        let mut new = KBox::new(self.steering.read(Steering::clone), GFP_KERNEL)?;
        f(&mut new)?;
        self.steering.replace(new);
        Ok(())
    }

    /// The device this state belongs to.
    pub(crate) fn dev(&self) -> &NetDev {
        self.dev.get()
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

    /// The port's TX completion.
    pub(crate) fn txc(&self) -> &TxCompletion {
        &self.txc
    }

    /// The peer's state, if paired. Must be called in an RCU read-side critical section
    /// (or under rtnl); the result is valid for its duration.
    pub(crate) fn peer(&self) -> Option<&PortState> {
        state(port_ops::port(self.dev()).peer()?)
    }
}

/// The state of a netgpu-sim device, if it is registered.
pub(crate) fn state(dev: &NetDev) -> Option<&PortState> {
    port_ops::port(dev).state()
}

// ---- netdev ops ----

pub(crate) fn open(dev: &NetDev) -> Result {
    let s = state(dev).ok_or(ENODEV)?;
    s.open_queues(0, s.dev().real_rx())?;
    s.txc.open(s.dev());
    let _guard = rcu::read_lock();
    if let Some(peer) = s.peer().filter(|p| p.dev().running()) {
        s.dev().carrier_on();
        peer.dev().carrier_on();
    }
    Ok(())
}

pub(crate) fn stop(dev: &NetDev) {
    let Some(s) = state(dev) else {
        return;
    };
    s.dev().carrier_off();
    {
        let _guard = rcu::read_lock();
        if let Some(peer) = s.peer() {
            peer.dev().carrier_off();
        }
    }
    s.close_queues(0, s.active.load(Ordering::Acquire));
    s.txc.close(s.dev());
}

/// The length of the headers of TSO send `skb` if `peer` receives it whole.
///
/// A NIC cuts a TSO send into frames, and the peer's receive coalescing
/// (`NETIF_F_GRO_HW`, [`crate::coalesce`]) merges in-order frames of one flow back into
/// one packet. When the peer would merge all frames of the send, the wire carries the send
/// as it is and the peer's engine writes that packet at once ([`Run::whole`]): the same
/// bytes in the same buffers, the same packet for the stack, the same per-frame counters,
/// without cutting and merging frames in software. That holds for a plain TCP send (only
/// ACK and PSH set, headers the coalescing parses) whose frames fit the peer's MTU, whose
/// payload fits one skb's fragments, whose frames the peer's header/data split would all
/// treat alike (no `hds-thresh`), and whose frames fit the peer's RX ring
/// ([`rxq::max_send_frames`]).
/// Other sends the core segments in software before they reach the wire
/// ([`features_check`]).
fn tso_whole(peer: &PortState, skb: &Skb, tso: &Tso) -> Option<usize> {
    let pd = peer.dev();
    if tso.gso_type != bindings::SKB_GSO_TCPV4 as u32
        && tso.gso_type != bindings::SKB_GSO_TCPV6 as u32
        || pd.features() & NETIF_F_GRO_HW == 0
        || peer.rings.hds_thresh.load(Ordering::Relaxed) > 0
        || u32::from(tso.segs) > rxq::max_send_frames(peer.rings.rx.load(Ordering::Relaxed))
    {
        return None;
    }
    let head = skb.linear();
    let hdr_len = flow::parse(head)?.hdr_len;
    let len = skb.len() as usize;
    if hdr_len + usize::from(tso.mss)
        > pd.mtu() as usize + flow::ETH_HLEN + bindings::VLAN_HLEN as usize
        || len - hdr_len > rxq::TSO_MAX_PAYLOAD
    {
        return None;
    }
    Segment::parse(head, hdr_len, len).and_then(|f| Run::whole(f, tso.mss, tso.segs))?;
    Some(hdr_len)
}

/// `ndo_features_check`: has the core segment a TSO send the peer would not receive whole
/// (see [`tso_whole`]) in software, so the wire carries it frame by frame.
pub(crate) fn features_check(skb: &Skb, dev: &NetDev, features: u64) -> u64 {
    let Some(tso) = skb.tso() else {
        return features;
    };
    let _guard = rcu::read_lock();
    let whole = state(dev)
        .and_then(|s| s.peer())
        .is_some_and(|peer| tso_whole(peer, skb, &tso).is_some());
    if whole {
        features
    } else {
        features & !NETIF_F_GSO_MASK
    }
}

/// The wire: steers `skb` to an RX queue of the peer and posts it there. A frame that
/// cannot go anywhere is dropped (and counted) by dropping `skb`. A TSO send goes as it is,
/// for the peer to receive whole (see [`tso_whole`]), and counts as the frames it makes.
pub(crate) fn xmit(mut skb: Skb, dev: &NetDev) {
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
    let tso = skb.tso();
    let (frames, wire_bytes) = match &tso {
        // `features_check` let it through, but the peer changed since: it cannot take it.
        Some(t) => match tso_whole(peer, &skb, t) {
            Some(hdr_len) => (
                u64::from(t.segs),
                u64::from(len) + (u64::from(t.segs) - 1) * hdr_len as u64,
            ),
            None => {
                tx.drops.fetch_add(u64::from(t.segs), Ordering::Relaxed);
                return;
            }
        },
        None => (1, u64::from(len)),
    };
    if tso.is_none()
        && len as usize > peer.dev().mtu() as usize + flow::ETH_HLEN + bindings::VLAN_HLEN as usize
    {
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
    tx.packets.fetch_add(frames, Ordering::Relaxed);
    tx.bytes.fetch_add(wire_bytes, Ordering::Relaxed);
    if tso.is_some() {
        tx.hw_gso_packets.fetch_add(1, Ordering::Relaxed);
        tx.hw_gso_bytes.fetch_add(u64::from(len), Ordering::Relaxed);
        tx.hw_gso_wire_packets.fetch_add(frames, Ordering::Relaxed);
        tx.hw_gso_wire_bytes
            .fetch_add(wire_bytes, Ordering::Relaxed);
    }
    if verdict.queue >= active {
        // The queue is being reconfigured, or the peer is closing.
        peer.reconfig_drops.fetch_add(frames, Ordering::Relaxed);
        return;
    }
    skb.orphan_tx();
    let ring = peer.rings.rx.load(Ordering::Relaxed);
    peer.rxqs[verdict.queue as usize].post(skb, info, ring, txq, tx);
}

pub(crate) fn get_stats64(dev: &NetDev, stats: &mut bindings::rtnl_link_stats64) {
    let Some(s) = state(dev) else {
        return;
    };
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
fn peer_or_self(dev: &NetDev) -> &NetDev {
    port_ops::port(dev).peer().unwrap_or(dev)
}

pub(crate) fn iflink(dev: &NetDev) -> c_int {
    let _guard = rcu::read_lock();
    peer_or_self(dev).ifindex()
}

pub(crate) fn set_features(dev: &NetDev, features: u64) -> Result {
    if let Some(s) = state(dev) {
        if s.dev().features() & NETIF_F_NTUPLE != 0 && features & NETIF_F_NTUPLE == 0 {
            ethtool::flush_rules(s)?;
        }
    }
    Ok(())
}

// ---- link ops ----

/// Sets up a device as it is allocated (the ops tables are `crate::port_ops`'s to set).
pub(crate) fn setup(dev: &NetDevSetup) {
    dev.ether_setup();
    dev.update_priv_flags(
        bindings::netdev_priv_flags_IFF_TX_SKB_SHARING as usize,
        bindings::netdev_priv_flags_IFF_LIVE_ADDR_CHANGE as usize,
    );
    dev.set_lltx(true);
    // Receive coalescing (`NETIF_F_GRO_HW`, see `crate::coalesce`) and segmentation offload
    // (see `tso_whole`) are on by default, as on NICs that have them.
    let features = NETIF_F_SG
        | NETIF_F_HW_CSUM
        | NETIF_F_HIGHDMA
        | NETIF_F_RXCSUM
        | NETIF_F_GRO
        | NETIF_F_GRO_HW
        | NETIF_F_TSO
        | NETIF_F_TSO6;
    dev.add_features(
        features | NETIF_F_RXHASH,
        features | NETIF_F_NTUPLE | NETIF_F_RXHASH,
    );
    dev.set_needs_free();
    dev.set_max_mtu(MAX_MTU);
}

/// The namespace of the peer of `dev`, or of `dev` itself when unpaired. Under rtnl.
pub(crate) fn link_net(dev: &NetDev) -> *mut bindings::net {
    peer_or_self(dev).net()
}

/// Gives `dev` a fresh state tied to `pair`, to be taken over by `ndo_init`.
fn prepare(dev: &NetDevSetup, pair: &Arc<Pair>) -> Result {
    port_ops::prepare(dev, pair)?;
    // The committed ring config (allocated with the device) starts with header/data split
    // on, threshold 0, which is what the datapath does and memory providers require.
    dev.set_hds_config(
        bindings::ethtool_tcp_data_split_ETHTOOL_TCP_DATA_SPLIT_ENABLED as u8,
        0,
    );
    Ok(())
}

/// Registers `dev`, freeing the state `prepare` gave it if that fails.
fn register(dev: Unregistered<'_>) -> Result<NewlyRegistered<'_>> {
    dev.register().map_err(|(dev, e)| {
        port_ops::port(&dev).drop_pending();
        e
    })
}

/// Creates a pair: `dev`, which the core allocated, and its peer, on a DMA device of their
/// own or on the PCI function the request names.
pub(crate) fn newlink(dev: Unregistered<'_>, req: &NewLink<'_>) -> Result {
    let peer_req = req.peer()?;
    let tbp = peer_req.as_ref().map_or(req.tb(), |p| &p.tb);
    let mut name = [0u8; bindings::IFNAMSIZ as usize];
    let assign = match peer_req.as_ref().and(attr(tbp, bindings::IFLA_IFNAME)) {
        Some(ifname) => {
            ifname.strscpy(&mut name);
            bindings::NET_NAME_USER
        }
        None => {
            let t = PEER_TEMPLATE.to_bytes_with_nul();
            name[..t.len()].copy_from_slice(t);
            bindings::NET_NAME_ENUM
        }
    };
    let pair = match req.info(INFO_DMA_DEV) {
        None => Pair::new()?,
        Some(dma_dev) => {
            let mut bdf = [0u8; 32];
            dma_dev.strscpy(&mut bdf);
            let bdf = CStr::from_bytes_until_nul(&bdf).map_err(|_| EINVAL)?;
            let pdev = crate::pci::bound_function(bdf).inspect_err(|_| {
                req.set_err_msg(c"dma-dev is not a PCI function bound to netgpu_sim")
            })?;
            Pair::on_pci(pdev)?
        }
    };
    let name = CStr::from_bytes_until_nul(&name).map_err(|_| EINVAL)?;
    let peer = req.create_peer(name, assign as u8, tbp)?;
    if peer_req.is_none() || attr(tbp, bindings::IFLA_ADDRESS).is_none() {
        peer.random_addr();
    }
    if let Some(p) = &peer_req {
        if dev.ifindex() != 0 {
            peer.set_ifindex(p.ifm.ifi_index);
        }
    }
    // Dropping `peer` frees it while it is not registered, and unregisters it once it is.
    prepare(&peer, &pair)?;
    let peer = register(peer)?;
    peer.carrier_off();
    peer.configure(peer_req.as_ref().map(|p| p.ifm))?;
    if attr(req.tb(), bindings::IFLA_ADDRESS).is_none() {
        dev.random_addr();
    }
    prepare(&dev, &pair)?;
    let dev = register(dev)?;
    dev.carrier_off();
    let (dev, peer) = (dev.keep(), peer.keep());
    // Tie them together, each holding a reference on the other.
    port_ops::port(dev).set_peer(peer);
    port_ops::port(peer).set_peer(dev);
    Ok(())
}

/// Deletes `dev` and its peer: deleting either end deletes the pair.
pub(crate) fn dellink(dev: &Registered, kill: &UnregisterList<'_>) {
    let Some(peer) = port_ops::port(dev).unpair(kill.rtnl()) else {
        return;
    };
    kill.queue(dev);
    let back = port_ops::port(peer.dev()).unpair(kill.rtnl());
    if back.is_some() {
        kill.queue(peer.dev());
    }
    // Each drops its reference on the other, now that both are queued.
    drop(peer);
    drop(back);
}
