// SPDX-License-Identifier: GPL-2.0

//! RX queues of netgpu-sim: the wire ring the peer's transmit posts frames to, the "NIC
//! engine" that receives them into buffers the driver posted, the driver's NAPI poll that
//! turns its completions into skbs, the page pools, and the queue control: open, close, and
//! the memory, start and stop of the queue management API (`netdev_queue_mgmt_ops`) that
//! memory providers use to restart a queue with their own buffers. The API's C callbacks are
//! in [`crate::queue_ops`]; the control methods call C only through the wrappers of
//! [`crate::netdev`] and the small helpers at the end of this file.
//!
//! A queue works like a NIC's, in two halves:
//! - **The engine** (the NIC's hardware) runs in its own NAPI instance, a TX-style one with
//!   no queue of its own, which the peer's transmit schedules. It takes frames off the wire
//!   ring (the peer's transmit parsed and steered them), writes each into buffers the driver
//!   posted, the way a NIC's DMA engine would (resolve the bus address to memory and copy
//!   from the wire), merges the segments of a TCP flow into one packet
//!   ([`crate::coalesce`]), writes a completion entry per packet and raises the queue's
//!   "interrupt". With header/data split on, the L2-L4 headers go to a buffer of the queue's
//!   header pool (the skb's linear part) and the payload to netmems of its data pool, which
//!   may belong to a memory provider (devmem TCP, io_uring zcrx, netgpu). Without split, or
//!   for frames with nothing to split, the whole frame lands in header pool pages. The engine
//!   also completes the transmission of the peer's frame, as the sending NIC would.
//! - **The driver**, the queue's NAPI poll, builds an skb per completion over the buffers
//!   named in it, hands it to GRO, and posts fresh buffers from the page pools.
//!
//! Because the engine is a NAPI instance of its own, it runs where its thread (threaded
//! NAPI) or the transmitting CPU puts it, not on the CPU that receives: a hardware NIC's
//! work costs the receiving host nothing, and benchmarks can place the engine elsewhere.
//!
//! Locking: each queue's `hw` lock (interrupts off) guards the posted buffers and the
//! completion ring shared by its engine and its driver. It is a leaf lock: nothing else is
//! taken, and no page pool is called, while it is held.

use core::ffi::c_int;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::{new_spinlock_irq, rcu, SpinLockIrq};
use kernel::types::Opaque;

use crate::coalesce::{Run, Segment};
use crate::netdev::{self, Napi, NetDev, PagePool, QueueType, Skb, TxQueue};
use crate::port::{self, Pair, PortState, TxStats};
use crate::txc::Completed;

const PAGE_SIZE: usize = 1 << bindings::PAGE_SHIFT;
/// Headroom in header buffers (NET_SKB_PAD on x86-64).
const HEADROOM: usize = 64;
/// Bytes of a header page usable for frame data when it becomes an skb head.
const HEAD_CAP: usize =
    PAGE_SIZE - HEADROOM - ((core::mem::size_of::<bindings::skb_shared_info>() + 63) & !63);
/// Buffers the driver keeps posted per pool, and completion entries per queue.
const POSTED: usize = 256;
const CQ_ENTRIES: usize = 256;
/// Most buffers one packet takes from a pool: a TSO send received whole (see
/// [`TSO_MAX_PAYLOAD`]), in header pages or data buffers.
const PACKET_BUFS: usize = MAX_FRAGS + 1;
/// Most payload of a TSO send the engine receives whole: the fragments of one skb less one,
/// which the head's rest may start when the payload is not split.
pub(crate) const TSO_MAX_PAYLOAD: usize = (MAX_FRAGS - 1) * PAGE_SIZE;

/// What the transmit side learned about a frame, kept in the wire skb's control block.
#[derive(Clone, Copy, Default)]
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
    /// Frames dropped because no buffer was posted for them (the pools had none), or one
    /// could not be written or built into an skb.
    pub(crate) alloc_fail: AtomicU64,
    /// Nanoseconds the emulated DMA engine spent writing frames into this queue's
    /// buffers: CPU time that a hardware NIC does not cost, for benchmarks to tell apart.
    /// Estimated from one write in [`DMA_TIMING_EVERY`], picked at random.
    pub(crate) dma_ns: AtomicU64,
    /// Nanoseconds the driver's NAPI poll spent outside the stack's calls
    /// (`napi_gro_receive()`, `napi_complete_done()`): building skbs from completions and
    /// posting buffers, what the driver costs the receiving CPU. Estimated from one poll in
    /// [`POLL_TIMING_EVERY`].
    pub(crate) driver_ns: AtomicU64,
    /// Nanoseconds the engine's polls took: the emulated hardware, DMA included, which
    /// runs in its own NAPI instance. Estimated from one poll in [`POLL_TIMING_EVERY`].
    pub(crate) engine_ns: AtomicU64,
    /// Coalesced packets handed to the stack (`NETIF_F_GRO_HW`), and their bytes.
    pub(crate) hw_gro_packets: AtomicU64,
    pub(crate) hw_gro_bytes: AtomicU64,
    /// Wire frames coalesced into them, and their bytes.
    pub(crate) hw_gro_wire_packets: AtomicU64,
    pub(crate) hw_gro_wire_bytes: AtomicU64,
    /// "Interrupts": completions that scheduled the driver's NAPI (unmasked, and NAPI idle).
    pub(crate) irqs: AtomicU64,
    /// Times the engine found too few posted buffers for a frame and waited for the driver
    /// to post more (the frame stays on the wire ring: flow control, not a drop).
    pub(crate) buffer_waits: AtomicU64,
    /// Times the engine found the completion ring full and waited for the driver.
    pub(crate) cq_waits: AtomicU64,
}

/// One DMA write in this many (a power of two) is timed for the `dma_ns` counter.
const DMA_TIMING_EVERY: u32 = 8;
/// One NAPI poll in this many is timed for the `driver_ns` and `engine_ns` counters.
const POLL_TIMING_EVERY: u32 = 8;
/// Most fragments of an skb: what one coalesced run can fill.
const MAX_FRAGS: usize = bindings::MAX_SKB_FRAGS as usize;
const NETIF_F_GRO_HW: u64 = 1 << bindings::NETIF_F_GRO_HW_BIT;
/// Weight of the engine's NAPI instance (`NAPI_POLL_WEIGHT`).
const ENGINE_WEIGHT: c_int = 64;

