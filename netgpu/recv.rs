// SPDX-License-Identifier: GPL-2.0

//! Receiving a socket's stream into completions, and taking buffers back
//! from the refill ring.
//!
//! Payload in a net_iov of one of this context's bindings is completed in
//! place: the completion takes a page pool reference and a user reference
//! on the buffer, both dropped when user space returns it. Payload the CPU
//! can read is copied into a free buffer of a region and completed with
//! `NETGPU_CQE_COPY`. Payload in any other net_iov (another context's, or
//! another provider's) stops the receive with `EACCES`: it is never
//! exposed.

use core::cmp::min;

use kernel::{page::PAGE_SIZE, prelude::*, sync::Arc};

use super::{
    context::State,
    region::{CpuMap, Region},
};
use crate::{
    net::{
        provider,
        skb::{Frag, Skb},
        socket::Receiver,
    },
    uapi::{self, NetgpuCqe},
};

/// Counters of a context.
#[derive(Default, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) zc_bytes: u64,
    pub(crate) copy_bytes: u64,
    pub(crate) refill_errors: u64,
    pub(crate) cq_overflows: u64,
    pub(crate) foreign_frags: u64,
}

/// Takes back the buffers user space queued on the refill ring.
pub(crate) fn drain_refill(state: &mut State) {
    let State {
        rings,
        regions,
        stats,
        ..
    } = state;
    let Some(rings) = rings.as_mut() else {
        return;
    };
    let mut bad = 0u32;
    rings.rq.drain(u32::MAX, |rqe| {
        let ok = regions
            .iter()
            .find(|r| r.id == rqe.region_id)
            .is_some_and(|r| {
                usize::try_from(rqe.offset / PAGE_SIZE as u64).is_ok_and(|idx| r.user_return(idx))
            });
        if !ok {
            bad += 1;
        }
    });
    if bad > 0 {
        rings.rq.count_bad(bad);
        stats.refill_errors += u64::from(bad);
    }
}

/// A buffer the copy fallback is filling.
struct CopyBuf {
    region: Arc<Region>,
    idx: usize,
    fill: usize,
}

/// One receive call: the context's state and what it did so far.
pub(crate) struct Recv<'a> {
    ctx_id: u64,
    socket_id: u32,
    state: &'a mut State,
    copy: Option<CopyBuf>,
    cpu_region: Option<Arc<Region>>,
    /// Payload bytes completed.
    pub(crate) bytes: u64,
    /// Completions posted.
    pub(crate) completions: u32,
    /// Why the receive stopped early, if it did.
    pub(crate) stop: Option<Error>,
}

impl<'a> Recv<'a> {
    /// A receive on attached socket `socket_id` of context `ctx_id`.
    pub(crate) fn new(ctx_id: u64, socket_id: u32, state: &'a mut State) -> Self {
        Recv {
            ctx_id,
            socket_id,
            state,
            copy: None,
            cpu_region: None,
            bytes: 0,
            completions: 0,
            stop: None,
        }
    }

    /// Posts a completion; `ENOSPC` if the ring is full.
    fn post(&mut self, region_id: u32, offset: u64, len: u32, flags: u32) -> Result {
        let rings = self.state.rings.as_mut().ok_or(ENXIO)?;
        let cqe = NetgpuCqe {
            offset,
            len,
            flags,
            region_id,
            socket_id: self.socket_id,
            reserved: 0,
        };
        if !rings.cq.push(&cqe) {
            rings.cq.count_overflow();
            self.state.stats.cq_overflows += 1;
            return Err(ENOSPC);
        }
        self.completions += 1;
        Ok(())
    }

    /// Posts the end-of-stream completion.
    pub(crate) fn post_eof(&mut self) -> Result {
        self.post(0, 0, 0, uapi::NETGPU_CQE_EOF)
    }

    /// Completes `n` bytes of the fragment's net_iov in place.
    fn zero_copy(&mut self, niov_frag: &Frag<'_>, foff: u32, n: u32) -> Result {
        let niov = niov_frag.net_iov().ok_or(EACCES)?;
        let b = provider::binding_of_niov(niov)
            .filter(|b| b.ctx_id == self.ctx_id)
            .ok_or(EACCES)?;
        let region = &b.region;
        let idx = region.area.index_of(niov_frag.netmem()).ok_or(EACCES)?;
        let off = Region::offset_of(idx) + u64::from(niov_frag.off) + u64::from(foff);
        self.post(region.id, off, n, 0)?;
        // The buffer stays out of the pool until user space returns it.
        niov.pp_ref();
        region.uref_get(idx);
        b.zc_bytes
            .fetch_add(u64::from(n), core::sync::atomic::Ordering::Relaxed);
        self.state.stats.zc_bytes += u64::from(n);
        self.bytes += u64::from(n);
        Ok(())
    }

