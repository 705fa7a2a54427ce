// SPDX-License-Identifier: GPL-2.0

//! The C side of netgpu-sim's ethtool and queue statistics: the `ethtool_ops` and
//! `netdev_stat_ops` tables, and their callbacks, which turn the core's raw pointers into
//! references and slices once and call the safe functions of [`crate::ethtool`]. Also the
//! accessors of C unions and of `ethtool_rxnfc` those functions need.
//!
//! This is the only unsafe code of the ethtool path.

use core::ffi::c_int;

use kernel::bindings;
use kernel::prelude::*;
use kernel::types::Opaque;

use crate::ethtool::{self, ETH_GSTRING_LEN};
use crate::flow::{RSS_INDIR_LEN, RSS_KEY_LEN};
use crate::netdev::NetDev;
use crate::port_ops::Ops;

/// `ETHTOOL_OP_NEEDS_RTNL_SCHANNELS`: `netif_set_real_num_tx_queues` needs rtnl.
const OP_NEEDS_RTNL_SCHANNELS: u32 = 1 << 3;

fn errno(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// A `struct ethtool_rxnfc`, without the `rule_locs` array that may follow it.
///
/// The core may allocate `rule_locs` together with the struct (`kvzalloc_flex`), and then
/// the array starts in the struct's tail padding. So the struct is read and written field
/// by field and never through a reference to all of it, which lets a slice of `rule_locs`
/// live next to it.
///
/// # Invariants
///
/// The wrapped struct is valid for reads and writes for as long as the reference lives.
#[repr(transparent)]
pub(crate) struct RxNfc(Opaque<bindings::ethtool_rxnfc>);

impl RxNfc {
    /// Wraps the `ethtool_rxnfc` of a callback.
    ///
    /// # Safety
    ///
    /// `ptr` points to an `ethtool_rxnfc` valid for reads and writes for `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::ethtool_rxnfc) -> &'a RxNfc {
        // SAFETY: `RxNfc` is a transparent wrapper; validity is the caller's promise.
        unsafe { &*ptr.cast() }
    }

    pub(crate) fn cmd(&self) -> u32 {
        // SAFETY: the struct is valid (type invariant).
        unsafe { (*self.0.get()).cmd }
    }

    /// The `rule_cnt` member of the union after `fs`.
    pub(crate) fn rule_cnt(&self) -> u32 {
        // SAFETY: the struct is valid (type invariant); both members of the union are
        // `u32`s, so either reads as a valid `rule_cnt`.
        unsafe { (*self.0.get()).__bindgen_anon_1.rule_cnt }
    }

    pub(crate) fn set_rule_cnt(&self, n: u32) {
        // SAFETY: the struct is valid (type invariant); only this field is written.
        unsafe { (*self.0.get()).__bindgen_anon_1.rule_cnt = n };
    }

    pub(crate) fn set_data(&self, data: u64) {
        // SAFETY: as above.
        unsafe { (*self.0.get()).data = data };
    }

    /// A copy of the flow spec.
    pub(crate) fn flow_spec(&self) -> bindings::ethtool_rx_flow_spec {
        // SAFETY: the struct is valid (type invariant).
        unsafe { (*self.0.get()).fs }
    }

    pub(crate) fn set_flow_spec(&self, fs: bindings::ethtool_rx_flow_spec) {
        // SAFETY: the struct is valid (type invariant); only `fs` is written.
        unsafe { (*self.0.get()).fs = fs };
    }

    /// The flow spec's `location`.
    pub(crate) fn location(&self) -> u32 {
        // SAFETY: the struct is valid (type invariant).
        unsafe { (*self.0.get()).fs.location }
    }

    pub(crate) fn set_location(&self, loc: u32) {
        // SAFETY: the struct is valid (type invariant); only this field is written.
        unsafe { (*self.0.get()).fs.location = loc };
    }
}

/// The header and mask of a TCP or UDP over IPv4 flow spec. `flow_type` tells whether they
/// mean anything.
pub(crate) fn tcp_ip4_spec(
    fs: &bindings::ethtool_rx_flow_spec,
) -> (
    &bindings::ethtool_tcpip4_spec,
    &bindings::ethtool_tcpip4_spec,
) {
    // SAFETY: every member of `ethtool_flow_union` is made of plain integers, valid for any
    // bit pattern, and all of the union's bytes are initialized (the core copies whole specs
    // from user space or zero-fills them, and as `hdata` spans the union, copies of a spec
    // keep every byte), so any member can be read whatever `flow_type` says.
    unsafe { (&fs.h_u.tcp_ip4_spec, &fs.m_u.tcp_ip4_spec) }
}

