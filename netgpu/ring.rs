// SPDX-License-Identifier: GPL-2.0

//! The completion ring (kernel to user) and the refill ring (user to
//! kernel) of a context. The memory layout and the ordering rules are the
//! ABI's, documented in `uapi/linux/netgpu.h`.
//!
//! The kernel keeps its own copy of the index it produces (CQ tail) or
//! consumes (RQ head) and only publishes it to the shared memory; the index
//! it reads from user space is used for nothing but a bounded count, so a
//! corrupt ring can stall its own context and nothing else.

use core::sync::atomic::Ordering;

use kernel::{prelude::*, sync::Arc};

use super::ringmem::{RingMem, Word, HDR_SIZE};
use crate::uapi::{self, NetgpuCqe, NetgpuRingOffsets, NetgpuRqe, Wire};

/// Whether `n` is a valid number of ring entries.
pub(crate) fn entries_ok(n: u32) -> bool {
    n.is_power_of_two() && n <= uapi::NETGPU_MAX_RING_ENTRIES
}

/// The part common to both rings.
struct Ring {
    mem: Arc<RingMem>,
    entries: u32,
    /// The kernel's own index: the CQ's tail, the RQ's head.
    own: u32,
}

impl Ring {
    fn new(entries: u32, entry_size: usize) -> Result<Self> {
        if !entries_ok(entries) {
            return Err(EINVAL);
        }
        let mem = Arc::new(RingMem::new(entries as usize * entry_size)?, GFP_KERNEL)?;
        Ok(Ring {
            mem,
            entries,
            own: 0,
        })
    }

    /// Byte offset of the slot of index `i`.
    fn slot(&self, i: u32, entry_size: usize) -> usize {
        HDR_SIZE + (i & (self.entries - 1)) as usize * entry_size
    }

