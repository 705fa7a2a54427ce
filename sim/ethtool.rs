// SPDX-License-Identifier: GPL-2.0

//! ethtool and queue statistics of netgpu-sim: ring sizes and header/data split (`-G`),
//! channels (`-L`), ntuple rules (`-N`), RSS indirection and key (`-X`), per-queue counters
//! (`-S`), and the netdev netlink qstats.
//!
//! Called under the netdev instance lock (and rtnl for channels, see `op_needs_rtnl`),
//! which serializes every writer of the port's configuration.
//!
//! The C callbacks are in [`crate::ethtool_ops`], which turns the core's pointers into the
//! references and slices these functions take.

use core::ffi::c_int;
use core::sync::atomic::Ordering;

use kernel::bindings;
use kernel::prelude::*;

use crate::ethtool_ops::{self, RxNfc};
use crate::flow::{Rule, L4, NTUPLE_SLOTS, RSS_INDIR_LEN, RSS_KEY_LEN};
use crate::netdev::NetDev;
use crate::port::{self, PortState, TxStats, MAX_MTU, MAX_RING, MIN_RING, NETIF_F_NTUPLE};
use crate::rxq::RxStats;

pub(crate) const ETH_GSTRING_LEN: usize = bindings::ETH_GSTRING_LEN as usize;
const ETH_RSS_HASH_TOP: u8 = 1 << bindings::ETH_RSS_HASH_TOP_BIT;
const HDS_UNKNOWN: u8 = bindings::ethtool_tcp_data_split_ETHTOOL_TCP_DATA_SPLIT_UNKNOWN as u8;
const HDS_ENABLED: u8 = bindings::ethtool_tcp_data_split_ETHTOOL_TCP_DATA_SPLIT_ENABLED as u8;

const RX_STATS: [&str; 16] = [
    "packets",
    "bytes",
    "hds_packets",
    "hds_bytes",
    "unreadable_packets",
    "ntuple_packets",
    "ring_full_drops",
    "alloc_fail_drops",
    "dma_ns",
    "driver_ns",
    "engine_ns",
    "hw_gro_packets",
    "hw_gro_wire_packets",
    "irqs",
    "buffer_waits",
    "cq_waits",
];
const TX_STATS: [&str; 6] = [
    "packets",
    "bytes",
    "drops",
    "stops",
    "hw_gso_packets",
    "hw_gso_wire_packets",
];
/// Device-wide counters, after the per-queue ones.
const DEV_STATS: [&str; 1] = ["rx_reconfig_drops"];

fn st(dev: &NetDev) -> Result<&PortState> {
    port::state(dev).ok_or(ENODEV)
}

pub(crate) fn get_drvinfo(info: &mut bindings::ethtool_drvinfo) {
    let name = crate::port::KIND.to_bytes();
    // `driver` has 32 bytes and `name` is shorter.
    for (d, s) in info.driver.iter_mut().zip(name.iter()) {
        *d = *s;
    }
}

pub(crate) fn get_ringparam(
    dev: &NetDev,
    ring: &mut bindings::ethtool_ringparam,
    kring: &mut bindings::kernel_ethtool_ringparam,
) {
    let Ok(s) = st(dev) else { return };
    ring.rx_max_pending = MAX_RING;
    ring.tx_max_pending = MAX_RING;
    ring.rx_pending = s.rings.rx.load(Ordering::Relaxed);
    ring.tx_pending = s.rings.tx.load(Ordering::Relaxed);
    kring.tcp_data_split = s.rings.hds.load(Ordering::Relaxed);
    kring.hds_thresh = s.rings.hds_thresh.load(Ordering::Relaxed);
    kring.hds_thresh_max = MAX_MTU;
}

