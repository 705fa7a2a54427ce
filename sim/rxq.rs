// SPDX-License-Identifier: GPL-2.0

//! RX queues of netgpu-sim: the descriptor ring the peer's transmit posts frames to, the
//! NAPI poll that turns them into skbs like a header/data-split NIC, the page pools, and the
//! queue control: open, close, and the memory, start and stop of the queue management API
//! (`netdev_queue_mgmt_ops`) that memory providers use to restart a queue with their own
//! buffers. The API's C callbacks are in [`crate::queue_ops`]; the control methods call C
//! only through the wrappers of [`crate::netdev`] and the small helpers at the end of this
//! file.
//!
//! With header/data split on, the L2-L4 headers of a TCP or UDP frame go to a page from the
//! queue's header pool (the skb's linear part) and the payload to netmems from its data pool,
//! which may belong to a memory provider (devmem TCP, io_uring zcrx, netgpu). The payload is
//! written through the netmem's DMA address, the way a NIC's DMA engine would: resolve the
//! bus address to memory and copy from the wire. Without split, or for frames with nothing to
//! split, the whole frame lands in header pool pages.

use core::ffi::c_int;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::rcu;
use kernel::types::Opaque;

use crate::coalesce::{Run, Segment};
use crate::netdev::{self, Napi, NetDev, PagePool, Skb, TxQueue};
use crate::port::{self, Pair, PortState, TxStats};

const PAGE_SIZE: usize = 1 << bindings::PAGE_SHIFT;
/// Headroom in header buffers (NET_SKB_PAD on x86-64).
const HEADROOM: usize = 64;
/// Bytes of a header page usable for frame data when it becomes an skb head.
const HEAD_CAP: usize =
    PAGE_SIZE - HEADROOM - ((core::mem::size_of::<bindings::skb_shared_info>() + 63) & !63);

/// What the transmit side learned about a frame, kept in the wire skb's control block.
#[derive(Clone, Copy)]
pub(crate) struct WireInfo {
    pub(crate) hash: u32,
    /// Where the payload starts, 0 if the frame has no TCP/UDP header to split after.
    pub(crate) hdr_len: u16,
    /// TCP or UDP: the "hardware" checked the transport checksum.
    pub(crate) l4: bool,
    pub(crate) by_rule: bool,
}

impl WireInfo {
    fn store(&self, cb: &mut [u8]) {
        cb[0..4].copy_from_slice(&self.hash.to_ne_bytes());
        cb[4..6].copy_from_slice(&self.hdr_len.to_ne_bytes());
        cb[6] = u8::from(self.l4) | (u8::from(self.by_rule) << 1);
    }

    fn load(cb: &[u8]) -> Self {
        WireInfo {
            hash: u32::from_ne_bytes([cb[0], cb[1], cb[2], cb[3]]),
            hdr_len: u16::from_ne_bytes([cb[4], cb[5]]),
            l4: cb[6] & 1 != 0,
            by_rule: cb[6] & 2 != 0,
        }
    }
}

/// Per RX queue counters.
#[derive(Default)]
pub(crate) struct RxStats {
    pub(crate) packets: AtomicU64,
    pub(crate) bytes: AtomicU64,
    /// Frames whose payload was split into the data pool.
    pub(crate) split: AtomicU64,
    /// Payload bytes written to the data pool.
    pub(crate) split_bytes: AtomicU64,
    /// Frames whose payload landed in net_iovs (memory provider buffers).
    pub(crate) unreadable: AtomicU64,
    /// Frames steered here by an ntuple rule.
    pub(crate) by_rule: AtomicU64,
    /// Frames dropped because the ring was full.
    pub(crate) ring_full: AtomicU64,
    /// Frames dropped because a buffer could not be allocated.
    pub(crate) alloc_fail: AtomicU64,
    /// Nanoseconds the emulated DMA engine spent writing frames into this queue's
    /// buffers: CPU time that a hardware NIC does not cost, for benchmarks to tell apart.
    /// Estimated from one write in [`DMA_TIMING_EVERY`].
    pub(crate) dma_ns: AtomicU64,
    /// Nanoseconds NAPI spent in this driver's poll outside the stack's calls
    /// (`napi_gro_receive()`, `napi_complete_done()`): the emulated hardware (DMA
    /// included) and the driver, what the device itself costs per frame. Estimated from
    /// one poll in [`POLL_TIMING_EVERY`].
    pub(crate) driver_ns: AtomicU64,
    /// Coalesced packets handed to the stack (`NETIF_F_GRO_HW`), and their bytes.
    pub(crate) hw_gro_packets: AtomicU64,
    pub(crate) hw_gro_bytes: AtomicU64,
    /// Wire frames coalesced into them, and their bytes.
    pub(crate) hw_gro_wire_packets: AtomicU64,
    pub(crate) hw_gro_wire_bytes: AtomicU64,
    /// "Interrupts": posted frames that scheduled NAPI (unmasked, and NAPI idle).
    pub(crate) irqs: AtomicU64,
}