/// The header and mask of a TCP or UDP over IPv6 flow spec. `flow_type` tells whether they
/// mean anything.
pub(crate) fn tcp_ip6_spec(
    fs: &bindings::ethtool_rx_flow_spec,
) -> (
    &bindings::ethtool_tcpip6_spec,
    &bindings::ethtool_tcpip6_spec,
) {
    // SAFETY: as in `tcp_ip4_spec`.
    unsafe { (&fs.h_u.tcp_ip6_spec, &fs.m_u.tcp_ip6_spec) }
}

// ---- ethtool ops ----
//
// The core calls these for a device it holds, under the locks the module docs of
// `crate::ethtool` name, with pointers to structs (and arrays) that are valid, and ours
// alone, for the duration of the call.

/// # Safety
///
/// Called by the ethtool core as `get_drvinfo`, with a valid `info`.
unsafe extern "C" fn get_drvinfo(
    _dev: *mut bindings::net_device,
    info: *mut bindings::ethtool_drvinfo,
) {
    // SAFETY: the core passes a valid struct.
    ethtool::get_drvinfo(unsafe { &mut *info })
}

/// # Safety
///
/// Called by the ethtool core as `get_ringparam`, with its device and valid structs.
unsafe extern "C" fn get_ringparam(
    dev: *mut bindings::net_device,
    ring: *mut bindings::ethtool_ringparam,
    kring: *mut bindings::kernel_ethtool_ringparam,
    _extack: *mut bindings::netlink_ext_ack,
) {
    // SAFETY: the core passes its device and valid structs.
    let (dev, ring, kring) = unsafe { (NetDev::from_raw(dev), &mut *ring, &mut *kring) };
    ethtool::get_ringparam(dev, ring, kring)
}

/// # Safety
///
/// Called by the ethtool core as `set_ringparam`, with its device and valid structs.
unsafe extern "C" fn set_ringparam(
    dev: *mut bindings::net_device,
    ring: *mut bindings::ethtool_ringparam,
    kring: *mut bindings::kernel_ethtool_ringparam,
    _extack: *mut bindings::netlink_ext_ack,
) -> c_int {
    // SAFETY: the core passes its device and valid structs.
    let (dev, ring, kring) = unsafe { (NetDev::from_raw(dev), &*ring, &*kring) };
    errno(ethtool::set_ringparam(dev, ring, kring))
}

/// # Safety
///
/// Called by the ethtool core as `get_channels`, with its device and a valid `ch`.
unsafe extern "C" fn get_channels(
    dev: *mut bindings::net_device,
    ch: *mut bindings::ethtool_channels,
) {
    // SAFETY: the core passes its device and a valid struct.
    let (dev, ch) = unsafe { (NetDev::from_raw(dev), &mut *ch) };
    ethtool::get_channels(dev, ch)
}

/// # Safety
///
/// Called by the ethtool core as `set_channels`, with its device and a valid `ch`.
unsafe extern "C" fn set_channels(
    dev: *mut bindings::net_device,
    ch: *mut bindings::ethtool_channels,
) -> c_int {
    // SAFETY: the core passes its device and a valid struct.
    let (dev, ch) = unsafe { (NetDev::from_raw(dev), &*ch) };
    errno(ethtool::set_channels(dev, ch))
}

/// # Safety
///
/// Called by the ethtool core as `get_rx_ring_count`, with its device.
unsafe extern "C" fn get_rx_ring_count(dev: *mut bindings::net_device) -> u32 {
    // SAFETY: the core passes its device.
    ethtool::get_rx_ring_count(unsafe { NetDev::from_raw(dev) })
}

