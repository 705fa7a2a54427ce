// SPDX-License-Identifier: GPL-2.0

//! ethtool and queue statistics of netgpu-sim: ring sizes and header/data split (`-G`),
//! channels (`-L`), ntuple rules (`-N`), RSS indirection and key (`-X`), per-queue counters
//! (`-S`), and the netdev netlink qstats.
//!
//! Called under the netdev instance lock (and rtnl for channels, see `op_needs_rtnl`),
//! which serializes every writer of the port's configuration.

use core::ffi::c_int;
use core::sync::atomic::Ordering;

use kernel::bindings;
use kernel::prelude::*;

use crate::flow::{Rule, L4, NTUPLE_SLOTS, RSS_INDIR_LEN, RSS_KEY_LEN};
use crate::port::{self, Ops, PortState, TxStats, MAX_MTU, MAX_RING, MIN_RING, NETIF_F_NTUPLE};
use crate::rxq::RxStats;

const ETH_GSTRING_LEN: usize = bindings::ETH_GSTRING_LEN as usize;
const ETH_RSS_HASH_TOP: u8 = 1 << bindings::ETH_RSS_HASH_TOP_BIT;
/// `ETHTOOL_OP_NEEDS_RTNL_SCHANNELS`: `netif_set_real_num_tx_queues` needs rtnl.
const OP_NEEDS_RTNL_SCHANNELS: u32 = 1 << 3;
const HDS_UNKNOWN: u8 = bindings::ethtool_tcp_data_split_ETHTOOL_TCP_DATA_SPLIT_UNKNOWN as u8;
const HDS_ENABLED: u8 = bindings::ethtool_tcp_data_split_ETHTOOL_TCP_DATA_SPLIT_ENABLED as u8;

const RX_STATS: [&str; 9] = [
    "packets",
    "bytes",
    "hds_packets",
    "hds_bytes",
    "unreadable_packets",
    "ntuple_packets",
    "ring_full_drops",
    "alloc_fail_drops",
    "dma_ns",
];
const TX_STATS: [&str; 4] = ["packets", "bytes", "drops", "stops"];
/// Device-wide counters, after the per-queue ones.
const DEV_STATS: [&str; 1] = ["rx_reconfig_drops"];

fn st<'a>(dev: *mut bindings::net_device) -> Result<&'a PortState> {
    port::state(dev).ok_or(ENODEV)
}