/// A bounded FIFO over a fixed array.
struct Ring<T: Copy> {
    slots: KVVec<T>,
    head: usize,
    len: usize,
}

impl<T: Copy> Ring<T> {
    fn new(cap: usize, fill: T) -> Result<Self> {
        let mut slots = KVVec::with_capacity(cap, GFP_KERNEL)?;
        for _ in 0..cap {
            slots.push(fill, GFP_KERNEL)?;
        }
        Ok(Ring {
            slots,
            head: 0,
            len: 0,
        })
    }

    fn len(&self) -> usize {
        self.len
    }

    fn space(&self) -> usize {
        self.slots.len() - self.len
    }

    fn push(&mut self, v: T) -> bool {
        let cap = self.slots.len();
        match self.slots.get_mut((self.head + self.len) % cap.max(1)) {
            Some(slot) if self.len < cap => {
                *slot = v;
                self.len += 1;
                true
            }
            _ => false,
        }
    }

    fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let v = *self.slots.get(self.head)?;
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
        Some(v)
    }
}

/// A buffer of a packet: a netmem and the bytes written to it from its start.
#[derive(Clone, Copy, Default)]
struct Frag {
    netmem: bindings::netmem_ref,
    len: u32,
}

/// Segmentation offload metadata of a coalesced packet.
#[derive(Clone, Copy)]
struct Gso {
    mss: u16,
    segs: u16,
    v6: bool,
    /// Where the TCP header starts in the head buffer.
    csum_start: u16,
}

/// A completion entry: one packet (a frame, or a coalesced run of them) the engine wrote.
#[derive(Clone, Copy)]
struct Cqe {
    /// The header pool page holding the skb head: headroom, then `head_len` bytes.
    head: usize,
    head_len: u32,
    /// The rest of the packet: data pool netmems if `split`, else header pool pages.
    frags: [Frag; MAX_FRAGS],
    nr_frags: u8,
    split: bool,
    /// Bytes free after the data of the last fragment, which the packet's truesize counts.
    room: u32,
    info: WireInfo,
    gso: Option<Gso>,
}

impl Cqe {
    const EMPTY: Cqe = Cqe {
        head: 0,
        head_len: 0,
        frags: [Frag { netmem: 0, len: 0 }; MAX_FRAGS],
        nr_frags: 0,
        split: false,
        room: 0,
        info: WireInfo {
            hash: 0,
            hdr_len: 0,
            l4: false,
            by_rule: false,
        },
        gso: None,
    };

    fn frags(&self) -> &[Frag] {
        &self.frags[..usize::from(self.nr_frags).min(MAX_FRAGS)]
    }
}

/// What the engine and the driver of a queue share, under its `hw` lock.
struct Hw {
    /// Posted header pool pages (`struct page` addresses).
    hdr: Ring<usize>,
    /// Posted data pool netmems.
    data: Ring<bindings::netmem_ref>,
    cq: Ring<Cqe>,
    /// The engine found too few posted buffers for its next frame: the driver posts more
    /// and schedules the engine again.
    starved: bool,
    /// The driver could post nothing while the engine starved: the engine drops frames
    /// (counted) until buffers come back, as a NIC with no descriptors left does.
    no_buffers: bool,
    /// The engine found the completion ring full.
    cq_full: bool,
}

impl Hw {
    fn new() -> Result<Self> {
        Ok(Hw {
            hdr: Ring::new(POSTED, 0)?,
            data: Ring::new(POSTED, 0)?,
            cq: Ring::new(CQ_ENTRIES, Cqe::EMPTY)?,
            starved: false,
            no_buffers: false,
            cq_full: false,
        })
    }
}

/// Buffers the engine took for one packet.
struct Bufs {
    hdr: [usize; PACKET_BUFS],
    nr_hdr: usize,
    data: [bindings::netmem_ref; PACKET_BUFS],
    nr_data: usize,
}

impl Bufs {
    const EMPTY: Bufs = Bufs {
        hdr: [0; PACKET_BUFS],
        nr_hdr: 0,
        data: [0; PACKET_BUFS],
        nr_data: 0,
    };

    /// The buffers that become the frame's fragments, and how many: its data buffers if
    /// `split`, else its header pages after the first `skip` (the head).
    fn frags(&self, split: bool, skip: usize) -> ([bindings::netmem_ref; PACKET_BUFS], usize) {
        if split {
            return (self.data, self.nr_data);
        }
        let mut f = [0; PACKET_BUFS];
        for (d, &h) in f.iter_mut().zip(self.hdr.iter().skip(skip)) {
            *d = hdr_netmem(h);
        }
        (f, self.nr_hdr.saturating_sub(skip))
    }
}

/// The netmem of header pool page `page`, a `struct page` address from the posted ring.
fn hdr_netmem(page: usize) -> bindings::netmem_ref {
    // SAFETY: only converts the pointer: a page is its own netmem.
    unsafe { bindings::page_to_netmem(page as *mut bindings::page) }
}

enum Take {
    /// The buffers are in the caller's [`Bufs`].
    Got,
    /// Not enough buffers or completion entries: the frame waits on the ring.
    Wait,
    /// No buffers to be had: the frame is dropped.
    Drop,
}

/// The packet the engine is writing.
///
/// # Invariants
///
/// `va` is the kernel address of the header pool page `cqe.head`, which only this packet
/// holds until its completion is written.
struct Open {
    cqe: Cqe,
    va: *mut u8,
    run: Option<Run>,
    /// The DMA address of the free space after the last fragment's data (`cqe.room` bytes).
    tail: u64,
    /// A write failed: the packet is dropped when it completes.
    failed: bool,
}

impl Open {
    /// How many buffers `n` more payload bytes take.
    fn bufs_for(&self, n: usize) -> usize {
        n.saturating_sub(self.cqe.room as usize).div_ceil(PAGE_SIZE)
    }