    /// Adds `n` to the kernel's drop counter; the kernel is its only writer.
    fn count_drop(&self, n: u32) {
        let w = self.mem.word(Word::Dropped);
        w.store(w.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    fn offsets(&self, mmap_offset: u64) -> NetgpuRingOffsets {
        NetgpuRingOffsets {
            mmap_offset,
            mmap_size: self.mem.size() as u64,
            head: Word::Head.offset() as u32,
            tail: Word::Tail.offset() as u32,
            dropped: Word::Dropped.offset() as u32,
            entries: HDR_SIZE as u32,
            ring_entries: self.entries,
            __pad: 0,
        }
    }
}

/// The completion ring: the kernel produces, user space consumes.
pub(crate) struct Cq(Ring);

impl Cq {
    /// A ring of `entries` completions.
    pub(crate) fn new(entries: u32) -> Result<Self> {
        Ok(Cq(Ring::new(entries, NetgpuCqe::SIZE)?))
    }

    /// Free slots, as far as the kernel can tell from user space's head.
    pub(crate) fn space(&self) -> u32 {
        let head = self.0.mem.word(Word::Head).load(Ordering::Acquire);
        let used = self.0.own.wrapping_sub(head);
        self.0.entries.saturating_sub(used)
    }

    /// Posts `cqe`; `false` if the ring is full.
    pub(crate) fn push(&mut self, cqe: &NetgpuCqe) -> bool {
        if self.space() == 0 {
            return false;
        }
        let mut b = [0u8; NetgpuCqe::SIZE];
        if cqe.encode(&mut b).is_none() || !self.0.mem.write(self.0.slot(self.0.own, b.len()), &b) {
            return false;
        }
        self.0.own = self.0.own.wrapping_add(1);
        self.0
            .mem
            .word(Word::Tail)
            .store(self.0.own, Ordering::Release);
        true
    }

    /// Records that a receive stopped because the ring was full.
    pub(crate) fn count_overflow(&self) {
        self.0.count_drop(1);
    }

    /// The ring's memory, to map it.
    pub(crate) fn mem(&self) -> &Arc<RingMem> {
        &self.0.mem
    }

    /// The offsets reported to user space.
    pub(crate) fn offsets(&self) -> NetgpuRingOffsets {
        self.0.offsets(uapi::NETGPU_MMAP_CQ)
    }
}

/// The refill ring: user space produces, the kernel consumes.
pub(crate) struct Rq(Ring);

impl Rq {
    /// A ring of `entries` returned buffers.
    pub(crate) fn new(entries: u32) -> Result<Self> {
        Ok(Rq(Ring::new(entries, NetgpuRqe::SIZE)?))
    }

    /// Takes up to `max` entries and hands each to `f`; returns how many.
    ///
    /// At most one ring's worth is read per call, whatever user space wrote
    /// as its tail.
    pub(crate) fn drain(&mut self, max: u32, mut f: impl FnMut(NetgpuRqe)) -> u32 {
        let tail = self.0.mem.word(Word::Tail).load(Ordering::Acquire);
        let n = tail.wrapping_sub(self.0.own).min(self.0.entries).min(max);
        let mut b = [0u8; NetgpuRqe::SIZE];
        for _ in 0..n {
            let rqe = if self.0.mem.read(self.0.slot(self.0.own, b.len()), &mut b) {
                NetgpuRqe::decode(&b).unwrap_or_default()
            } else {
                NetgpuRqe::default()
            };
            self.0.own = self.0.own.wrapping_add(1);
            f(rqe);
        }
        if n > 0 {
            self.0
                .mem
                .word(Word::Head)
                .store(self.0.own, Ordering::Release);
        }
        n
    }

    /// Records `n` entries that named no buffer user space held.
    pub(crate) fn count_bad(&self, n: u32) {
        self.0.count_drop(n);
    }

    /// The ring's memory, to map it.
    pub(crate) fn mem(&self) -> &Arc<RingMem> {
        &self.0.mem
    }

    /// The offsets reported to user space.
    pub(crate) fn offsets(&self) -> NetgpuRingOffsets {
        self.0.offsets(uapi::NETGPU_MMAP_RQ)
    }
}

/// Both rings of a context.
pub(crate) struct Rings {
    /// Completions.
    pub(crate) cq: Cq,
    /// Returned buffers.
    pub(crate) rq: Rq,
}

#[kunit_tests(netgpu_ring)]
mod tests {
    use super::*;

    #[test]
    fn entry_counts() {
        assert!(!entries_ok(0));
        assert!(entries_ok(1));
        assert!(entries_ok(2));
        assert!(!entries_ok(3));
        assert!(entries_ok(uapi::NETGPU_MAX_RING_ENTRIES));
        assert!(!entries_ok(uapi::NETGPU_MAX_RING_ENTRIES * 2));
        assert!(!entries_ok(u32::MAX));
    }

    #[test]
    fn cq_fills_and_drains() -> Result {
        let mut cq = Cq::new(4)?;
        let o = cq.offsets();
        assert_eq!(o.ring_entries, 4);
        assert_eq!(o.mmap_size as usize, kernel::page::PAGE_SIZE);
        for i in 0..4u64 {
            let e = NetgpuCqe {
                offset: i * 4096,
                len: 100,
                ..Default::default()
            };
            assert!(cq.push(&e));
        }
        let e = NetgpuCqe::default();
        assert!(!cq.push(&e));
        assert_eq!(cq.mem().word(Word::Tail).load(Ordering::Acquire), 4);
        // The consumer reads slot 1 and frees two slots.
        let mut b = [0u8; NetgpuCqe::SIZE];
        assert!(cq.mem().read(HDR_SIZE + NetgpuCqe::SIZE, &mut b));
        assert_eq!(NetgpuCqe::decode(&b).map(|c| c.offset), Some(4096));
        cq.mem().word(Word::Head).store(2, Ordering::Release);
        assert_eq!(cq.space(), 2);
        // Indexes wrap: the fifth entry goes to slot 0.
        let e = NetgpuCqe {
            offset: 7,
            ..Default::default()
        };
        assert!(cq.push(&e));
        assert!(cq.mem().read(HDR_SIZE, &mut b));
        assert_eq!(NetgpuCqe::decode(&b).map(|c| c.offset), Some(7));
        Ok(())
    }

    #[test]
    fn cq_bogus_head_means_full() -> Result {
        let mut cq = Cq::new(8)?;
        // A head ahead of the tail claims more than a ring's worth is used.
        cq.mem().word(Word::Head).store(100, Ordering::Release);
        assert_eq!(cq.space(), 0);
        assert!(!cq.push(&NetgpuCqe::default()));
        Ok(())
    }

    #[test]
    fn rq_reads_at_most_a_ring() -> Result {
        let mut rq = Rq::new(4)?;
        let mut b = [0u8; NetgpuRqe::SIZE];
        for i in 0..4u32 {
            let e = NetgpuRqe {
                offset: u64::from(i) * 4096,
                region_id: 1,
                __pad: 0,
            };
            assert_eq!(e.encode(&mut b), Some(()));
            assert!(rq.mem().write(HDR_SIZE + i as usize * NetgpuRqe::SIZE, &b));
        }
        rq.mem().word(Word::Tail).store(2, Ordering::Release);
        let mut seen = [u64::MAX; 4];
        let mut n = 0;
        let got = rq.drain(u32::MAX, |e| {
            seen[n] = e.offset;
            n += 1;
        });
        assert_eq!(got, 2);
        assert_eq!(seen[..2], [0, 4096]);
        assert_eq!(rq.mem().word(Word::Head).load(Ordering::Acquire), 2);
        // A tail far ahead: one ring's worth, then nothing more is invented.
        rq.mem().word(Word::Tail).store(1000, Ordering::Release);
        assert_eq!(rq.drain(u32::MAX, |_| ()), 4);
        assert_eq!(rq.drain(1, |_| ()), 1);
        rq.count_bad(3);
        assert_eq!(rq.mem().word(Word::Dropped).load(Ordering::Relaxed), 3);
        Ok(())
    }
}