fn errno(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

extern "C" fn get_drvinfo(_dev: *mut bindings::net_device, info: *mut bindings::ethtool_drvinfo) {
    let name = crate::port::KIND.to_bytes();
    // SAFETY: `info` is valid; `driver` has 32 bytes and `name` is shorter.
    let driver = unsafe { &mut (*info).driver };
    for (d, s) in driver.iter_mut().zip(name.iter()) {
        *d = *s;
    }
}

extern "C" fn get_ringparam(
    dev: *mut bindings::net_device,
    ring: *mut bindings::ethtool_ringparam,
    kring: *mut bindings::kernel_ethtool_ringparam,
    _extack: *mut bindings::netlink_ext_ack,
) {
    let Ok(s) = st(dev) else { return };
    // SAFETY: the core passes valid structs.
    let (ring, kring) = unsafe { (&mut *ring, &mut *kring) };
    ring.rx_max_pending = MAX_RING;
    ring.tx_max_pending = MAX_RING;
    ring.rx_pending = s.rings.rx.load(Ordering::Relaxed);
    ring.tx_pending = s.rings.tx.load(Ordering::Relaxed);
    kring.tcp_data_split = s.rings.hds.load(Ordering::Relaxed);
    kring.hds_thresh = s.rings.hds_thresh.load(Ordering::Relaxed);
    kring.hds_thresh_max = MAX_MTU;
}

extern "C" fn set_ringparam(
    dev: *mut bindings::net_device,
    ring: *mut bindings::ethtool_ringparam,
    kring: *mut bindings::kernel_ethtool_ringparam,
    _extack: *mut bindings::netlink_ext_ack,
) -> c_int {
    let Ok(s) = st(dev) else {
        return ENODEV.to_errno();
    };
    // SAFETY: the core passes valid structs.
    let (ring, kring) = unsafe { (&*ring, &*kring) };
    if ring.rx_pending < MIN_RING || ring.tx_pending < MIN_RING {
        pr_info!("netgpu-sim: rings need at least {MIN_RING} entries\n");
        return EINVAL.to_errno();
    }
    if ring.rx_mini_pending != 0 || ring.rx_jumbo_pending != 0 {
        return EINVAL.to_errno();
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
    0
}

extern "C" fn get_channels(dev: *mut bindings::net_device, ch: *mut bindings::ethtool_channels) {
    let Ok(s) = st(dev) else { return };
    let d = s.dev();
    // SAFETY: the core passes a valid struct.
    let ch = unsafe { &mut *ch };
    ch.max_combined = d.num_rx().min(d.num_tx());
    ch.combined_count = d.real_rx().min(d.real_tx());
}

extern "C" fn set_channels(
    dev: *mut bindings::net_device,
    ch: *mut bindings::ethtool_channels,
) -> c_int {
    errno(set_channels_inner(dev, ch))
}

fn set_channels_inner(
    dev: *mut bindings::net_device,
    ch: *mut bindings::ethtool_channels,
) -> Result {
    let s = st(dev)?;
    // SAFETY: valid struct.
    let ch = unsafe { &*ch };
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

extern "C" fn get_rx_ring_count(dev: *mut bindings::net_device) -> u32 {
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
    // SAFETY: the union variant is chosen by `flow_type`, checked above; both variants are
    // plain integers.
    let rule = unsafe {
        if v6 {
            let (h, m) = (&fs.h_u.tcp_ip6_spec, &fs.m_u.tcp_ip6_spec);
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
            let (h, m) = (&fs.h_u.tcp_ip4_spec, &fs.m_u.tcp_ip4_spec);
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
        }
    };
    Ok(rule)
}

fn spec_from_rule(r: &Rule, loc: u32, fs: &mut bindings::ethtool_rx_flow_spec) {
    // SAFETY: all-zero is a valid flow spec.
    *fs = unsafe { core::mem::zeroed() };
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
}

extern "C" fn get_rxnfc(
    dev: *mut bindings::net_device,
    nfc: *mut bindings::ethtool_rxnfc,
    rule_locs: *mut u32,
) -> c_int {
    let Ok(s) = st(dev) else {
        return ENODEV.to_errno();
    };
    // SAFETY: the core passes a valid struct; `rule_locs` has `rule_cnt` entries for
    // GRXCLSRLALL.
    let nfc = unsafe { &mut *nfc };
    s.with_steering(|steer| match nfc.cmd {
        bindings::ETHTOOL_GRXCLSRLCNT => {
            nfc.__bindgen_anon_1.rule_cnt = steer.rules.iter().flatten().count() as u32;
            nfc.data = NTUPLE_SLOTS as u64 | u64::from(bindings::RX_CLS_LOC_SPECIAL);
            0
        }
        bindings::ETHTOOL_GRXCLSRULE => {
            let loc = nfc.fs.location;
            match steer.rules.get(loc as usize).copied().flatten() {
                Some(r) => {
                    spec_from_rule(&r, loc, &mut nfc.fs);
                    0
                }
                None => ENOENT.to_errno(),
            }
        }
        bindings::ETHTOOL_GRXCLSRLALL => {
            // SAFETY: reading the union member the core set.
            let room = unsafe { nfc.__bindgen_anon_1.rule_cnt } as usize;
            let mut n = 0usize;
            for (loc, _) in steer.rules.iter().enumerate().filter(|(_, r)| r.is_some()) {
                if n == room || rule_locs.is_null() {
                    return EMSGSIZE.to_errno();
                }
                // SAFETY: `n` < `room`, the size of the caller's array.
                unsafe { *rule_locs.add(n) = loc as u32 };
                n += 1;
            }
            nfc.__bindgen_anon_1.rule_cnt = n as u32;
            nfc.data = NTUPLE_SLOTS as u64;
            0
        }
        _ => EOPNOTSUPP.to_errno(),
    })
}

extern "C" fn set_rxnfc(
    dev: *mut bindings::net_device,
    nfc: *mut bindings::ethtool_rxnfc,
) -> c_int {
    errno(set_rxnfc_inner(dev, nfc))
}

fn set_rxnfc_inner(dev: *mut bindings::net_device, nfc: *mut bindings::ethtool_rxnfc) -> Result {
    let s = st(dev)?;
    // SAFETY: valid struct from the core.
    let nfc = unsafe { &mut *nfc };
    match nfc.cmd {
        bindings::ETHTOOL_SRXCLSRLINS => {
            if s.dev().features() & NETIF_F_NTUPLE == 0 {
                pr_info!("netgpu-sim: ntuple filters are off (ethtool -K DEV ntuple on)\n");
                return Err(EOPNOTSUPP);
            }
            let rule = rule_from_spec(&nfc.fs, s.dev().real_rx())?;
            let mut chosen = 0u32;
            let loc = nfc.fs.location;
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
            nfc.fs.location = chosen;
            Ok(())
        }
        bindings::ETHTOOL_SRXCLSRLDEL => {
            let loc = nfc.fs.location as usize;
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

extern "C" fn get_rxfh_key_size(_dev: *mut bindings::net_device) -> u32 {
    RSS_KEY_LEN as u32
}

extern "C" fn get_rxfh_indir_size(_dev: *mut bindings::net_device) -> u32 {
    RSS_INDIR_LEN as u32
}

extern "C" fn get_rxfh(
    dev: *mut bindings::net_device,
    p: *mut bindings::ethtool_rxfh_param,
) -> c_int {
    let Ok(s) = st(dev) else {
        return ENODEV.to_errno();
    };
    // SAFETY: valid struct; `indir` and `key` are null or sized by our size callbacks.
    let p = unsafe { &mut *p };
    p.hfunc = ETH_RSS_HASH_TOP;
    s.with_steering(|steer| {
        if !p.indir.is_null() {
            // SAFETY: see above.
            unsafe { core::ptr::copy_nonoverlapping(steer.indir.as_ptr(), p.indir, RSS_INDIR_LEN) };
        }
        if !p.key.is_null() {
            // SAFETY: see above.
            unsafe { core::ptr::copy_nonoverlapping(steer.key.as_ptr(), p.key, RSS_KEY_LEN) };
        }
    });
    0
}

extern "C" fn set_rxfh(
    dev: *mut bindings::net_device,
    p: *mut bindings::ethtool_rxfh_param,
    _extack: *mut bindings::netlink_ext_ack,
) -> c_int {
    errno(set_rxfh_inner(dev, p))
}

fn set_rxfh_inner(dev: *mut bindings::net_device, p: *mut bindings::ethtool_rxfh_param) -> Result {
    let s = st(dev)?;
    // SAFETY: valid struct; arrays null or of our sizes, entries checked by the core
    // against the ring count.
    let p = unsafe { &*p };
    if p.hfunc != 0 && p.hfunc != ETH_RSS_HASH_TOP {
        return Err(EOPNOTSUPP);
    }
    if p.rss_context != 0 {
        return Err(EOPNOTSUPP);
    }
    let mut indir = [0u32; RSS_INDIR_LEN];
    let mut key = [0u8; RSS_KEY_LEN];
    if !p.indir.is_null() {
        // SAFETY: see above.
        unsafe { core::ptr::copy_nonoverlapping(p.indir, indir.as_mut_ptr(), RSS_INDIR_LEN) };
    }
    if !p.key.is_null() {
        // SAFETY: see above.
        unsafe { core::ptr::copy_nonoverlapping(p.key, key.as_mut_ptr(), RSS_KEY_LEN) };
    }
    s.update_steering(|steer| {
        if !p.indir.is_null() {
            steer.indir = indir;
            steer.indir_user = true;
        }
        if !p.key.is_null() {
            steer.key = key;
        }
        Ok(())
    })
}

extern "C" fn get_rxfh_fields(
    _dev: *mut bindings::net_device,
    f: *mut bindings::ethtool_rxfh_fields,
) -> c_int {
    // SAFETY: valid struct.
    let f = unsafe { &mut *f };
    let ip = bindings::RXH_IP_SRC | bindings::RXH_IP_DST;
    f.data = match f.flow_type {
        bindings::TCP_V4_FLOW
        | bindings::UDP_V4_FLOW
        | bindings::TCP_V6_FLOW
        | bindings::UDP_V6_FLOW => ip | bindings::RXH_L4_B_0_1 | bindings::RXH_L4_B_2_3,
        _ => ip,
    };
    0
}

fn nqueues(dev: *mut bindings::net_device) -> (usize, usize) {
    // SAFETY: valid device.
    unsafe { ((*dev).num_rx_queues as usize, (*dev).num_tx_queues as usize) }
}

extern "C" fn get_sset_count(dev: *mut bindings::net_device, sset: c_int) -> c_int {
    if sset != bindings::ethtool_stringset_ETH_SS_STATS as c_int {
        return EOPNOTSUPP.to_errno();
    }
    let (rx, tx) = nqueues(dev);
    (rx * RX_STATS.len() + tx * TX_STATS.len() + DEV_STATS.len()) as c_int
}

fn put_string(data: &mut *mut u8, args: core::fmt::Arguments<'_>) {
    let mut buf = [0u8; ETH_GSTRING_LEN];
    let mut w = kernel::str::Formatter::new(&mut buf);
    // Names longer than the slot are cut, as ethtool_sprintf does.
    let _ = core::fmt::write(&mut w, args);
    buf[ETH_GSTRING_LEN - 1] = 0;
    // SAFETY: the core sized `data` with `get_sset_count` slots of ETH_GSTRING_LEN bytes,
    // and we write exactly that many slots.
    unsafe {
        core::ptr::copy_nonoverlapping(buf.as_ptr(), *data, ETH_GSTRING_LEN);
        *data = data.add(ETH_GSTRING_LEN);
    }
}

extern "C" fn get_strings(dev: *mut bindings::net_device, sset: u32, data: *mut u8) {
    if sset != bindings::ethtool_stringset_ETH_SS_STATS {
        return;
    }
    let (rx, tx) = nqueues(dev);
    let mut p = data;
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

extern "C" fn get_ethtool_stats(
    dev: *mut bindings::net_device,
    _stats: *mut bindings::ethtool_stats,
    data: *mut u64,
) {
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
        ] {
            if vals.push(v.load(Ordering::Relaxed), GFP_KERNEL).is_err() {
                return;
            }
        }
    }
    for t in s.txqs.iter() {
        for v in [&t.packets, &t.bytes, &t.drops, &t.stops] {
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
    // SAFETY: the core sized `data` with `get_sset_count` u64 slots, which is `vals.len()`.
    unsafe { core::ptr::copy_nonoverlapping(vals.as_ptr(), data, vals.len()) };
}

static ETHTOOL_OPS: Ops<bindings::ethtool_ops> = Ops(bindings::ethtool_ops {
    supported_ring_params: bindings::ethtool_supported_ring_param_ETHTOOL_RING_USE_TCP_DATA_SPLIT
        | bindings::ethtool_supported_ring_param_ETHTOOL_RING_USE_HDS_THRS,
    op_needs_rtnl: OP_NEEDS_RTNL_SCHANNELS,
    get_drvinfo: Some(get_drvinfo),
    get_link: Some(bindings::ethtool_op_get_link),
    get_ringparam: Some(get_ringparam),
    set_ringparam: Some(set_ringparam),
    get_channels: Some(get_channels),
    set_channels: Some(set_channels),
    get_rxnfc: Some(get_rxnfc),
    set_rxnfc: Some(set_rxnfc),
    get_rx_ring_count: Some(get_rx_ring_count),
    get_rxfh_key_size: Some(get_rxfh_key_size),
    get_rxfh_indir_size: Some(get_rxfh_indir_size),
    get_rxfh: Some(get_rxfh),
    set_rxfh: Some(set_rxfh),
    get_rxfh_fields: Some(get_rxfh_fields),
    get_sset_count: Some(get_sset_count),
    get_strings: Some(get_strings),
    get_ethtool_stats: Some(get_ethtool_stats),
    // SAFETY: all-zero is valid for the remaining fields.
    ..unsafe { core::mem::zeroed() }
});

pub(crate) fn ops() -> *const bindings::ethtool_ops {
    &ETHTOOL_OPS.0
}

// ---- netdev netlink queue stats ----

/// Writes the sums of `stats` into a qstats RX struct (the fields we report).
fn put_rx<'a>(out: &mut bindings::netdev_queue_stats_rx, stats: impl Iterator<Item = &'a RxStats>) {
    let (mut p, mut b, mut a, mut d) = (0, 0, 0, 0);
    for x in stats {
        p += x.packets.load(Ordering::Relaxed);
        b += x.bytes.load(Ordering::Relaxed);
        a += x.alloc_fail.load(Ordering::Relaxed);
        d += x.ring_full.load(Ordering::Relaxed);
    }
    (out.packets, out.bytes, out.alloc_fail, out.hw_drops) = (p, b, a, d);
}

/// Writes the sums of `stats` into a qstats TX struct.
fn put_tx<'a>(out: &mut bindings::netdev_queue_stats_tx, stats: impl Iterator<Item = &'a TxStats>) {
    let (mut p, mut b, mut d, mut st) = (0, 0, 0, 0);
    for t in stats {
        p += t.packets.load(Ordering::Relaxed);
        b += t.bytes.load(Ordering::Relaxed);
        d += t.drops.load(Ordering::Relaxed);
        st += t.stops.load(Ordering::Relaxed);
    }
    (out.packets, out.bytes, out.hw_drops, out.stop) = (p, b, d, st);
}

extern "C" fn get_queue_stats_rx(
    dev: *mut bindings::net_device,
    idx: c_int,
    out: *mut bindings::netdev_queue_stats_rx,
) {
    let Ok(s) = st(dev) else { return };
    if let Some(q) = usize::try_from(idx).ok().and_then(|i| s.rxqs.get(i)) {
        // SAFETY: valid struct from the core.
        put_rx(unsafe { &mut *out }, core::iter::once(q.stats()));
    }
}

extern "C" fn get_queue_stats_tx(
    dev: *mut bindings::net_device,
    idx: c_int,
    out: *mut bindings::netdev_queue_stats_tx,
) {
    let Ok(s) = st(dev) else { return };
    if let Some(t) = usize::try_from(idx).ok().and_then(|i| s.txqs.get(i)) {
        // SAFETY: valid struct from the core.
        put_tx(unsafe { &mut *out }, core::iter::once(t));
    }
}

extern "C" fn get_base_stats(
    dev: *mut bindings::net_device,
    rx: *mut bindings::netdev_queue_stats_rx,
    tx: *mut bindings::netdev_queue_stats_tx,
) {
    let Ok(s) = st(dev) else { return };
    // The base is what inactive queues counted, so that device totals add up.
    let inactive_rx = s
        .rxqs
        .iter()
        .skip(s.dev().real_rx() as usize)
        .map(|q| q.stats());
    // SAFETY: valid structs from the core.
    let rx = unsafe { &mut *rx };
    put_rx(rx, inactive_rx);
    // Drops at no queue count in the base too.
    rx.hw_drops += s.reconfig_drops.load(Ordering::Relaxed);
    // SAFETY: as above.
    put_tx(
        unsafe { &mut *tx },
        s.txqs.iter().skip(s.dev().real_tx() as usize),
    );
}

static STAT_OPS: Ops<bindings::netdev_stat_ops> = Ops(bindings::netdev_stat_ops {
    get_queue_stats_rx: Some(get_queue_stats_rx),
    get_queue_stats_tx: Some(get_queue_stats_tx),
    get_base_stats: Some(get_base_stats),
});

pub(crate) fn stat_ops() -> *const bindings::netdev_stat_ops {
    &STAT_OPS.0
}