pub(crate) fn set_ringparam(
    dev: &NetDev,
    ring: &bindings::ethtool_ringparam,
    kring: &bindings::kernel_ethtool_ringparam,
) -> Result {
    let s = st(dev)?;
    if ring.rx_pending < MIN_RING || ring.tx_pending < MIN_RING {
        pr_info!("netgpu-sim: rings need at least {MIN_RING} entries\n");
        return Err(EINVAL);
    }
    if ring.rx_mini_pending != 0 || ring.rx_jumbo_pending != 0 {
        return Err(EINVAL);
    }
    s.rings.rx.store(ring.rx_pending, Ordering::Relaxed);
    s.rings.tx.store(ring.tx_pending, Ordering::Relaxed);
    // "auto" means on: the simulated hardware always can split.
    let hds = if kring.tcp_data_split == HDS_UNKNOWN {
        HDS_ENABLED
    } else {
        kring.tcp_data_split
    };
    s.rings.hds.store(hds, Ordering::Relaxed);
    s.rings
        .hds_thresh
        .store(kring.hds_thresh, Ordering::Relaxed);
    Ok(())
}

pub(crate) fn get_channels(dev: &NetDev, ch: &mut bindings::ethtool_channels) {
    let Ok(s) = st(dev) else { return };
    let d = s.dev();
    ch.max_combined = d.num_rx().min(d.num_tx());
    ch.combined_count = d.real_rx().min(d.real_tx());
}

pub(crate) fn set_channels(dev: &NetDev, ch: &bindings::ethtool_channels) -> Result {
    let s = st(dev)?;
    if ch.rx_count != 0 || ch.tx_count != 0 || ch.other_count != 0 {
        pr_info!("netgpu-sim: only combined channels are supported\n");
        return Err(EINVAL);
    }
    let n = ch.combined_count;
    let d = s.dev();
    let cur = d.real_rx();
    let running = d.running();
    if running && n < cur {
        s.close_queues(n, cur);
    }
    // rtnl and the instance lock are held (op_needs_rtnl).
    if let Err(e) = d.set_real_queues(n, n) {
        if running && n < cur {
            s.open_queues(n, cur)?;
        }
        return Err(e);
    }
    if running && n > cur {
        if let Err(e) = s.open_queues(cur, n) {
            // Shrinking back to where we were cannot fail.
            let _ = d.set_real_queues(cur, cur);
            return Err(e);
        }
    }
    s.update_steering(|st| {
        if !st.indir_user {
            st.spread(n);
        }
        Ok(())
    })
}

pub(crate) fn get_rx_ring_count(dev: &NetDev) -> u32 {
    st(dev).map_or(0, |s| s.dev().real_rx())
}

fn be_ip(words: &[u32], v6: bool) -> [u8; 16] {
    let mut a = [0u8; 16];
    let n = if v6 { 4 } else { 1 };
    for (i, w) in words.iter().take(n).enumerate() {
        // The words are big endian in memory already: keep their byte order.
        a[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
    }
    a
}

fn ip_words(a: &[u8; 16]) -> [u32; 4] {
    let mut w = [0u32; 4];
    for (i, x) in w.iter_mut().enumerate() {
        *x = u32::from_ne_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]]);
    }
    w
}

/// Converts an ethtool flow spec into a rule.
fn rule_from_spec(fs: &bindings::ethtool_rx_flow_spec, queues: u32) -> Result<Rule> {
    let extra = bindings::FLOW_EXT | bindings::FLOW_MAC_EXT | bindings::FLOW_RSS;
    if fs.flow_type & extra != 0 {
        pr_info!("netgpu-sim: ntuple: extended and RSS-context flow specs are not supported\n");
        return Err(EOPNOTSUPP);
    }
    let (v6, l4) = match fs.flow_type {
        bindings::TCP_V4_FLOW => (false, L4::Tcp),
        bindings::UDP_V4_FLOW => (false, L4::Udp),
        bindings::TCP_V6_FLOW => (true, L4::Tcp),
        bindings::UDP_V6_FLOW => (true, L4::Udp),
        _ => {
            pr_info!("netgpu-sim: ntuple: only tcp4, udp4, tcp6 and udp6 flows are supported\n");
            return Err(EOPNOTSUPP);
        }
    };
    if fs.ring_cookie == bindings::RX_CLS_FLOW_DISC as u64 || fs.ring_cookie >> 32 != 0 {
        pr_info!("netgpu-sim: ntuple: the action must be a queue\n");
        return Err(EOPNOTSUPP);
    }
    let queue = fs.ring_cookie as u32;
    if queue >= queues {
        pr_info!("netgpu-sim: ntuple: queue {queue} is not an active queue\n");
        return Err(EINVAL);
    }
    // The union variant is chosen by `flow_type`, checked above.
    let rule = if v6 {
        let (h, m) = ethtool_ops::tcp_ip6_spec(fs);
        if m.tclass != 0 {
            return Err(EOPNOTSUPP);
        }
        Rule {
            v6,
            l4,
            src: be_ip(&h.ip6src, true),
            src_mask: be_ip(&m.ip6src, true),
            dst: be_ip(&h.ip6dst, true),
            dst_mask: be_ip(&m.ip6dst, true),
            sport: u16::from_be(h.psrc),
            sport_mask: u16::from_be(m.psrc),
            dport: u16::from_be(h.pdst),
            dport_mask: u16::from_be(m.pdst),
            queue,
        }
    } else {
        let (h, m) = ethtool_ops::tcp_ip4_spec(fs);
        if m.tos != 0 {
            return Err(EOPNOTSUPP);
        }
        Rule {
            v6,
            l4,
            src: be_ip(&[h.ip4src], false),
            src_mask: be_ip(&[m.ip4src], false),
            dst: be_ip(&[h.ip4dst], false),
            dst_mask: be_ip(&[m.ip4dst], false),
            sport: u16::from_be(h.psrc),
            sport_mask: u16::from_be(m.psrc),
            dport: u16::from_be(h.pdst),
            dport_mask: u16::from_be(m.pdst),
            queue,
        }
    };
    Ok(rule)
}