    /// The first frame's headers, as the engine wrote them to the head buffer.
    fn first_hdr(&self) -> &[u8] {
        // SAFETY: the head page is this packet's alone (type invariant); `head_len` bytes
        // after the headroom were written.
        unsafe { core::slice::from_raw_parts(self.va.add(HEADROOM), self.cqe.head_len as usize) }
    }
}

/// One RX queue.
///
/// # Invariants
///
/// `ring` is an initialized `sk_buff_head`. `napi` and `engine` are zeroed until the queue
/// is first opened, and change only through [`Napi`]'s methods. `napi` is registered with
/// the device while the queue is open (`napi_added`), `engine` from `start` to `stop`, and
/// both are enabled from `start` to `stop`, which the control path calls only on open
/// queues, alternately, under the instance lock. Deleted, `engine` stays marked as
/// scheduled, as disabling left it, so scheduling it then is a no-op.
/// `hdr_pool`/`data_pool` are null or page pools owned by this queue (from
/// [`PagePool::into_raw`]), used by the NAPI instances only while they are enabled; the
/// buffers in `hw` come from them. `index` is below the device's number of RX queues.
#[repr(C)]
#[pin_data]
pub(crate) struct RxQueue {
    #[pin]
    napi: Opaque<bindings::napi_struct>,
    #[pin]
    engine: Opaque<bindings::napi_struct>,
    #[pin]
    ring: Opaque<bindings::sk_buff_head>,
    #[pin]
    hw: SpinLockIrq<Hw>,
    index: u32,
    hdr_pool: AtomicPtr<bindings::page_pool>,
    data_pool: AtomicPtr<bindings::page_pool>,
    napi_added: AtomicBool,
    /// A peer TX queue was stopped because this ring filled up.
    throttled: AtomicBool,
    /// Frames on `ring` (see [`RxQueue::ring_len`]).
    on_ring: AtomicU32,
    /// The queue's "interrupt" is masked: a completion does not schedule NAPI. A driver
    /// leaves it masked when `napi_complete_done()` says the core will poll again (IRQ
    /// deferral, `napi_defer_hard_irqs` and `gro_flush_timeout`; busy polling).
    irq_masked: AtomicBool,
    /// State of the pseudo-random pick of the DMA writes to time.
    dma_pick: AtomicU32,
    /// Driver and engine polls so far, to pick the ones to time.
    polls: AtomicU32,
    engine_polls: AtomicU32,
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
        let hw = Hw::new()?;
        KBox::pin_init(
            pin_init!(RxQueue {
                napi <- Opaque::zeroed(),
                engine <- Opaque::zeroed(),
                // SAFETY: `skb_queue_head_init` initializes the list and its lock.
                ring <- Opaque::ffi_init(|p| unsafe { bindings::skb_queue_head_init(p) }),
                hw <- new_spinlock_irq!(hw, "netgpu_sim_rxq_hw"),
                index,
                hdr_pool: AtomicPtr::new(ptr::null_mut()),
                data_pool: AtomicPtr::new(ptr::null_mut()),
                napi_added: AtomicBool::new(false),
                throttled: AtomicBool::new(false),
                on_ring: AtomicU32::new(0),
                irq_masked: AtomicBool::new(false),
                dma_pick: AtomicU32::new(0),
                polls: AtomicU32::new(0),
                engine_polls: AtomicU32::new(0),
                stats: RxStats::default(),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn stats(&self) -> &RxStats {
        &self.stats
    }

    /// Frames on the wire ring: a TSO send counts as the frames it makes, so the ring holds
    /// as many bytes as with frames.
    fn ring_len(&self) -> u32 {
        self.on_ring.load(Ordering::Relaxed)
    }

    /// Transmit side of the wire: posts `skb` to this queue's ring, or drops it if the ring
    /// is full. Stops the sender's TX queue when the ring fills up; the engine wakes it.
    pub(crate) fn post(
        &self,
        mut skb: Skb,
        info: WireInfo,
        ring_size: u32,
        txq: &TxQueue,
        tx: &TxStats,
    ) {
        let frames = frames(&skb);
        if self.ring_len() + frames > ring_size {
            self.stats
                .ring_full
                .fetch_add(u64::from(frames), Ordering::Relaxed);
            return;
        }
        info.store(skb.cb());
        self.on_ring.fetch_add(frames, Ordering::Relaxed);
        // SAFETY: `ring` is initialized; it takes over the skb.
        unsafe { bindings::skb_queue_tail(self.ring.get(), skb.into_raw()) };
        // Like a driver that stops its TX queue while the next skb might not find enough
        // descriptors: a largest send must fit.
        if self.ring_len() + max_send_frames(ring_size) > ring_size {
            self.throttled.store(true, Ordering::SeqCst);
            tx.stops.fetch_add(1, Ordering::Relaxed);
            txq.stop();
            // Pairs with the barrier in `complete_tx`: either the engine sees `throttled`,
            // or we see the ring it drained.
            core::sync::atomic::fence(Ordering::SeqCst);
            if self.ring_len() < ring_size / 2 {
                txq.wake();
            }
        }
        self.schedule_engine();
    }

    /// Unmasks the queue's interrupt, raising it for completions written while it was
    /// masked.
    fn unmask_irq(&self) {
        self.irq_masked.store(false, Ordering::Relaxed);
        core::sync::atomic::fence(Ordering::SeqCst);
        if self.hw.lock().cq.len() > 0 {
            self.schedule_napi();
        }
    }

    /// Raises the queue's interrupt for new completions, unless it is masked.
    fn raise_irq(&self) {
        // Pairs with the fence in `unmask_irq`: either it sees the completion, or we see
        // the interrupt unmasked.
        core::sync::atomic::fence(Ordering::SeqCst);
        if self.irq_masked.load(Ordering::Relaxed) {
            return;
        }
        if self.schedule_napi() {
            self.stats.irqs.fetch_add(1, Ordering::Relaxed);
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
        // was pending when it stopped ended with it. The driver posts buffers at once.
        self.unmask_irq();
        self.schedule_napi();
        self.schedule_engine();
    }

    /// Disables NAPI, gives the posted and completed buffers back to the pools, and moves
    /// the pools into `mem`.
    pub(crate) fn stop(&self, s: &PortState, mem: &mut QueueMem) {
        self.disable_napi(s.dev());
        self.give_back_all();
        self.take_pools(mem);
    }

    /// Hands the frames of `sent` to the peer's TX completion ([`crate::txc`]), which frees
    /// them on its own CPU, and has it wake the TX queues this ring stopped, once the ring
    /// is at most half full. A ring fuller than that is the engine's to drain: it polls
    /// again.
    fn complete_tx(&self, s: &PortState, sent: &mut Completed, budget: c_int) {
        core::sync::atomic::fence(Ordering::SeqCst);
        let wake = self.ring_len() < s.rings.rx.load(Ordering::Relaxed) / 2
            && self.throttled.swap(false, Ordering::AcqRel);
        let _guard = rcu::read_lock();
        match s.peer() {
            Some(peer) => peer.txc().complete(sent, wake, budget),
            None => sent.free(budget),
        }
    }

    /// Counts wire frame `wire` as received, or the frames of TSO send `wire`.
    fn count(&self, wire: &Skb, info: &WireInfo, split: bool, hdr_len: usize) {
        let len = wire.len() as usize;
        let frames = u64::from(frames(wire));
        self.stats.packets.fetch_add(frames, Ordering::Relaxed);
        self.stats.bytes.fetch_add(
            len as u64 + (frames - 1) * hdr_len as u64,
            Ordering::Relaxed,
        );
        if info.by_rule {
            self.stats.by_rule.fetch_add(frames, Ordering::Relaxed);
        }
        if split {
            self.stats.split.fetch_add(frames, Ordering::Relaxed);
            self.stats
                .split_bytes
                .fetch_add((len - hdr_len) as u64, Ordering::Relaxed);
        }
    }

    // ---- the engine ----

    /// Takes `nr_hdr` header and `nr_data` data buffers for a packet into `b`, and for a new
    /// packet (`new`) makes sure its completion entry will fit.
    fn take(&self, b: &mut Bufs, nr_hdr: usize, nr_data: usize, new: bool) -> Take {
        if nr_hdr > PACKET_BUFS || nr_data > PACKET_BUFS {
            return Take::Drop;
        }
        let mut hw = self.hw.lock();
        if new && hw.cq.space() == 0 {
            hw.cq_full = true;
            self.stats.cq_waits.fetch_add(1, Ordering::Relaxed);
            return Take::Wait;
        }
        if hw.hdr.len() < nr_hdr || hw.data.len() < nr_data {
            hw.starved = true;
            if hw.no_buffers {
                return Take::Drop;
            }
            self.stats.buffer_waits.fetch_add(1, Ordering::Relaxed);
            return Take::Wait;
        }
        b.nr_hdr = nr_hdr;
        b.nr_data = nr_data;
        for h in b.hdr.iter_mut().take(nr_hdr) {
            *h = hw.hdr.pop().unwrap_or(0);
        }
        for d in b.data.iter_mut().take(nr_data) {
            *d = hw.data.pop().unwrap_or(0);
        }
        Take::Got
    }

    /// Starts the packet for wire frame `wire`: the head in a header pool page, the rest of
    /// the frame in fragments. `Err(())` leaves the frame for later (too few buffers or
    /// completion entries); `Ok(None)` means it was dropped (counted). A TSO send makes the
    /// packet its frames coalesce into, complete (see `port::tso_whole`).
    fn begin(&self, s: &PortState, wire: &Skb, info: &WireInfo) -> Result<Option<Open>, ()> {
        let len = wire.len() as usize;
        let hds = s.rings.hds.load(Ordering::Relaxed)
            == bindings::ethtool_tcp_data_split_ETHTOOL_TCP_DATA_SPLIT_ENABLED as u8;
        let thresh = s.rings.hds_thresh.load(Ordering::Relaxed) as usize;
        let hdr_len = usize::from(info.hdr_len);
        let split = hds && hdr_len > 0 && hdr_len < len && len - hdr_len > thresh;
        let head_len = if split { hdr_len } else { len.min(HEAD_CAP) };
        let rest = (len - head_len).div_ceil(PAGE_SIZE);
        let (nr_hdr, nr_data) = if split { (1, rest) } else { (1 + rest, 0) };
        let mut b = Bufs::EMPTY;
        match self.take(&mut b, nr_hdr, nr_data, true) {
            Take::Got => {}
            Take::Wait => return Err(()),
            Take::Drop => {
                self.stats.alloc_fail.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
        };
        let page = b.hdr[0] as *mut bindings::page;
        // SAFETY: `page` is a posted header pool page, now ours: a lowmem page.
        let va = unsafe { bindings::page_address(page) }.cast::<u8>();
        // SAFETY: as above, from a DMA-mapping pool.
        let dma = unsafe { bindings::page_pool_get_dma_addr_netmem(hdr_netmem(b.hdr[0])) };
        let mut o = Open {
            cqe: Cqe {
                head: b.hdr[0],
                head_len: head_len as u32,
                split,
                info: *info,
                ..Cqe::EMPTY
            },
            va,
            run: None,
            tail: 0,
            failed: false,
        };
        o.failed = self
            .dma(&s.pair, dma + HEADROOM as u64, wire, 0, head_len)
            .is_err();
        let (frags, n) = b.frags(split, 1);
        self.append(&s.pair, &mut o, wire, head_len, &frags[..n]);
        let tso = wire.tso();
        if info.l4 {
            let seg = Segment::parse(wire.linear(), hdr_len, len);
            o.run = match tso {
                Some(t) => seg.and_then(|f| Run::whole(f, t.mss, t.segs)),
                None => seg.and_then(Run::start),
            };
        }
        // A TSO send the transmit side checked, but whose headers no longer say so: only a
        // sender rewriting them in flight does that.
        o.failed |= tso.is_some() && o.run.is_none();
        if !o.failed {
            self.count(wire, info, split, hdr_len);
        }
        Ok(Some(o))
    }

    /// Merges wire frame `wire` into the run of `o` if it continues it and buffers allow.
    /// `Err(())` if it continues the run but has to wait for buffers.
    fn merge(&self, s: &PortState, o: &mut Open, wire: &Skb, info: &WireInfo) -> Result<bool, ()> {
        let Some(run) = o.run.as_ref() else {
            return Ok(false);
        };
        // A TSO send is a packet of its own (`begin`).
        if !info.l4 || info.hdr_len != o.cqe.info.hdr_len || wire.tso().is_some() {
            return Ok(false);
        }
        let hdr_len = usize::from(info.hdr_len);
        let len = wire.len() as usize;
        let need = o.bufs_for(len.saturating_sub(hdr_len));
        if usize::from(o.cqe.nr_frags) + need > MAX_FRAGS {
            return Ok(false);
        }
        let mut next = *run;
        if !next.offer(o.first_hdr(), wire.linear(), len) {
            return Ok(false);
        }
        let (nr_hdr, nr_data) = if o.cqe.split { (0, need) } else { (need, 0) };
        let mut b = Bufs::EMPTY;
        match self.take(&mut b, nr_hdr, nr_data, false) {
            Take::Got => {}
            Take::Wait => return Err(()),
            // Ends the run; the frame starts a packet of its own, which drops it.
            Take::Drop => return Ok(false),
        };
        let (frags, n) = b.frags(o.cqe.split, 0);
        o.run = Some(next);
        self.count(wire, info, o.cqe.split, hdr_len);
        self.append(&s.pair, o, wire, hdr_len, &frags[..n]);
        Ok(true)
    }

    /// Writes bytes `from..` of wire frame `wire` into `o`: first the free space after the
    /// last fragment's data, then into `bufs`, which must be exactly the buffers the rest
    /// takes. A failed write marks `o` failed (it keeps the buffers, to give them back).
    fn append(
        &self,
        pair: &Pair,
        o: &mut Open,
        wire: &Skb,
        from: usize,
        bufs: &[bindings::netmem_ref],
    ) {
        let len = wire.len() as usize;
        let mut off = from;
        let mut unreadable = false;
        let last = usize::from(o.cqe.nr_frags);
        if o.cqe.room > 0 && off < len && last > 0 {
            let chunk = (len - off).min(o.cqe.room as usize);
            o.failed |= self.dma(pair, o.tail, wire, off, chunk).is_err();
            if let Some(f) = o.cqe.frags.get_mut(last - 1) {
                f.len += chunk as u32;
            }
            o.cqe.room -= chunk as u32;
            o.tail += chunk as u64;
            off += chunk;
        }
        for &nm in bufs {
            let chunk = len.saturating_sub(off).min(PAGE_SIZE);
            // SAFETY: `nm` comes from a DMA-mapping pool (pages or net_iovs alike).
            let dma = unsafe { bindings::page_pool_get_dma_addr_netmem(nm) };
            // SAFETY: `nm` is a netmem.
            unreadable |= unsafe { bindings::netmem_is_net_iov(nm) };
            o.failed |= chunk == 0 || self.dma(pair, dma, wire, off, chunk).is_err();
            let i = usize::from(o.cqe.nr_frags);
            match o.cqe.frags.get_mut(i) {
                Some(f) => {
                    *f = Frag {
                        netmem: nm,
                        len: chunk as u32,
                    };
                    o.cqe.nr_frags += 1;
                }
                None => {
                    // Cannot happen (`merge` checks room): give the buffer back at once.
                    self.put(nm, o.cqe.split);
                    o.failed = true;
                }
            }
            o.cqe.room = (PAGE_SIZE - chunk) as u32;
            o.tail = dma + chunk as u64;
            off += chunk;
        }
        if unreadable {
            self.stats.unreadable.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes the completion of `o`: its headers fixed up as one segment of a coalesced run
    /// if it merged several. Returns whether it did; a failed packet is dropped (counted).
    fn finish(&self, mut o: Open) -> bool {
        if o.failed {
            self.stats.alloc_fail.fetch_add(1, Ordering::Relaxed);
            self.give_back(&o.cqe);
            return false;
        }
        if let Some(run) = o.run.filter(|r| r.segs() > 1) {
            // SAFETY: the head page is this packet's alone (type invariant of `Open`), and
            // holds the first frame's headers (`head_len` >= `hdr_len`).
            let hdr = unsafe {
                core::slice::from_raw_parts_mut(o.va.add(HEADROOM), o.cqe.head_len as usize)
            };
            let mss = run.finish(hdr);
            let seg = run.first();
            o.cqe.gso = Some(Gso {
                mss,
                segs: run.segs(),
                v6: seg.v6(),
                csum_start: (HEADROOM + seg.l4()) as u16,
            });
            let len = u64::from(o.cqe.head_len)
                + o.cqe.frags().iter().map(|f| u64::from(f.len)).sum::<u64>();
            self.stats.hw_gro_packets.fetch_add(1, Ordering::Relaxed);
            self.stats.hw_gro_bytes.fetch_add(len, Ordering::Relaxed);
            self.stats
                .hw_gro_wire_packets
                .fetch_add(u64::from(run.segs()), Ordering::Relaxed);
            self.stats.hw_gro_wire_bytes.fetch_add(
                len + (u64::from(run.segs()) - 1) * seg.hdr_len() as u64,
                Ordering::Relaxed,
            );
        }
        if self.hw.lock().cq.push(o.cqe) {
            return true;
        }
        // Cannot happen (`take` reserved the entry).
        self.stats.alloc_fail.fetch_add(1, Ordering::Relaxed);
        self.give_back(&o.cqe);
        false
    }

    /// The engine: receives the frames on the wire ring, up to `budget`. Returns how many
    /// it took off the ring.
    fn run_engine(&self, s: &PortState, budget: c_int) -> c_int {
        let coalescing = s.dev().features() & NETIF_F_GRO_HW != 0;
        let mut done = 0;
        let mut open: Option<Open> = None;
        let mut completed = false;
        let mut wait = false;
        let mut dropped = false;
        // The frames whose transmission completed.
        let mut sent = Completed::new();
        while done < budget {
            // SAFETY: `ring` is initialized and owns the skbs queued on it.
            let Some(mut wire) = (unsafe { Skb::from_raw(bindings::skb_dequeue(self.ring.get())) })
            else {
                break;
            };
            self.on_ring.fetch_sub(frames(&wire), Ordering::Relaxed);
            let info = WireInfo::load(wire.cb());
            if let Some(o) = open.as_mut() {
                match self.merge(s, o, &wire, &info) {
                    Ok(true) => {
                        done += 1;
                        sent.push(wire, budget);
                        continue;
                    }
                    Ok(false) => {}
                    Err(()) => {
                        self.requeue(wire);
                        wait = true;
                        break;
                    }
                }
                if let Some(o) = open.take() {
                    completed |= self.finish(o);
                }
            }
            match self.begin(s, &wire, &info) {
                Ok(Some(o)) if coalescing && o.run.is_some_and(|r| !r.ended()) && !o.failed => {
                    open = Some(o)
                }
                Ok(Some(o)) => completed |= self.finish(o),
                // Dropped (counted): freed as a drop.
                Ok(None) => {
                    done += 1;
                    dropped = true;
                    drop(wire);
                    continue;
                }
                Err(()) => {
                    self.requeue(wire);
                    wait = true;
                    break;
                }
            }
            done += 1;
            sent.push(wire, budget);
        }
        if let Some(o) = open.take() {
            completed |= self.finish(o);
        }
        if completed {
            self.raise_irq();
        }
        if wait || dropped {
            // Out of buffers or completion entries: the driver posts more, or frees
            // entries, and schedules the engine again. After drops, it tries again to
            // post buffers for the frames to come.
            self.schedule_napi();
        }
        self.complete_tx(s, &mut sent, budget);
        if wait {
            0
        } else {
            done
        }
    }

    /// Puts a frame back at the head of the ring, where it waits for buffers.
    fn requeue(&self, wire: Skb) {
        self.on_ring.fetch_add(frames(&wire), Ordering::Relaxed);
        // SAFETY: `ring` is initialized; it takes over the skb.
        unsafe { bindings::skb_queue_head(self.ring.get(), wire.into_raw()) };
    }

    /// [`dma_write`], timed into the queue's `dma_ns` counter: one write in
    /// [`DMA_TIMING_EVERY`] is timed and stands for all of them, as reading the clock around
    /// every write costs a sizeable share of what it measures.
    fn dma(&self, pair: &Pair, dma: u64, wire: &Skb, off: usize, len: usize) -> Result {
        if !sample_random(&self.dma_pick, DMA_TIMING_EVERY) {
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

    // ---- the driver ----

    /// Builds the skb of completion `c`, or `None` (counted; the buffers go back).
    fn build(&self, s: &PortState, c: &Cqe) -> Option<*mut bindings::sk_buff> {
        let page = c.head as *mut bindings::page;
        // SAFETY: the completion's head is a header pool page the engine handed over.
        let head = unsafe { bindings::page_address(page) };
        // SAFETY: as above: a lowmem page of PAGE_SIZE bytes, ours.
        let raw = unsafe { bindings::napi_build_skb(head, PAGE_SIZE as u32) };
        // SAFETY: null, or a new skb that is ours.
        let Some(skb) = (unsafe { Skb::from_raw(raw) }) else {
            self.stats.alloc_fail.fetch_add(1, Ordering::Relaxed);
            self.give_back(c);
            return None;
        };
        // SAFETY: fresh skb over the page: headroom, then the head bytes the engine wrote;
        // the fragments are buffers of this queue's pools that the completion hands over,
        // at most `MAX_FRAGS`; the last one's free rest counts toward the truesize.
        unsafe {
            bindings::skb_mark_for_recycle(raw);
            bindings::skb_reserve(raw, HEADROOM as c_int);
            bindings::skb_put(raw, c.head_len);
            for (i, f) in c.frags().iter().enumerate() {
                bindings::skb_add_rx_frag_netmem(
                    raw,
                    i as c_int,
                    f.netmem,
                    0,
                    f.len as c_int,
                    f.len,
                );
            }
            (*raw).truesize += c.room;
        }
        if let Some(g) = c.gso {
            // SAFETY: our skb, not yet handed on; plain fields.
            unsafe {
                let sh = &mut *bindings::skb_shinfo(raw);
                sh.gso_size = g.mss;
                sh.gso_segs = g.segs;
                sh.gso_type = if g.v6 {
                    bindings::SKB_GSO_TCPV6 as u32
                } else {
                    bindings::SKB_GSO_TCPV4 as u32
                };
                let headers = (*raw).__bindgen_anon_4.headers.as_mut();
                headers.__bindgen_anon_1.__bindgen_anon_1.csum_start = g.csum_start;
                headers.__bindgen_anon_1.__bindgen_anon_1.csum_offset = 16;
            }
        }
        let info = &c.info;
        // SAFETY: a complete skb for our device.
        unsafe {
            let proto = bindings::eth_type_trans(raw, s.dev().as_raw());
            let headers = (*raw).__bindgen_anon_4.headers.as_mut();
            headers.protocol = proto;
            if c.gso.is_some() {
                headers.set_ip_summed(bindings::CHECKSUM_PARTIAL as u8);
            } else if info.l4 {
                headers.set_ip_summed(bindings::CHECKSUM_UNNECESSARY as u8);
            }
            bindings::skb_record_rx_queue(raw, self.index as u16);
            bindings::skb_set_hash(
                raw,
                info.hash,
                if info.l4 {
                    bindings::pkt_hash_types_PKT_HASH_TYPE_L4
                } else {
                    bindings::pkt_hash_types_PKT_HASH_TYPE_L3
                },
            );
        }
        Some(skb.into_raw())
    }

    /// Posts buffers from the pools until the posted rings are full or a pool runs dry,
    /// and schedules the engine if it waits for buffers or completion entries.
    fn refill(&self) {
        let (nr_hdr, nr_data) = {
            let hw = self.hw.lock();
            (hw.hdr.space(), hw.data.space())
        };
        let hdr_pool = self.hdr_pool.load(Ordering::Acquire);
        let data_pool = self.data_pool.load(Ordering::Acquire);
        let added = self.post_buffers(
            nr_hdr,
            || {
                // SAFETY: `hdr_pool` is this queue's live pool while NAPI runs.
                let page = unsafe {
                    bindings::page_pool_alloc_pages(
                        hdr_pool,
                        bindings::GFP_ATOMIC | bindings::__GFP_NOWARN,
                    )
                };
                (!page.is_null()).then_some(page as usize)
            },
            |hw| &mut hw.hdr,
        ) + self.post_buffers(
            nr_data,
            || {
                // SAFETY: `data_pool` is this queue's live pool while NAPI runs.
                let nm = unsafe { bindings::page_pool_dev_alloc_netmems(data_pool) };
                (nm != 0).then_some(nm)
            },
            |hw| &mut hw.data,
        );
        let kick = {
            let mut hw = self.hw.lock();
            let mut kick = false;
            if added > 0 {
                hw.no_buffers = false;
            }
            if hw.starved {
                hw.starved = false;
                // Nothing to post: the engine drops what waits, as a NIC out of
                // descriptors would, and starving again brings it back here.
                hw.no_buffers = added == 0;
                kick = true;
            }
            if hw.cq_full && hw.cq.space() > 0 {
                hw.cq_full = false;
                kick = true;
            }
            kick
        };
        if kick {
            self.schedule_engine();
        }
    }

    /// Posts up to `n` buffers from `alloc` to the ring `ring` picks, allocating outside the
    /// lock in batches of 32; stops when `alloc` has none. Returns how many it posted.
    fn post_buffers<T: Copy + Default>(
        &self,
        n: usize,
        mut alloc: impl FnMut() -> Option<T>,
        ring: impl Fn(&mut Hw) -> &mut Ring<T>,
    ) -> usize {
        let mut batch = [T::default(); 32];
        let mut added = 0;
        while added < n {
            let want = (n - added).min(batch.len());
            let mut got = 0;
            for b in batch.iter_mut().take(want) {
                let Some(v) = alloc() else { break };
                *b = v;
                got += 1;
            }
            let mut hw = self.hw.lock();
            for &v in batch.iter().take(got) {
                // Room was checked, and only this driver posts.
                ring(&mut hw).push(v);
            }
            drop(hw);
            added += got;
            if got < want {
                break;
            }
        }
        added
    }

    /// Returns a buffer of a completion to its pool: a data pool netmem if `split`, else a
    /// header pool page.
    fn put(&self, netmem: bindings::netmem_ref, split: bool) {
        let pool = if split {
            self.data_pool.load(Ordering::Acquire)
        } else {
            self.hdr_pool.load(Ordering::Acquire)
        };
        // SAFETY: `netmem` is a buffer of that pool, which is live while it has buffers out,
        // handed back once.
        unsafe { bindings::page_pool_put_full_netmem(pool, netmem, false) };
    }

    /// Returns the buffers of completion `c` to the pools.
    fn give_back(&self, c: &Cqe) {
        self.put(hdr_netmem(c.head), false);
        for f in c.frags() {
            self.put(f.netmem, c.split);
        }
    }

    /// Returns every posted buffer and unreceived completion to the pools. Both NAPI
    /// instances are disabled; the pools are still installed.
    fn give_back_all(&self) {
        loop {
            let c = self.hw.lock().cq.pop();
            let Some(c) = c else { break };
            self.give_back(&c);
        }
        loop {
            let p = self.hw.lock().hdr.pop();
            let Some(p) = p else { break };
            self.put(hdr_netmem(p), false);
        }
        loop {
            let nm = self.hw.lock().data.pop();
            let Some(nm) = nm else { break };
            self.put(nm, true);
        }
        let mut hw = self.hw.lock();
        hw.starved = false;
        hw.no_buffers = false;
        hw.cq_full = false;
    }
}

/// Whether to time this event of those `count` counts: one in `every`. One NAPI instance
/// is the counter's only writer.
fn sample(count: &AtomicU32, every: u32) -> bool {
    let n = count.load(Ordering::Relaxed);
    count.store(n.wrapping_add(1), Ordering::Relaxed);
    n % every == 0
}

/// Whether to time this event: one in `every` (a power of two), picked pseudo-randomly
/// (xorshift32 over `state`), not by a fixed stride. Each frame takes a fixed pattern of DMA
/// writes (its head, then one to three payload pages), so a stride would time the same kind
/// of write every time: the head only, for example, at MTU 1500. One NAPI instance is the
/// state's only writer.
fn sample_random(state: &AtomicU32, every: u32) -> bool {
    let mut x = state.load(Ordering::Relaxed).max(1);
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    state.store(x, Ordering::Relaxed);
    x & (every - 1) == 0
}

/// The CPU's clock, in nanoseconds.
fn now_ns() -> u64 {
    // SAFETY: reads the CPU's clock; no preconditions.
    unsafe { bindings::local_clock() }
}

/// Time one poll in [`POLL_TIMING_EVERY`] spends in the driver or engine, outside the
/// stack's calls.
struct PollTimer {
    start: u64,
    stack: u64,
}

impl PollTimer {
    fn new(polls: &AtomicU32) -> Option<Self> {
        sample(polls, POLL_TIMING_EVERY).then(|| PollTimer {
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

    fn finish(self, counter: &AtomicU64) {
        let ns = now_ns()
            .saturating_sub(self.start)
            .saturating_sub(self.stack);
        counter.fetch_add(ns * u64::from(POLL_TIMING_EVERY), Ordering::Relaxed);
    }
}

/// Most frames of a TSO send the wire carries whole to a ring of `ring_size` frames: a
/// quarter of the ring, so that the sender stops (see [`RxQueue::post`]) with room left for
/// one, and wakes with the ring half empty; and at most 64, which a 64 KiB send does not
/// exceed at MSS 1024 and up.
pub(crate) fn max_send_frames(ring_size: u32) -> u32 {
    (ring_size / 4).clamp(1, 64)
}

/// The frames `wire` makes on the wire: those of a TSO send, else one.
fn frames(wire: &Skb) -> u32 {
    wire.tso().map_or(1, |t| u32::from(t.segs))
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
    // buffer the driver posted and the engine took, so nothing else accesses it.
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

/// The driver's NAPI poll.
extern "C" fn poll(napi: *mut bindings::napi_struct, budget: c_int) -> c_int {
    // SAFETY: `napi` is the first field of a `RxQueue` (`repr(C)`), pinned in its box.
    let q = unsafe { &*napi.cast::<RxQueue>() };
    // SAFETY: the NAPI instance was added for this device, which outlives it.
    let dev = unsafe { NetDev::from_raw((*napi).dev) };
    let Some(s) = port::state(dev) else {
        return 0;
    };
    let mut timer = PollTimer::new(&q.polls);
    let mut done = 0;
    while done < budget {
        let c = q.hw.lock().cq.pop();
        let Some(c) = c else { break };
        done += 1;
        let Some(skb) = q.build(s, &c) else {
            continue;
        };
        // SAFETY: a complete skb, handed to GRO on our NAPI instance.
        PollTimer::stack(&mut timer, || unsafe {
            bindings::napi_gro_receive(napi, skb)
        });
    }
    q.refill();
    if done < budget {
        // SAFETY: we are the NAPI poll of `napi`.
        let complete = PollTimer::stack(&mut timer, || unsafe {
            bindings::napi_complete_done(napi, done)
        });
        if complete {
            q.unmask_irq();
        } else {
            // The core polls again (its deferral timer, or a busy poller): keep the
            // interrupt masked until a poll completes for good. Completions written before
            // this store scheduled NAPI once more, which is harmless.
            q.irq_masked.store(true, Ordering::Relaxed);
        }
    }
    if let Some(t) = timer {
        t.finish(&q.stats.driver_ns);
    }
    done
}

/// The engine's NAPI poll.
extern "C" fn engine_poll(napi: *mut bindings::napi_struct, budget: c_int) -> c_int {
    // SAFETY: `napi` is the `engine` field of a `RxQueue`, pinned in its box.
    let q = unsafe {
        &*napi
            .byte_sub(core::mem::offset_of!(RxQueue, engine))
            .cast::<RxQueue>()
    };
    // SAFETY: the NAPI instance was added for this device, which outlives it.
    let dev = unsafe { NetDev::from_raw((*napi).dev) };
    let Some(s) = port::state(dev) else {
        return 0;
    };
    let timer = PollTimer::new(&q.engine_polls);
    let done = q.run_engine(s, budget);
    if done < budget {
        // No work is reported, so IRQ deferral, which is for the driver's instance, does
        // not hold the engine back.
        // SAFETY: we are the NAPI poll of `napi`.
        unsafe { bindings::napi_complete_done(napi, 0) };
    }
    if let Some(t) = timer {
        t.finish(&q.stats.engine_ns);
    }
    done
}

// ---- the C edge of the control path ----
//
// The NAPI instances, the pool slots and the ring, reached by the control methods above
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

    /// The engine's NAPI instance.
    fn engine(&self) -> &Napi {
        // SAFETY: as for `napi`.
        unsafe { Napi::from_opaque(&self.engine) }
    }

    /// Adds the queue's NAPI instance to `dev`, unless it is added already. Instance lock
    /// held.
    fn add_napi(&self, dev: &NetDev) {
        if !self.napi_added.swap(true, Ordering::AcqRel) {
            // SAFETY: the NAPI struct is zeroed or was deleted (`napi_added` was false);
            // `poll` is the poll of a NAPI instance embedded first in an `RxQueue`, as `napi`
            // is; `index` is a queue of `dev`; instance lock held.
            unsafe { self.napi().add_locked(dev, poll, self.index) };
        }
    }

    /// Deletes the queue's NAPI instance, if added, and waits until the device no longer
    /// reaches it. NAPI is disabled (`stop`); instance lock held.
    fn del_napi(&self) {
        if self.napi_added.swap(false, Ordering::AcqRel) {
            // SAFETY: added in `open`, disabled by `stop`; instance lock held.
            unsafe { self.napi().del_locked() };
            netdev::synchronize_net();
        }
    }

    /// Adds the engine's NAPI instance, associates the queue with its own and enables both.
    /// Instance lock held.
    ///
    /// The engine is added at each start, not enabled again: an instance with no NAPI
    /// config gets a new ID when enabled, the highest yet, but keeps its place in the
    /// device's list, which netdev netlink's `napi-get` dump needs sorted by ID (it warns,
    /// and skips the instance). Added, it goes to the head of the list, where that ID goes.
    fn enable_napi(&self, dev: &NetDev) {
        let napi = self.napi();
        // SAFETY: the queue's instance is added (the queue is open) and disabled (stopped);
        // the engine's is zeroed or was deleted by `disable_napi` an RCU grace period ago;
        // `engine_poll` is the poll of an instance that is the `engine` field of an
        // `RxQueue`; `index` is a queue of `dev`; instance lock held.
        unsafe {
            self.engine().add_tx_locked(dev, engine_poll, ENGINE_WEIGHT);
            dev.set_queue_napi(QueueType::Rx, self.index, Some(napi));
            napi.enable_locked();
            self.engine().enable_locked();
        }
    }

    /// Disables the NAPI instances, the engine first, deletes the engine's, and dissociates
    /// the queue from its own. Waits until the device no longer reaches the engine's, which
    /// `enable_napi` adds again. Instance lock held.
    fn disable_napi(&self, dev: &NetDev) {
        // SAFETY: the NAPI instances are added and enabled (the queue is started); `index`
        // is a queue of `dev`; instance lock held.
        unsafe {
            self.engine().disable_locked();
            self.engine().del_locked();
            self.napi().disable_locked();
            dev.set_queue_napi(QueueType::Rx, self.index, None);
        }
        netdev::synchronize_net();
    }

    /// Schedules a driver poll; returns whether this call did. NAPI is added (the queue is
    /// open).
    fn schedule_napi(&self) -> bool {
        // SAFETY: the NAPI instance is added, and enabled by `start` before it calls this.
        unsafe { self.napi().schedule() }
    }

    /// Schedules an engine poll. The queue is open: the peer's transmit posts only to open
    /// queues (`PortState::active`).
    fn schedule_engine(&self) {
        // SAFETY: an open queue's engine was added by `start`; between `stop` and the next
        // `start` it is deleted, and stays marked as scheduled (type invariant).
        unsafe { self.engine().schedule() };
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
        self.on_ring.store(0, Ordering::Relaxed);
    }
}