/// One DMA write in this many is timed for the `dma_ns` counter.
const DMA_TIMING_EVERY: u32 = 8;
/// One NAPI poll in this many is timed for the `driver_ns` counter.
const POLL_TIMING_EVERY: u32 = 8;
/// Most fragments of an skb: what one coalesced run can fill.
const MAX_FRAGS: usize = bindings::MAX_SKB_FRAGS as usize;
const NETIF_F_GRO_HW: u64 = 1 << bindings::NETIF_F_GRO_HW_BIT;

/// An skb the NAPI poll is building. Dropping it frees the skb and its fragments.
///
/// # Invariants
///
/// `skb` is built over the header pool page at `head` (headroom, then `head_len` bytes of
/// the first frame), with `frags` fragments.
struct Rx {
    skb: Skb,
    head: *mut u8,
    head_len: usize,
    /// Payloads go to the data pool.
    split: bool,
    frags: usize,
    /// Bytes free after the data of the last fragment in its buffer, a netmem this skb
    /// alone holds: the run's next payload is packed there, as NICs that coalesce pack
    /// payloads (mlx5 SHAMPO). The fragments' truesize so far counts only the bytes
    /// written; [`RxQueue::complete`] adds this rest of the last buffer.
    room: usize,
    /// The DMA address of that free space.
    tail: u64,
}

impl Rx {
    /// How many fragments `n` more payload bytes add.
    fn frags_for(&self, n: usize) -> usize {
        n.saturating_sub(self.room).div_ceil(PAGE_SIZE)
    }
}

/// One RX queue.
///
/// # Invariants
///
/// `ring` is an initialized `sk_buff_head`. `napi` is zeroed until the queue is first
/// opened, and changes only through [`Napi`]'s methods; it is registered with the device
/// while the queue is open (`napi_added`), and enabled from `start` to `stop`, which the
/// control path calls only on open queues, alternately, under the instance lock.
/// `hdr_pool`/`data_pool` are null or page pools owned by this queue (from
/// [`PagePool::into_raw`]), used by NAPI only while it is enabled. `index` is below the
/// device's number of RX queues.
#[repr(C)]
#[pin_data]
pub(crate) struct RxQueue {
    #[pin]
    napi: Opaque<bindings::napi_struct>,
    #[pin]
    ring: Opaque<bindings::sk_buff_head>,
    index: u32,
    hdr_pool: AtomicPtr<bindings::page_pool>,
    data_pool: AtomicPtr<bindings::page_pool>,
    napi_added: AtomicBool,
    /// A peer TX queue was stopped because this ring filled up.
    throttled: AtomicBool,
    /// The queue's "interrupt" is masked: posting a frame does not schedule NAPI. A
    /// driver leaves it masked when `napi_complete_done()` says the core will poll again
    /// (IRQ deferral, `napi_defer_hard_irqs` and `gro_flush_timeout`; busy polling).
    irq_masked: AtomicBool,
    /// DMA writes so far, to pick the ones to time.
    dma_writes: AtomicU32,
    /// Polls so far, to pick the ones to time.
    polls: AtomicU32,
    stats: RxStats,
}

// SAFETY: the C objects are synchronized by their own locks (ring) or by the control-path
// rules in `port`.
unsafe impl Send for RxQueue {}
// SAFETY: see above.
unsafe impl Sync for RxQueue {}

/// Memory of a queue between `ndo_queue_mem_alloc` and start/free: its page pools.
///
/// The core allocates it zeroed (`ndo_queue_mem_size`): all zeros are two `None`s.
#[repr(C)]
pub(crate) struct QueueMem {
    hdr_pool: Option<PagePool>,
    data_pool: Option<PagePool>,
}