/// The ethtool flow spec of rule `r` at location `loc`.
fn spec_from_rule(r: &Rule, loc: u32) -> bindings::ethtool_rx_flow_spec {
    let mut fs: bindings::ethtool_rx_flow_spec = pin_init::zeroed();
    fs.flow_type = match (r.v6, r.l4) {
        (false, L4::Tcp) => bindings::TCP_V4_FLOW,
        (false, L4::Udp) => bindings::UDP_V4_FLOW,
        (true, L4::Tcp) => bindings::TCP_V6_FLOW,
        (true, L4::Udp) => bindings::UDP_V6_FLOW,
    };
    fs.ring_cookie = r.queue.into();
    fs.location = loc;
    if r.v6 {
        let (h, m) = (
            bindings::ethtool_tcpip6_spec {
                ip6src: ip_words(&r.src),
                ip6dst: ip_words(&r.dst),
                psrc: r.sport.to_be(),
                pdst: r.dport.to_be(),
                tclass: 0,
            },
            bindings::ethtool_tcpip6_spec {
                ip6src: ip_words(&r.src_mask),
                ip6dst: ip_words(&r.dst_mask),
                psrc: r.sport_mask.to_be(),
                pdst: r.dport_mask.to_be(),
                tclass: 0,
            },
        );
        fs.h_u.tcp_ip6_spec = h;
        fs.m_u.tcp_ip6_spec = m;
    } else {
        let (h, m) = (
            bindings::ethtool_tcpip4_spec {
                ip4src: ip_words(&r.src)[0],
                ip4dst: ip_words(&r.dst)[0],
                psrc: r.sport.to_be(),
                pdst: r.dport.to_be(),
                tos: 0,
            },
            bindings::ethtool_tcpip4_spec {
                ip4src: ip_words(&r.src_mask)[0],
                ip4dst: ip_words(&r.dst_mask)[0],
                psrc: r.sport_mask.to_be(),
                pdst: r.dport_mask.to_be(),
                tos: 0,
            },
        );
        fs.h_u.tcp_ip4_spec = h;
        fs.m_u.tcp_ip4_spec = m;
    }
    fs
}