    /// Copies `n` bytes at `off` of `skb` into region buffers.
    fn copy(&mut self, skb: &Skb, off: u32, n: u32) -> Result<u32> {
        let mut done = 0u32;
        while done < n {
            let (region, idx, fill) = self.copy_buf()?;
            let chunk = min(n - done, (PAGE_SIZE - fill) as u32);
            {
                let cpu = region.cpu.lock();
                let m: &CpuMap = cpu.as_ref().ok_or(ENXIO)?;
                m.with_slice(idx * PAGE_SIZE + fill, chunk as usize, |dst| {
                    skb.copy_to(off + done, dst)
                })??;
            }
            if let Err(e) = self.post(
                region.id,
                Region::offset_of(idx) + fill as u64,
                chunk,
                uapi::NETGPU_CQE_COPY,
            ) {
                return if done > 0 { Ok(done) } else { Err(e) };
            }
            region.uref_get(idx);
            if let Some(c) = self.copy.as_mut() {
                c.fill += chunk as usize;
                if c.fill == PAGE_SIZE {
                    self.close_copy_buf();
                }
            }
            self.state.stats.copy_bytes += u64::from(chunk);
            self.bytes += u64::from(chunk);
            done += chunk;
        }
        Ok(done)
    }

    /// The buffer the copy fallback fills: (region, index, bytes used).
    fn copy_buf(&mut self) -> Result<(Arc<Region>, usize, usize)> {
        if let Some(c) = &self.copy {
            return Ok((c.region.clone(), c.idx, c.fill));
        }
        let region = self.state.regions.first().cloned().ok_or(ENOBUFS)?;
        if self.cpu_region.is_none() {
            {
                let mut cpu = region.cpu.lock();
                if cpu.is_none() {
                    *cpu = Some(region.cpu_map()?);
                }
                if let Some(m) = cpu.as_ref() {
                    m.begin_cpu_write()?;
                }
            }
            self.cpu_region = Some(region.clone());
        }
        let idx = region.take_free().ok_or(ENOBUFS)? as usize;
        // The fallback's own hold, dropped when the buffer is full or the
        // receive ends; user space's completions add theirs.
        region.uref_get(idx);
        self.copy = Some(CopyBuf {
            region: region.clone(),
            idx,
            fill: 0,
        });
        Ok((region, idx, 0))
    }

    fn close_copy_buf(&mut self) {
        if let Some(c) = self.copy.take() {
            c.region.user_return(c.idx);
        }
    }

    /// Ends the receive: releases the copy buffer and CPU access.
    pub(crate) fn finish(mut self) -> (u64, u32, Option<Error>) {
        self.close_copy_buf();
        if let Some(r) = self.cpu_region.take() {
            if let Some(m) = r.cpu.lock().as_ref() {
                m.end_cpu_write();
            }
        }
        (self.bytes, self.completions, self.stop)
    }

    /// Receives `len` bytes of `skb` from `offset`; returns how many were
    /// completed, stopping at the first error.
    fn walk(&mut self, skb: &Skb, offset: u32, len: u32) -> Result<u32> {
        let end = offset + len;
        let mut off = offset;
        let mut start = 0;
        // The skb's data in order: linear part, page fragments, frag list.
        let pieces = Iterator::chain(
            core::iter::once(Piece::Linear(skb.headlen())),
            skb.frags().map(Piece::Frag),
        );
        let pieces = Iterator::chain(pieces, skb.frag_list().map(Piece::Skb));
        for p in pieces {
            let pend = start + p.len();
            if off < pend && off < end {
                let n = min(pend, end) - off;
                let got = match &p {
                    Piece::Frag(f) if f.net_iov().is_some() => {
                        self.zero_copy(f, off - start, n).map(|()| n)
                    }
                    Piece::Linear(_) | Piece::Frag(_) => self.copy(skb, off, n),
                    Piece::Skb(child) => self.walk(child, off - start, n),
                };
                match got {
                    Ok(g) => {
                        off += g;
                        if g < n {
                            break;
                        }
                    }
                    // What was completed stands; the error ends this call.
                    Err(e) if off > offset => {
                        self.stop = Some(e);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            start = pend;
        }
        Ok(off - offset)
    }
}

/// A contiguous part of an skb's data.
enum Piece<'a> {
    /// The linear part, of this length.
    Linear(u32),
    /// A page fragment.
    Frag(Frag<'a>),
    /// An skb of the frag list.
    Skb(&'a Skb),
}

impl Piece<'_> {
    fn len(&self) -> u32 {
        match self {
            Piece::Linear(n) => *n,
            Piece::Frag(f) => f.len,
            Piece::Skb(s) => s.len(),
        }
    }
}

impl Receiver for Recv<'_> {
    fn recv(&mut self, skb: &Skb, offset: u32, len: usize) -> Result<usize> {
        if let Some(e) = self.stop {
            return Err(e);
        }
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        match self.walk(skb, offset, len) {
            Ok(n) => Ok(n as usize),
            Err(e) => {
                if e == EACCES {
                    self.state.stats.foreign_frags += 1;
                }
                self.stop = Some(e);
                Err(e)
            }
        }
    }
}