/// # Safety
///
/// Called by the ethtool core as `get_rxnfc`, with its device, a valid `nfc` and, for
/// `ETHTOOL_GRXCLSRLALL`, null or an array of `rule_cnt` entries at `rule_locs`.
unsafe extern "C" fn get_rxnfc(
    dev: *mut bindings::net_device,
    nfc: *mut bindings::ethtool_rxnfc,
    rule_locs: *mut u32,
) -> c_int {
    // SAFETY: the core passes its device and a valid struct.
    let (dev, nfc) = unsafe { (NetDev::from_raw(dev), RxNfc::from_raw(nfc)) };
    let room = if nfc.cmd() == bindings::ETHTOOL_GRXCLSRLALL && !rule_locs.is_null() {
        nfc.rule_cnt() as usize
    } else {
        0
    };
    let rule_locs: &mut [u32] = if room == 0 {
        &mut []
    } else {
        // SAFETY: for GRXCLSRLALL `rule_locs` has `rule_cnt` entries, not null as checked;
        // they are no field of `nfc` (`RxNfc` touches only its fields).
        unsafe { core::slice::from_raw_parts_mut(rule_locs, room) }
    };
    errno(ethtool::get_rxnfc(dev, nfc, rule_locs))
}

/// # Safety
///
/// Called by the ethtool core as `set_rxnfc`, with its device and a valid `nfc`.
unsafe extern "C" fn set_rxnfc(
    dev: *mut bindings::net_device,
    nfc: *mut bindings::ethtool_rxnfc,
) -> c_int {
    // SAFETY: the core passes its device and a valid struct.
    let (dev, nfc) = unsafe { (NetDev::from_raw(dev), RxNfc::from_raw(nfc)) };
    errno(ethtool::set_rxnfc(dev, nfc))
}

/// The size of the RSS key: what `get_rxfh` and `set_rxfh` find at `key`.
extern "C" fn get_rxfh_key_size(_dev: *mut bindings::net_device) -> u32 {
    RSS_KEY_LEN as u32
}

/// The size of the RSS indirection table: what `get_rxfh` and `set_rxfh` find at `indir`.
extern "C" fn get_rxfh_indir_size(_dev: *mut bindings::net_device) -> u32 {
    RSS_INDIR_LEN as u32
}

/// # Safety
///
/// Called by the ethtool core as `get_rxfh`, with its device and a valid `p`, whose `indir`
/// and `key` are null or arrays of the sizes our size callbacks report.
unsafe extern "C" fn get_rxfh(
    dev: *mut bindings::net_device,
    p: *mut bindings::ethtool_rxfh_param,
) -> c_int {
    // SAFETY: the core passes its device and a valid struct; `indir` and `key` are null or
    // sized by our size callbacks, and are neither `p` nor each other.
    let (dev, p, indir, key) = unsafe {
        let p = &mut *p;
        let indir = p.indir.cast::<[u32; RSS_INDIR_LEN]>().as_mut();
        let key = p.key.cast::<[u8; RSS_KEY_LEN]>().as_mut();
        (NetDev::from_raw(dev), p, indir, key)
    };
    errno(ethtool::get_rxfh(dev, p, indir, key))
}

/// # Safety
///
/// Called by the ethtool core as `set_rxfh`, with its device and a valid `p`, whose `indir`
/// and `key` are null or arrays of the sizes our size callbacks report.
unsafe extern "C" fn set_rxfh(
    dev: *mut bindings::net_device,
    p: *mut bindings::ethtool_rxfh_param,
    _extack: *mut bindings::netlink_ext_ack,
) -> c_int {
    // SAFETY: the core passes its device and a valid struct; `indir` and `key` are null or
    // sized by our size callbacks.
    let (dev, p, indir, key) = unsafe {
        let p = &*p;
        let indir = p.indir.cast::<[u32; RSS_INDIR_LEN]>().as_ref();
        let key = p.key.cast::<[u8; RSS_KEY_LEN]>().as_ref();
        (NetDev::from_raw(dev), p, indir, key)
    };
    errno(ethtool::set_rxfh(dev, p, indir, key))
}

/// # Safety
///
/// Called by the ethtool core as `get_rxfh_fields`, with a valid `f`.
unsafe extern "C" fn get_rxfh_fields(
    _dev: *mut bindings::net_device,
    f: *mut bindings::ethtool_rxfh_fields,
) -> c_int {
    // SAFETY: the core passes a valid struct.
    ethtool::get_rxfh_fields(unsafe { &mut *f });
    0
}

/// # Safety
///
/// Called by the ethtool core as `get_sset_count`, with its device.
unsafe extern "C" fn get_sset_count(dev: *mut bindings::net_device, sset: c_int) -> c_int {
    // SAFETY: the core passes its device.
    ethtool::get_sset_count(unsafe { NetDev::from_raw(dev) }, sset)
}