/// `rule_locs` is the caller's array for GRXCLSRLALL (`rule_cnt` entries, none if it gave
/// no array), and empty for the other commands.
pub(crate) fn get_rxnfc(dev: &NetDev, nfc: &RxNfc, rule_locs: &mut [u32]) -> Result {
    let s = st(dev)?;
    s.with_steering(|steer| match nfc.cmd() {
        bindings::ETHTOOL_GRXCLSRLCNT => {
            nfc.set_rule_cnt(steer.rules.iter().flatten().count() as u32);
            nfc.set_data(NTUPLE_SLOTS as u64 | u64::from(bindings::RX_CLS_LOC_SPECIAL));
            Ok(())
        }
        bindings::ETHTOOL_GRXCLSRULE => {
            let loc = nfc.location();
            match steer.rules.get(loc as usize).copied().flatten() {
                Some(r) => {
                    nfc.set_flow_spec(spec_from_rule(&r, loc));
                    Ok(())
                }
                None => Err(ENOENT),
            }
        }
        bindings::ETHTOOL_GRXCLSRLALL => {
            let mut n = 0usize;
            for (loc, _) in steer.rules.iter().enumerate().filter(|(_, r)| r.is_some()) {
                let Some(slot) = rule_locs.get_mut(n) else {
                    return Err(EMSGSIZE);
                };
                *slot = loc as u32;
                n += 1;
            }
            nfc.set_rule_cnt(n as u32);
            nfc.set_data(NTUPLE_SLOTS as u64);
            Ok(())
        }
        _ => Err(EOPNOTSUPP),
    })
}

pub(crate) fn set_rxnfc(dev: &NetDev, nfc: &RxNfc) -> Result {
    let s = st(dev)?;
    match nfc.cmd() {
        bindings::ETHTOOL_SRXCLSRLINS => {
            if s.dev().features() & NETIF_F_NTUPLE == 0 {
                pr_info!("netgpu-sim: ntuple filters are off (ethtool -K DEV ntuple on)\n");
                return Err(EOPNOTSUPP);
            }
            let rule = rule_from_spec(&nfc.flow_spec(), s.dev().real_rx())?;
            let mut chosen = 0u32;
            let loc = nfc.location();
            s.update_steering(|steer| {
                let free = |rev: bool| {
                    let mut it = steer
                        .rules
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.is_none())
                        .map(|(i, _)| i);
                    if rev {
                        it.next_back()
                    } else {
                        it.next()
                    }
                };
                let slot = match loc {
                    bindings::RX_CLS_LOC_ANY | bindings::RX_CLS_LOC_FIRST => {
                        free(false).ok_or(ENOSPC)?
                    }
                    bindings::RX_CLS_LOC_LAST => free(true).ok_or(ENOSPC)?,
                    l if (l as usize) < NTUPLE_SLOTS => l as usize,
                    _ => return Err(EINVAL),
                };
                steer.rules[slot] = Some(rule);
                chosen = slot as u32;
                Ok(())
            })?;
            nfc.set_location(chosen);
            Ok(())
        }
        bindings::ETHTOOL_SRXCLSRLDEL => {
            let loc = nfc.location() as usize;
            s.update_steering(|steer| match steer.rules.get_mut(loc) {
                Some(slot @ Some(_)) => {
                    *slot = None;
                    Ok(())
                }
                _ => Err(ENOENT),
            })
        }
        _ => Err(EOPNOTSUPP),
    }
}

/// Drops all ntuple rules (when the ntuple feature is turned off).
pub(crate) fn flush_rules(s: &PortState) -> Result {
    s.update_steering(|steer| {
        steer.rules = [None; NTUPLE_SLOTS];
        Ok(())
    })
}

/// `indir` and `key` are the caller's arrays, if it asked for them.
pub(crate) fn get_rxfh(
    dev: &NetDev,
    p: &mut bindings::ethtool_rxfh_param,
    indir: Option<&mut [u32; RSS_INDIR_LEN]>,
    key: Option<&mut [u8; RSS_KEY_LEN]>,
) -> Result {
    let s = st(dev)?;
    p.hfunc = ETH_RSS_HASH_TOP;
    s.with_steering(|steer| {
        if let Some(indir) = indir {
            *indir = steer.indir;
        }
        if let Some(key) = key {
            *key = steer.key;
        }
    });
    Ok(())
}

/// `indir` and `key` are the new table and key, if the caller changes them; the core
/// checked the entries of `indir` against the ring count.
pub(crate) fn set_rxfh(
    dev: &NetDev,
    p: &bindings::ethtool_rxfh_param,
    indir: Option<&[u32; RSS_INDIR_LEN]>,
    key: Option<&[u8; RSS_KEY_LEN]>,
) -> Result {
    let s = st(dev)?;
    if p.hfunc != 0 && p.hfunc != ETH_RSS_HASH_TOP {
        return Err(EOPNOTSUPP);
    }
    if p.rss_context != 0 {
        return Err(EOPNOTSUPP);
    }
    let indir = indir.copied();
    let key = key.copied();
    s.update_steering(|steer| {
        if let Some(indir) = indir {
            steer.indir = indir;
            steer.indir_user = true;
        }
        if let Some(key) = key {
            steer.key = key;
        }
        Ok(())
    })
}