impl RxQueue {
    pub(crate) fn new(index: u32) -> Result<Pin<KBox<Self>>> {
        KBox::pin_init(
            pin_init!(RxQueue {
                napi <- Opaque::zeroed(),
                // SAFETY: `skb_queue_head_init` initializes the list and its lock.
                ring <- Opaque::ffi_init(|p| unsafe { bindings::skb_queue_head_init(p) }),
                index,
                hdr_pool: AtomicPtr::new(ptr::null_mut()),
                data_pool: AtomicPtr::new(ptr::null_mut()),
                napi_added: AtomicBool::new(false),
                throttled: AtomicBool::new(false),
                irq_masked: AtomicBool::new(false),
                dma_writes: AtomicU32::new(0),
                polls: AtomicU32::new(0),
                stats: RxStats::default(),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn stats(&self) -> &RxStats {
        &self.stats
    }

    fn ring_len(&self) -> u32 {
        // SAFETY: `ring` is initialized.
        unsafe { bindings::skb_queue_len_lockless(self.ring.get()) }
    }

    /// Transmit side of the wire: posts `skb` to this queue's ring, or drops it if the ring
    /// is full. Stops the sender's TX queue when the ring fills up; NAPI wakes it.
    pub(crate) fn post(
        &self,
        mut skb: Skb,
        info: WireInfo,
        ring_size: u32,
        txq: &TxQueue,
        tx: &TxStats,
    ) {
        if self.ring_len() >= ring_size {
            self.stats.ring_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        info.store(skb.cb());
        // SAFETY: `ring` is initialized; it takes over the skb.
        unsafe { bindings::skb_queue_tail(self.ring.get(), skb.into_raw()) };
        if self.ring_len() + 1 >= ring_size {
            self.throttled.store(true, Ordering::SeqCst);
            tx.stops.fetch_add(1, Ordering::Relaxed);
            txq.stop();
            // Pairs with the barrier in `poll`: either NAPI sees `throttled`, or we see the
            // ring it drained.
            core::sync::atomic::fence(Ordering::SeqCst);
            if self.ring_len() < ring_size / 2 {
                txq.wake();
            }
        }
        // Pairs with the fence in `unmask_irq`: either it sees the frame, or we see the
        // interrupt unmasked.
        core::sync::atomic::fence(Ordering::SeqCst);
        if self.irq_masked.load(Ordering::Relaxed) {
            return;
        }
        // SAFETY: the NAPI instance is initialized (zeroed, or added); scheduling a NAPI
        // that is not enabled is a no-op.
        if unsafe { bindings::napi_schedule(self.napi.get()) } {
            self.stats.irqs.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Unmasks the queue's interrupt, raising it for frames posted while it was masked.
    fn unmask_irq(&self) {
        self.irq_masked.store(false, Ordering::Relaxed);
        core::sync::atomic::fence(Ordering::SeqCst);
        if self.ring_len() > 0 {
            self.schedule_napi();
        }
    }

    /// Creates the page pools of this queue into `mem`. Instance lock held.
    pub(crate) fn alloc_mem(&self, s: &PortState, mem: &mut QueueMem) -> Result {
        let ring = s.rings.rx.load(Ordering::Relaxed);
        mem.hdr_pool = Some(self.create_pool(s, ring, false)?);
        match self.create_pool(s, ring, true) {
            Ok(p) => mem.data_pool = Some(p),
            Err(e) => {
                free_mem(mem);
                return Err(e);
            }
        }
        Ok(())
    }

    fn create_pool(&self, s: &PortState, ring: u32, data: bool) -> Result<PagePool> {
        let mut pp = bindings::page_pool_params::default();
        pp.__bindgen_anon_1.fast.order = 0;
        pp.__bindgen_anon_1.fast.pool_size = ring;
        pp.__bindgen_anon_1.fast.nid = bindings::NUMA_NO_NODE;
        pp.__bindgen_anon_1.fast.dev = s.pair.device();
        pp.__bindgen_anon_1.fast.napi = self.napi().as_raw();
        pp.__bindgen_anon_1.fast.dma_dir = bindings::dma_data_direction::DMA_FROM_DEVICE;
        pp.__bindgen_anon_1.fast.max_len = PAGE_SIZE as u32;
        pp.__bindgen_anon_1.fast.offset = 0;
        pp.__bindgen_anon_2.slow.netdev = s.dev().as_raw();
        pp.__bindgen_anon_2.slow.queue_idx = self.index;
        let mut flags = bindings::PP_FLAG_DMA_MAP | bindings::PP_FLAG_DMA_SYNC_DEV;
        if data {
            flags |= bindings::PP_FLAG_ALLOW_UNREADABLE_NETMEM;
        }
        pp.__bindgen_anon_2.slow.flags = flags;
        self.new_pool(&pp)
    }

    /// Opens the queue: pools, NAPI, association. Instance lock held.
    pub(crate) fn open(&self, s: &PortState) -> Result {
        let mut mem = QueueMem {
            hdr_pool: None,
            data_pool: None,
        };
        self.alloc_mem(s, &mut mem)?;
        self.add_napi(s.dev());
        self.start(s, &mut mem);
        Ok(())
    }

    /// Closes the queue and frees its pools and pending frames. Instance lock held.
    pub(crate) fn close(&self, s: &PortState) {
        let mut mem = QueueMem {
            hdr_pool: None,
            data_pool: None,
        };
        self.stop(s, &mut mem);
        self.del_napi();
        free_mem(&mut mem);
        self.purge_ring();
    }

    /// Installs the pools in `mem`, which now belong to the queue, and enables NAPI.
    pub(crate) fn start(&self, s: &PortState, mem: &mut QueueMem) {
        self.install_pools(mem);
        self.enable_napi(s.dev());
        // Frames may have been posted while the queue was stopped, and a deferral that
        // was pending when it stopped ended with it.
        self.unmask_irq();
    }

    /// Disables NAPI and moves the pools into `mem`.
    pub(crate) fn stop(&self, s: &PortState, mem: &mut QueueMem) {
        self.disable_napi(s.dev());
        self.take_pools(mem);
    }

    /// Wakes the peer TX queues this ring stopped.
    fn wake_senders(&self, s: &PortState) {
        core::sync::atomic::fence(Ordering::SeqCst);
        if !self.throttled.swap(false, Ordering::AcqRel) {
            return;
        }
        let _guard = rcu::read_lock();
        let Some(peer) = s.peer() else {
            return;
        };
        let d = peer.dev();
        for q in (0..d.real_tx()).filter_map(|i| d.tx_queue(i)) {
            if q.stopped() {
                q.wake();
            }
        }
    }

    /// Starts the received skb for wire frame `wire`, or `None` (counted) on failure: the
    /// head in a header pool page, the rest of the frame in fragments.
    fn receive(&self, s: &PortState, wire: &Skb, info: &WireInfo) -> Option<Rx> {
        let len = wire.len() as usize;
        let hds = s.rings.hds.load(Ordering::Relaxed)
            == bindings::ethtool_tcp_data_split_ETHTOOL_TCP_DATA_SPLIT_ENABLED as u8;
        let thresh = s.rings.hds_thresh.load(Ordering::Relaxed) as usize;
        let hdr_len = usize::from(info.hdr_len);
        let split = hds && hdr_len > 0 && hdr_len < len && len - hdr_len > thresh;
        let head_len = if split { hdr_len } else { len.min(HEAD_CAP) };
        let hdr_pool = self.hdr_pool.load(Ordering::Acquire);
        let pair = &*s.pair;

        // The head: a header pool page.
        // SAFETY: `hdr_pool` is this queue's live pool while NAPI runs.
        let page = unsafe {
            bindings::page_pool_alloc_pages(hdr_pool, bindings::GFP_ATOMIC | bindings::__GFP_NOWARN)
        };
        if page.is_null() {
            self.stats.alloc_fail.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // SAFETY: `page` comes from a DMA-mapping pool.
        let netmem = unsafe { bindings::page_to_netmem(page) };
        // SAFETY: as above.
        let dma = unsafe { bindings::page_pool_get_dma_addr_netmem(netmem) };
        if self
            .dma(pair, dma + HEADROOM as u64, wire, 0, head_len)
            .is_err()
        {
            // SAFETY: the page is ours, from `hdr_pool`.
            unsafe { bindings::page_pool_put_full_netmem(hdr_pool, netmem, false) };
            self.stats.alloc_fail.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // SAFETY: the page is a lowmem page of PAGE_SIZE bytes.
        let head = unsafe { bindings::page_address(page) };
        // SAFETY: as above.
        let raw = unsafe { bindings::napi_build_skb(head, PAGE_SIZE as u32) };
        // SAFETY: null, or a new skb that is ours.
        let Some(skb) = (unsafe { Skb::from_raw(raw) }) else {
            // SAFETY: as above.
            unsafe { bindings::page_pool_put_full_netmem(hdr_pool, netmem, false) };
            self.stats.alloc_fail.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        // SAFETY: fresh skb over the page: headroom, then the head bytes written above.
        unsafe {
            bindings::skb_mark_for_recycle(raw);
            bindings::skb_reserve(raw, HEADROOM as c_int);
            bindings::skb_put(raw, head_len as u32);
        }
        let mut rx = Rx {
            skb,
            head: head.cast(),
            head_len,
            split,
            frags: 0,
            room: 0,
            tail: 0,
        };
        // On error, dropping `rx` frees the skb and the fragments added.
        self.add_frags(s, &mut rx, wire, head_len).ok()?;
        self.count(wire, info, split, hdr_len);
        Some(rx)
    }

    /// Counts wire frame `wire` as received.
    fn count(&self, wire: &Skb, info: &WireInfo, split: bool, hdr_len: usize) {
        let len = wire.len() as usize;
        self.stats.packets.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(len as u64, Ordering::Relaxed);
        if info.by_rule {
            self.stats.by_rule.fetch_add(1, Ordering::Relaxed);
        }
        if split {
            self.stats.split.fetch_add(1, Ordering::Relaxed);
            self.stats
                .split_bytes
                .fetch_add((len - hdr_len) as u64, Ordering::Relaxed);
        }
    }

    /// Appends bytes `from..` of wire frame `wire` to `rx` as fragments: data pool netmems if
    /// the frame is split, else header pool pages, filling the last fragment's buffer first.
    /// On error (counted) the fragments added so far stay attached, so freeing the skb frees
    /// them.
    fn add_frags(&self, s: &PortState, rx: &mut Rx, wire: &Skb, from: usize) -> Result {
        let len = wire.len() as usize;
        let pool = if rx.split {
            self.data_pool.load(Ordering::Acquire)
        } else {
            self.hdr_pool.load(Ordering::Acquire)
        };
        let mut off = from;
        let mut unreadable = false;
        if rx.room > 0 && off < len {
            let chunk = (len - off).min(rx.room);
            let written = self.dma(&s.pair, rx.tail, wire, off, chunk);
            // SAFETY: the last fragment's buffer is ours and has `room` bytes free after its
            // data (`Rx::room`), where the DMA engine just wrote `chunk` of them.
            unsafe {
                bindings::skb_coalesce_rx_frag(
                    rx.skb.as_raw(),
                    rx.frags as c_int - 1,
                    chunk as c_int,
                    chunk as u32,
                );
            }
            rx.room -= chunk;
            rx.tail += chunk as u64;
            if written.is_err() {
                self.stats.alloc_fail.fetch_add(1, Ordering::Relaxed);
                return Err(EIO);
            }
            off += chunk;
        }
        while off < len {
            let chunk = (len - off).min(PAGE_SIZE);
            // SAFETY: `pool` is one of this queue's live pools.
            let nm = unsafe { bindings::page_pool_dev_alloc_netmems(pool) };
            if nm == 0 {
                self.stats.alloc_fail.fetch_add(1, Ordering::Relaxed);
                return Err(ENOMEM);
            }
            // SAFETY: `nm` comes from a DMA-mapping pool (pages or net_iovs alike).
            let dma = unsafe { bindings::page_pool_get_dma_addr_netmem(nm) };
            // SAFETY: `nm` is a netmem.
            unreadable |= unsafe { bindings::netmem_is_net_iov(nm) };
            let written = self.dma(&s.pair, dma, wire, off, chunk);
            // SAFETY: attach the buffer (even on error, so the skb frees it); the caller
            // leaves room for it (at most `MAX_FRAGS`).
            unsafe {
                bindings::skb_add_rx_frag_netmem(
                    rx.skb.as_raw(),
                    rx.frags as c_int,
                    nm,
                    0,
                    chunk as c_int,
                    chunk as u32,
                );
            }
            rx.frags += 1;
            rx.room = PAGE_SIZE - chunk;
            rx.tail = dma + chunk as u64;
            if written.is_err() {
                self.stats.alloc_fail.fetch_add(1, Ordering::Relaxed);
                return Err(EIO);
            }
            off += chunk;
        }
        if unreadable {
            self.stats.unreadable.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Merges the frames that follow `first` in the ring into `rx` while they continue its
    /// TCP segment (see [`crate::coalesce`]), dequeuing them; `done` counts them against
    /// the poll's `budget`. Returns the run, and the first frame that did not continue it;
    /// an error if a merged frame could not be written, and then `rx` must be dropped.
    fn coalesce(
        &self,
        s: &PortState,
        rx: &mut Rx,
        first: &Skb,
        info: &WireInfo,
        done: &mut c_int,
        budget: c_int,
    ) -> Result<(Option<Run>, Option<Skb>)> {
        let hdr_len = usize::from(info.hdr_len);
        // The headers, read in place from the frame as the NIC parses them off the wire.
        let first_hdr = first.linear();
        if !info.l4 {
            return Ok((None, None));
        }
        let Some(mut run) =
            Segment::parse(first_hdr, hdr_len, first.len() as usize).and_then(Run::start)
        else {
            return Ok((None, None));
        };
        while *done < budget {
            // SAFETY: `ring` is initialized and owns the skbs queued on it.
            let Some(mut wire) = (unsafe { Skb::from_raw(bindings::skb_dequeue(self.ring.get())) })
            else {
                break;
            };
            *done += 1;
            let winfo = WireInfo::load(wire.cb());
            let len = wire.len() as usize;
            let fits = rx.frags_for(len.saturating_sub(hdr_len)) + rx.frags <= MAX_FRAGS;
            let merged = winfo.l4
                && winfo.hdr_len == info.hdr_len
                && fits
                && run.offer(first_hdr, wire.linear(), len);
            if !merged {
                return Ok((Some(run), Some(wire)));
            }
            self.count(&wire, &winfo, rx.split, hdr_len);
            let added = self.add_frags(s, rx, &wire, hdr_len);
            wire.consume_in_napi(budget);
            added?;
        }
        Ok((Some(run), None))
    }

    /// Completes the skb of `rx`, a run of coalesced segments if `run` merged more than
    /// one, and returns it.
    fn complete(
        &self,
        s: &PortState,
        rx: Rx,
        info: &WireInfo,
        run: Option<&Run>,
    ) -> *mut bindings::sk_buff {
        let skb = rx.skb.as_raw();
        // SAFETY: our skb, not yet handed on: the rest of its last buffer, which nothing
        // else will fill, counts toward its truesize.
        unsafe { (*skb).truesize += rx.room as u32 };
        let run = run.filter(|r| r.segs() > 1);
        if let Some(run) = run {
            // SAFETY: the head holds the first frame's headers (`head_len` >= `hdr_len`),
            // written by the DMA engine into a page only this skb holds, which nobody else
            // sees before we hand it to GRO.
            let hdr =
                unsafe { core::slice::from_raw_parts_mut(rx.head.add(HEADROOM), rx.head_len) };
            let mss = run.finish(hdr);
            let seg = run.first();
            // SAFETY: our skb, not yet handed on; plain fields.
            unsafe {
                let sh = &mut *bindings::skb_shinfo(skb);
                sh.gso_size = mss;
                sh.gso_segs = run.segs();
                sh.gso_type = if seg.v6() {
                    bindings::SKB_GSO_TCPV6 as u32
                } else {
                    bindings::SKB_GSO_TCPV4 as u32
                };
                let headers = (*skb).__bindgen_anon_4.headers.as_mut();
                headers.__bindgen_anon_1.__bindgen_anon_1.csum_start = (HEADROOM + seg.l4()) as u16;
                headers.__bindgen_anon_1.__bindgen_anon_1.csum_offset = 16;
            }
            self.stats.hw_gro_packets.fetch_add(1, Ordering::Relaxed);
            // SAFETY: a valid skb.
            let len = unsafe { (*skb).len };
            self.stats
                .hw_gro_bytes
                .fetch_add(u64::from(len), Ordering::Relaxed);
            self.stats
                .hw_gro_wire_packets
                .fetch_add(u64::from(run.segs()), Ordering::Relaxed);
            self.stats.hw_gro_wire_bytes.fetch_add(
                u64::from(len) + (u64::from(run.segs()) - 1) * seg.hdr_len() as u64,
                Ordering::Relaxed,
            );
        }
        // SAFETY: a complete skb for our device.
        unsafe {
            let proto = bindings::eth_type_trans(skb, s.dev().as_raw());
            let headers = (*skb).__bindgen_anon_4.headers.as_mut();
            headers.protocol = proto;
            if run.is_some() {
                headers.set_ip_summed(bindings::CHECKSUM_PARTIAL as u8);
            } else if info.l4 {
                headers.set_ip_summed(bindings::CHECKSUM_UNNECESSARY as u8);
            }
            bindings::skb_record_rx_queue(skb, self.index as u16);
            bindings::skb_set_hash(
                skb,
                info.hash,
                if info.l4 {
                    bindings::pkt_hash_types_PKT_HASH_TYPE_L4
                } else {
                    bindings::pkt_hash_types_PKT_HASH_TYPE_L3
                },
            );
        }
        rx.skb.into_raw()
    }

    /// [`dma_write`], timed into the queue's `dma_ns` counter: one write in
    /// [`DMA_TIMING_EVERY`] is timed and stands for all of them, as reading the clock around
    /// every write costs a sizeable share of what it measures.
    fn dma(&self, pair: &Pair, dma: u64, wire: &Skb, off: usize, len: usize) -> Result {
        if !sample(&self.dma_writes, DMA_TIMING_EVERY) {
            return dma_write(pair, dma, wire, off, len);
        }
        let start = now_ns();
        let r = dma_write(pair, dma, wire, off, len);
        let ns = now_ns().saturating_sub(start);
        self.stats
            .dma_ns
            .fetch_add(ns * u64::from(DMA_TIMING_EVERY), Ordering::Relaxed);
        r
    }
}

/// Whether to time this event of those `count` counts: one in `every`. NAPI is the
/// counter's only writer.
fn sample(count: &AtomicU32, every: u32) -> bool {
    let n = count.load(Ordering::Relaxed);
    count.store(n.wrapping_add(1), Ordering::Relaxed);
    n % every == 0
}

/// The CPU's clock, in nanoseconds.
fn now_ns() -> u64 {
    // SAFETY: reads the CPU's clock; no preconditions.
    unsafe { bindings::local_clock() }
}

/// Time one poll in [`POLL_TIMING_EVERY`] spends in the driver, outside the stack's calls.
struct PollTimer {
    start: u64,
    stack: u64,
}

impl PollTimer {
    fn new(q: &RxQueue) -> Option<Self> {
        sample(&q.polls, POLL_TIMING_EVERY).then(|| PollTimer {
            start: now_ns(),
            stack: 0,
        })
    }

    /// Runs `f`, a call into the stack, off the clock.
    fn stack<R>(timer: &mut Option<Self>, f: impl FnOnce() -> R) -> R {
        let Some(t) = timer else { return f() };
        let start = now_ns();
        let r = f();
        t.stack += now_ns().saturating_sub(start);
        r
    }

    fn finish(self, q: &RxQueue) {
        let ns = now_ns()
            .saturating_sub(self.start)
            .saturating_sub(self.stack);
        q.stats
            .driver_ns
            .fetch_add(ns * u64::from(POLL_TIMING_EVERY), Ordering::Relaxed);
    }
}

/// The "DMA engine": writes `len` bytes of `wire` from `off` to bus address `dma` of the
/// pair's device, which must not cross a page. Resolves the bus address like the IOMMU-less
/// platform would (dma-direct), so it reaches exactly the memory the address names,
/// whoever allocated it: system memory, or a PCI BAR the pair's function reaches peer to
/// peer (bus and CPU addresses are the same on x86).
fn dma_write(pair: &Pair, dma: u64, wire: &Skb, off: usize, len: usize) -> Result {
    // SAFETY: the pair's device is valid; this only translates the address.
    let phys = unsafe { bindings::dma_to_phys(pair.device(), dma) };
    let pfn = phys >> bindings::PAGE_SHIFT;
    let in_page = (phys as usize) & (PAGE_SIZE - 1);
    if in_page + len > PAGE_SIZE {
        return Err(EINVAL);
    }
    // BARs first: PCI P2PDMA memory has struct pages, so `pfn_valid` does not tell it from RAM.
    // SAFETY: only checks the memory map.
    if pair.p2p.covers(phys, len) || !unsafe { bindings::pfn_valid(pfn as usize) } {
        return pair.p2p.write(phys, wire, off, len);
    }
    // SAFETY: `pfn` is valid; the page is mapped for the copy only.
    let va = unsafe { bindings::kmap_local_page(bindings::pfn_to_page(pfn as usize)) };
    // SAFETY: `in_page + len` <= PAGE_SIZE bytes of the mapped page. The destination is a
    // buffer of a page pool the caller just allocated, so nothing else accesses it.
    let dst = unsafe { core::slice::from_raw_parts_mut(va.cast::<u8>().add(in_page), len) };
    let r = wire.copy_bits(off, dst);
    // SAFETY: mapped above, in this context.
    unsafe { bindings::kunmap_local(va) };
    r
}

/// Destroys the pools in `mem`, header pool first.
pub(crate) fn free_mem(mem: &mut QueueMem) {
    mem.hdr_pool = None;
    mem.data_pool = None;
}

extern "C" fn poll(napi: *mut bindings::napi_struct, budget: c_int) -> c_int {
    // SAFETY: `napi` is the first field of a `RxQueue` (`repr(C)`), pinned in its box.
    let q = unsafe { &*napi.cast::<RxQueue>() };
    // SAFETY: the NAPI instance was added for this device, which outlives it.
    let dev = unsafe { NetDev::from_raw((*napi).dev) };
    let Some(s) = port::state(dev) else {
        return 0;
    };
    let mut timer = PollTimer::new(q);
    let coalescing = s.dev().features() & NETIF_F_GRO_HW != 0;
    let mut done = 0;
    // A frame dequeued while coalescing that did not continue the run: the next to receive.
    let mut next: Option<Skb> = None;
    while done < budget || next.is_some() {
        let mut wire = match next.take() {
            Some(w) => w,
            None => {
                // SAFETY: `ring` is initialized and owns the skbs queued on it.
                match unsafe { Skb::from_raw(bindings::skb_dequeue(q.ring.get())) } {
                    Some(w) => {
                        done += 1;
                        w
                    }
                    None => break,
                }
            }
        };
        let info = WireInfo::load(wire.cb());
        let Some(mut rx) = q.receive(s, &wire, &info) else {
            wire.consume_in_napi(budget);
            continue;
        };
        let run = if coalescing {
            match q.coalesce(s, &mut rx, &wire, &info, &mut done, budget) {
                Ok((run, rest)) => {
                    next = rest;
                    run
                }
                Err(_) => {
                    // A merged frame could not be written: drop the whole run.
                    drop(rx);
                    wire.consume_in_napi(budget);
                    continue;
                }
            }
        } else {
            None
        };
        // The frame's "transmission" completed.
        wire.consume_in_napi(budget);
        let skb = q.complete(s, rx, &info, run.as_ref());
        // SAFETY: a complete skb, handed to GRO on our NAPI instance.
        PollTimer::stack(&mut timer, || unsafe {
            bindings::napi_gro_receive(napi, skb)
        });
    }
    q.wake_senders(s);
    if done < budget {
        // SAFETY: we are the NAPI poll of `napi`.
        let complete = PollTimer::stack(&mut timer, || unsafe {
            bindings::napi_complete_done(napi, done)
        });
        if complete {
            q.unmask_irq();
        } else {
            // The core polls again (its deferral timer, or a busy poller): keep the
            // interrupt masked until a poll completes for good. Frames posted before this
            // store scheduled NAPI once more, which is harmless.
            q.irq_masked.store(true, Ordering::Relaxed);
        }
    }
    if let Some(t) = timer {
        t.finish(q);
    }
    done
}

// ---- the C edge of the control path ----
//
// The NAPI instance, the pool slots and the ring, reached by the control methods above
// through these. Each relies on the lifecycle in the `RxQueue` invariants.

impl RxQueue {
    /// The queue's NAPI instance.
    fn napi(&self) -> &Napi {
        // SAFETY: `napi` is zeroed at creation, changes only through `Napi`, and lives in the
        // queue's pinned box (type invariant).
        unsafe { Napi::from_opaque(&self.napi) }
    }

    /// Creates a page pool with `pp`, which `create_pool` filled for this queue's device,
    /// NAPI instance and index. Instance lock held.
    fn new_pool(&self, pp: &bindings::page_pool_params) -> Result<PagePool> {
        // SAFETY: valid params; the device and the queue (and so its NAPI instance) outlive
        // the queue's pools, which `close` or the queue API frees. The instance lock is held
        // as page_pool_init requires for queues that may have a memory provider.
        unsafe { PagePool::create(pp) }
    }

    /// Adds the NAPI instance to `dev`, unless it is added already. Instance lock held.
    fn add_napi(&self, dev: &NetDev) {
        if !self.napi_added.swap(true, Ordering::AcqRel) {
            // SAFETY: the NAPI struct is zeroed or was deleted (`napi_added` was false);
            // `poll` is the poll of a NAPI instance embedded first in an `RxQueue`, as this
            // one is; `index` is a queue of `dev`; instance lock held.
            unsafe { self.napi().add_locked(dev, poll, self.index) };
        }
    }

    /// Deletes the NAPI instance, if added, and waits until the device no longer reaches
    /// it. NAPI is disabled (`stop`); instance lock held.
    fn del_napi(&self) {
        if self.napi_added.swap(false, Ordering::AcqRel) {
            // SAFETY: added in `open`, disabled by `stop`; instance lock held.
            unsafe { self.napi().del_locked() };
            netdev::synchronize_net();
        }
    }

    /// Associates the queue with its NAPI instance and enables it. Instance lock held.
    fn enable_napi(&self, dev: &NetDev) {
        let napi = self.napi();
        // SAFETY: the NAPI instance is added (the queue is open) and disabled (stopped);
        // `index` is a queue of `dev`; instance lock held.
        unsafe {
            dev.set_rx_queue_napi(self.index, Some(napi));
            napi.enable_locked();
        }
    }

    /// Disables the NAPI instance and dissociates the queue from it. Instance lock held.
    fn disable_napi(&self, dev: &NetDev) {
        // SAFETY: the NAPI instance is added and enabled (the queue is started); `index` is a
        // queue of `dev`; instance lock held.
        unsafe {
            self.napi().disable_locked();
            dev.set_rx_queue_napi(self.index, None);
        }
    }

    /// Schedules a poll. NAPI is added (the queue is open).
    fn schedule_napi(&self) {
        // SAFETY: the NAPI instance is added, and enabled by `start` before it calls this.
        unsafe { self.napi().schedule() };
    }

    /// Installs the pools of `mem` for the datapath; they now belong to the queue.
    fn install_pools(&self, mem: &mut QueueMem) {
        let raw = |p: Option<PagePool>| p.map_or(ptr::null_mut(), PagePool::into_raw);
        self.hdr_pool
            .store(raw(mem.hdr_pool.take()), Ordering::Release);
        self.data_pool
            .store(raw(mem.data_pool.take()), Ordering::Release);
    }

    /// Moves the queue's pools into `mem`. NAPI is disabled.
    fn take_pools(&self, mem: &mut QueueMem) {
        // SAFETY: the slots hold null or pools owned by the queue (type invariant), which the
        // swaps take out; NAPI, their only user, is disabled.
        unsafe {
            mem.hdr_pool =
                PagePool::from_raw(self.hdr_pool.swap(ptr::null_mut(), Ordering::AcqRel));
            mem.data_pool =
                PagePool::from_raw(self.data_pool.swap(ptr::null_mut(), Ordering::AcqRel));
        }
        // The NAPI instance lives on into the next start: detach the old pools from it
        // while it is disabled, so freeing them later does not race with its polls.
        for p in [&mem.hdr_pool, &mem.data_pool].into_iter().flatten() {
            // SAFETY: a live pool of this queue; NAPI is disabled.
            unsafe { p.disable_direct_recycling() };
        }
    }

    /// Frees the frames left in the ring. NAPI is gone (`close`).
    fn purge_ring(&self) {
        // SAFETY: `ring` is initialized; NAPI is gone, nothing else dequeues.
        unsafe { bindings::skb_queue_purge(self.ring.get()) };
    }
}