/// # Safety
///
/// Called by the ethtool core as `get_strings`, with its device and, at `data`, room for
/// `get_sset_count(dev, sset)` strings of `ETH_GSTRING_LEN` bytes.
unsafe extern "C" fn get_strings(dev: *mut bindings::net_device, sset: u32, data: *mut u8) {
    // SAFETY: the core passes its device.
    let dev = unsafe { NetDev::from_raw(dev) };
    let count = c_int::try_from(sset).map_or(0, |sset| ethtool::get_sset_count(dev, sset));
    let n = usize::try_from(count).unwrap_or(0);
    let data: &mut [[u8; ETH_GSTRING_LEN]] = if n == 0 || data.is_null() {
        &mut []
    } else {
        // SAFETY: the core sized `data` with `get_sset_count` slots of ETH_GSTRING_LEN
        // bytes, which is `n`.
        unsafe { core::slice::from_raw_parts_mut(data.cast(), n) }
    };
    ethtool::get_strings(dev, sset, data)
}

/// # Safety
///
/// Called by the ethtool core as `get_ethtool_stats`, with its device and, at `data`, room
/// for `get_sset_count(dev, ETH_SS_STATS)` counters.
unsafe extern "C" fn get_ethtool_stats(
    dev: *mut bindings::net_device,
    _stats: *mut bindings::ethtool_stats,
    data: *mut u64,
) {
    // SAFETY: the core passes its device.
    let dev = unsafe { NetDev::from_raw(dev) };
    let count = ethtool::get_sset_count(dev, bindings::ethtool_stringset_ETH_SS_STATS as c_int);
    let n = usize::try_from(count).unwrap_or(0);
    let data: &mut [u64] = if n == 0 || data.is_null() {
        &mut []
    } else {
        // SAFETY: the core sized `data` with `get_sset_count` u64 slots, which is `n`.
        unsafe { core::slice::from_raw_parts_mut(data, n) }
    };
    ethtool::get_ethtool_stats(dev, data)
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
    // All-zero for the remaining fields: no other callbacks or capabilities.
    ..pin_init::zeroed()
});

pub(crate) fn ops() -> *const bindings::ethtool_ops {
    &ETHTOOL_OPS.0
}

// ---- netdev netlink queue stats ----

/// # Safety
///
/// Called by the netdev netlink core as `get_queue_stats_rx`, with its device and a valid
/// `out`.
unsafe extern "C" fn get_queue_stats_rx(
    dev: *mut bindings::net_device,
    idx: c_int,
    out: *mut bindings::netdev_queue_stats_rx,
) {
    // SAFETY: the core passes its device and a valid struct.
    let (dev, out) = unsafe { (NetDev::from_raw(dev), &mut *out) };
    ethtool::get_queue_stats_rx(dev, idx, out)
}

/// # Safety
///
/// Called by the netdev netlink core as `get_queue_stats_tx`, with its device and a valid
/// `out`.
unsafe extern "C" fn get_queue_stats_tx(
    dev: *mut bindings::net_device,
    idx: c_int,
    out: *mut bindings::netdev_queue_stats_tx,
) {
    // SAFETY: the core passes its device and a valid struct.
    let (dev, out) = unsafe { (NetDev::from_raw(dev), &mut *out) };
    ethtool::get_queue_stats_tx(dev, idx, out)
}

/// # Safety
///
/// Called by the netdev netlink core as `get_base_stats`, with its device and valid,
/// distinct `rx` and `tx`.
unsafe extern "C" fn get_base_stats(
    dev: *mut bindings::net_device,
    rx: *mut bindings::netdev_queue_stats_rx,
    tx: *mut bindings::netdev_queue_stats_tx,
) {
    // SAFETY: the core passes its device and valid structs.
    let (dev, rx, tx) = unsafe { (NetDev::from_raw(dev), &mut *rx, &mut *tx) };
    ethtool::get_base_stats(dev, rx, tx)
}

static STAT_OPS: Ops<bindings::netdev_stat_ops> = Ops(bindings::netdev_stat_ops {
    get_queue_stats_rx: Some(get_queue_stats_rx),
    get_queue_stats_tx: Some(get_queue_stats_tx),
    get_base_stats: Some(get_base_stats),
});

pub(crate) fn stat_ops() -> *const bindings::netdev_stat_ops {
    &STAT_OPS.0
}