pub(crate) fn get_rxfh_fields(f: &mut bindings::ethtool_rxfh_fields) {
    let ip = bindings::RXH_IP_SRC | bindings::RXH_IP_DST;
    f.data = match f.flow_type {
        bindings::TCP_V4_FLOW
        | bindings::UDP_V4_FLOW
        | bindings::TCP_V6_FLOW
        | bindings::UDP_V6_FLOW => ip | bindings::RXH_L4_B_0_1 | bindings::RXH_L4_B_2_3,
        _ => ip,
    };
}

fn nqueues(dev: &NetDev) -> (usize, usize) {
    (dev.num_rx() as usize, dev.num_tx() as usize)
}

pub(crate) fn get_sset_count(dev: &NetDev, sset: c_int) -> c_int {
    if sset != bindings::ethtool_stringset_ETH_SS_STATS as c_int {
        return EOPNOTSUPP.to_errno();
    }
    let (rx, tx) = nqueues(dev);
    (rx * RX_STATS.len() + tx * TX_STATS.len() + DEV_STATS.len()) as c_int
}

/// Writes the next string of `get_strings` into the next slot of `slots`.
fn put_string<'a>(
    slots: &mut impl Iterator<Item = &'a mut [u8; ETH_GSTRING_LEN]>,
    args: core::fmt::Arguments<'_>,
) {
    let mut buf = [0u8; ETH_GSTRING_LEN];
    let mut w = kernel::str::Formatter::new(&mut buf);
    // Names longer than the slot are cut, as ethtool_sprintf does.
    let _ = core::fmt::write(&mut w, args);
    buf[ETH_GSTRING_LEN - 1] = 0;
    // There are `get_sset_count` slots, and we write exactly that many strings.
    if let Some(slot) = slots.next() {
        *slot = buf;
    }
}

/// `data` has a slot for each of `get_sset_count(dev, sset)` strings.
pub(crate) fn get_strings(dev: &NetDev, sset: u32, data: &mut [[u8; ETH_GSTRING_LEN]]) {
    if sset != bindings::ethtool_stringset_ETH_SS_STATS {
        return;
    }
    let (rx, tx) = nqueues(dev);
    let mut p = data.iter_mut();
    for q in 0..rx {
        for name in RX_STATS {
            put_string(&mut p, fmt!("rx{q}_{name}"));
        }
    }
    for q in 0..tx {
        for name in TX_STATS {
            put_string(&mut p, fmt!("tx{q}_{name}"));
        }
    }
    for name in DEV_STATS {
        put_string(&mut p, fmt!("{name}"));
    }
}

/// `data` has a slot for each of the `get_sset_count` counters.
pub(crate) fn get_ethtool_stats(dev: &NetDev, data: &mut [u64]) {
    let Ok(s) = st(dev) else { return };
    let mut vals = KVec::new();
    for q in s.rxqs.iter() {
        let x = q.stats();
        for v in [
            &x.packets,
            &x.bytes,
            &x.split,
            &x.split_bytes,
            &x.unreadable,
            &x.by_rule,
            &x.ring_full,
            &x.alloc_fail,
            &x.dma_ns,
            &x.driver_ns,
            &x.engine_ns,
            &x.hw_gro_packets,
            &x.hw_gro_wire_packets,
            &x.irqs,
            &x.buffer_waits,
            &x.cq_waits,
        ] {
            if vals.push(v.load(Ordering::Relaxed), GFP_KERNEL).is_err() {
                return;
            }
        }
    }
    for t in s.txqs.iter() {
        for v in [
            &t.packets,
            &t.bytes,
            &t.drops,
            &t.stops,
            &t.hw_gso_packets,
            &t.hw_gso_wire_packets,
        ] {
            if vals.push(v.load(Ordering::Relaxed), GFP_KERNEL).is_err() {
                return;
            }
        }
    }
    if vals
        .push(s.reconfig_drops.load(Ordering::Relaxed), GFP_KERNEL)
        .is_err()
    {
        return;
    }
    // `data` has `get_sset_count` slots, which is `vals.len()`.
    for (d, v) in data.iter_mut().zip(vals.iter()) {
        *d = *v;
    }
}

// ---- netdev netlink queue stats ----

/// Writes the sums of `stats` into a qstats RX struct (the fields we report).
fn put_rx<'a>(out: &mut bindings::netdev_queue_stats_rx, stats: impl Iterator<Item = &'a RxStats>) {
    let (mut p, mut b, mut a, mut d) = (0, 0, 0, 0);
    let (mut gp, mut gb, mut gwp, mut gwb) = (0, 0, 0, 0);
    for x in stats {
        p += x.packets.load(Ordering::Relaxed);
        b += x.bytes.load(Ordering::Relaxed);
        a += x.alloc_fail.load(Ordering::Relaxed);
        d += x.ring_full.load(Ordering::Relaxed);
        gp += x.hw_gro_packets.load(Ordering::Relaxed);
        gb += x.hw_gro_bytes.load(Ordering::Relaxed);
        gwp += x.hw_gro_wire_packets.load(Ordering::Relaxed);
        gwb += x.hw_gro_wire_bytes.load(Ordering::Relaxed);
    }
    (out.packets, out.bytes, out.alloc_fail, out.hw_drops) = (p, b, a, d);
    (out.hw_gro_packets, out.hw_gro_bytes) = (gp, gb);
    (out.hw_gro_wire_packets, out.hw_gro_wire_bytes) = (gwp, gwb);
}

/// Writes the sums of `stats` into a qstats TX struct.
fn put_tx<'a>(out: &mut bindings::netdev_queue_stats_tx, stats: impl Iterator<Item = &'a TxStats>) {
    let (mut p, mut b, mut d, mut st) = (0, 0, 0, 0);
    let (mut gp, mut gb, mut gwp, mut gwb) = (0, 0, 0, 0);
    for t in stats {
        p += t.packets.load(Ordering::Relaxed);
        b += t.bytes.load(Ordering::Relaxed);
        d += t.drops.load(Ordering::Relaxed);
        st += t.stops.load(Ordering::Relaxed);
        gp += t.hw_gso_packets.load(Ordering::Relaxed);
        gb += t.hw_gso_bytes.load(Ordering::Relaxed);
        gwp += t.hw_gso_wire_packets.load(Ordering::Relaxed);
        gwb += t.hw_gso_wire_bytes.load(Ordering::Relaxed);
    }
    (out.packets, out.bytes, out.hw_drops, out.stop) = (p, b, d, st);
    (out.hw_gso_packets, out.hw_gso_bytes) = (gp, gb);
    (out.hw_gso_wire_packets, out.hw_gso_wire_bytes) = (gwp, gwb);
}

pub(crate) fn get_queue_stats_rx(
    dev: &NetDev,
    idx: c_int,
    out: &mut bindings::netdev_queue_stats_rx,
) {
    let Ok(s) = st(dev) else { return };
    if let Some(q) = usize::try_from(idx).ok().and_then(|i| s.rxqs.get(i)) {
        put_rx(out, core::iter::once(q.stats()));
    }
}

pub(crate) fn get_queue_stats_tx(
    dev: &NetDev,
    idx: c_int,
    out: &mut bindings::netdev_queue_stats_tx,
) {
    let Ok(s) = st(dev) else { return };
    if let Some(t) = usize::try_from(idx).ok().and_then(|i| s.txqs.get(i)) {
        put_tx(out, core::iter::once(t));
    }
}

pub(crate) fn get_base_stats(
    dev: &NetDev,
    rx: &mut bindings::netdev_queue_stats_rx,
    tx: &mut bindings::netdev_queue_stats_tx,
) {
    let Ok(s) = st(dev) else { return };
    // The base is what inactive queues counted, so that device totals add up.
    let inactive_rx = s
        .rxqs
        .iter()
        .skip(s.dev().real_rx() as usize)
        .map(|q| q.stats());
    put_rx(rx, inactive_rx);
    // Drops at no queue count in the base too.
    rx.hw_drops += s.reconfig_drops.load(Ordering::Relaxed);
    put_tx(tx, s.txqs.iter().skip(s.dev().real_tx() as usize));
}
