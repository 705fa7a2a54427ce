// SPDX-License-Identifier: GPL-2.0

//! Receive coalescing of netgpu-sim's "hardware" (`NETIF_F_GRO_HW`, `ethtool -K DEV
//! rx-gro-hw on|off`), as NICs do it (bnxt TPA, mlx5 SHAMPO): in-order TCP segments of one
//! flow that follow each other in an RX ring become one skb, with the first segment's
//! headers, the payloads packed back to back into fragments, and GSO metadata, so the
//! stack sees the segments (and can segment the skb again when it forwards it) but pays its
//! per-packet costs once.
//!
//! The merge rules are software GRO's (`tcp_gro_receive()`, `inet_gro_receive()`,
//! `ipv6_gro_receive()`): headers identical but for lengths, checksums, the IPv4 ID, which
//! counts up by one, the sequence number, which continues the previous segment, and PSH,
//! which ends the run, as does a segment shorter than the first (the MSS). Segments with
//! other flags than ACK and PSH are never merged.
//!
//! Everything here works on header bytes; there is no `unsafe` in this file.

use kernel::prelude::*;

use core::ops::Range;

use crate::flow::{be16, ETH_HLEN, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP};

const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
/// Largest IPv4 total length or IPv6 payload length.
const MAX_IP_LEN: usize = 0xffff;
/// Longest headers a run merges: Ethernet, VLAN, IPv4 with options, TCP with options.
pub(crate) const MAX_HDR: usize = 14 + 4 + 60 + 60;

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(d) = b.get_mut(at..at + 2) {
        d.copy_from_slice(&v.to_be_bytes());
    }
}

/// The ones' complement sum of `b` as big-endian 16-bit words, added to `sum`, not folded.
fn sum16(b: &[u8], mut sum: u32) -> u32 {
    for w in b.chunks(2) {
        let hi = u32::from(w[0]) << 8;
        let lo = w.get(1).copied().map_or(0, u32::from);
        sum = sum.wrapping_add(hi | lo);
    }
    sum
}

/// Folds a 32-bit ones' complement sum to 16 bits.
fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Whether `a` and `b`, of equal length, hold the same bytes: compared word by word, as
/// the kernel's `memcmp()` goes byte by byte.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (wa.remainder(), wb.remainder());
    let word = |c: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        u64::from_ne_bytes(w)
    };
    a.len() == b.len() && wa.zip(wb).all(|(x, y)| word(x) == word(y)) && ra == rb
}

/// One TCP segment on the wire, as the coalescing engine sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    v6: bool,
    /// Offsets of the IP and TCP headers in the frame.
    l3: usize,
    l4: usize,
    /// Length of the headers, where the payload starts.
    hdr_len: usize,
    seq: u32,
    /// TCP payload bytes.
    payload: usize,
    flags: u8,
    /// IPv4 ID (0 for IPv6).
    id: u16,
}

impl Segment {
    /// Parses the headers `hdr` (the first `hdr_len` bytes, or more) of a frame of
    /// `frame_len` bytes. `None` unless it is an unfragmented TCP segment over IPv4 or IPv6
    /// (without extension headers) whose IP length matches the frame (no Ethernet padding).
    pub(crate) fn parse(hdr: &[u8], hdr_len: usize, frame_len: usize) -> Option<Segment> {
        if hdr_len > MAX_HDR {
            return None;
        }
        let hdr = hdr.get(..hdr_len)?;
        let mut l3 = ETH_HLEN;
        let mut proto = be16(hdr, 12)?;
        if proto == ETH_P_8021Q {
            proto = be16(hdr, 16)?;
            l3 += 4;
        }
        let (v6, l4, id) = match proto {
            ETH_P_IP => {
                let ver_ihl = *hdr.get(l3)?;
                let ihl = usize::from(ver_ihl & 0xf) * 4;
                if ver_ihl >> 4 != 4
                    || ihl < 20
                    || *hdr.get(l3 + 9)? != IPPROTO_TCP
                    || be16(hdr, l3 + 6)? & 0x3fff != 0
                    || usize::from(be16(hdr, l3 + 2)?) != frame_len.checked_sub(l3)?
                {
                    return None;
                }
                (false, l3 + ihl, be16(hdr, l3 + 4)?)
            }
            ETH_P_IPV6 => {
                if *hdr.get(l3)? >> 4 != 6
                    || *hdr.get(l3 + 6)? != IPPROTO_TCP
                    || usize::from(be16(hdr, l3 + 4)?) != frame_len.checked_sub(l3 + 40)?
                {
                    return None;
                }
                (true, l3 + 40, 0)
            }
            _ => return None,
        };
        let doff = usize::from(*hdr.get(l4 + 12)? >> 4) * 4;
        if doff < 20 || l4 + doff != hdr_len {
            return None;
        }
        Some(Segment {
            v6,
            l3,
            l4,
            hdr_len,
            seq: be32(hdr, l4 + 4)?,
            payload: frame_len.checked_sub(hdr_len)?,
            flags: *hdr.get(l4 + 13)?,
            id,
        })
    }

    /// Where the TCP header starts in the frame.
    pub(crate) fn l4(&self) -> usize {
        self.l4
    }

    /// Length of the headers, where the payload starts.
    pub(crate) fn hdr_len(&self) -> usize {
        self.hdr_len
    }

    pub(crate) fn v6(&self) -> bool {
        self.v6
    }

    /// The byte ranges of the headers that must be the same in merged segments: all but
    /// the IP lengths, the IPv4 ID and header checksum, the sequence number, the TCP flags
    /// (compared apart from PSH) and the TCP checksum.
    fn fixed(&self) -> [Range<usize>; 6] {
        let (l3, l4, end) = (self.l3, self.l4, self.hdr_len);
        let [t0, t1, t2] = [l4 + 8..l4 + 13, l4 + 14..l4 + 16, l4 + 18..end];
        if self.v6 {
            [0..l3 + 4, l3 + 6..l4 + 4, t0, t1, t2, 0..0]
        } else {
            [0..l3 + 2, l3 + 6..l3 + 10, l3 + 12..l4 + 4, t0, t1, t2]
        }
    }
}

/// A run of segments being merged into one skb.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run {
    first: Segment,
    /// Segments merged so far, the first included.
    segs: u16,
    /// Payload bytes so far.
    payload: usize,
    next_seq: u32,
    next_id: u16,
    /// A segment with PSH was merged.
    psh: bool,
    /// No more segments may join.
    ended: bool,
}

impl Run {
    /// Starts a run at `first`, if a run may start there: a segment with payload and only
    /// ACK set (a segment with PSH would end the run at once).
    pub(crate) fn start(first: Segment) -> Option<Run> {
        if first.payload == 0 || first.flags != TCP_ACK {
            return None;
        }
        Some(Run {
            first,
            segs: 1,
            payload: first.payload,
            next_seq: first.seq.wrapping_add(first.payload as u32),
            next_id: first.id.wrapping_add(1),
            psh: false,
            ended: false,
        })
    }

    /// The run the receiving NIC makes of the frames of a TSO send of `segs` segments of
    /// `mss` payload bytes, whose headers (those of the whole send, lengths included)
    /// parsed as `whole`: what [`Run::start`] and [`Run::offer`] would merge them into.
    /// `None` unless they would merge: only ACK and PSH set (PSH goes to the last segment,
    /// which ends the run), and a payload that `segs` segments of `mss` bytes carry.
    pub(crate) fn whole(whole: Segment, mss: u16, segs: u16) -> Option<Run> {
        let mss = usize::from(mss);
        if segs < 2 || mss == 0 || whole.flags & !TCP_PSH != TCP_ACK {
            return None;
        }
        let full = mss * (usize::from(segs) - 1);
        if whole.payload <= full || whole.payload > full + mss {
            return None;
        }
        Some(Run {
            first: Segment {
                payload: mss,
                flags: TCP_ACK,
                ..whole
            },
            segs,
            payload: whole.payload,
            next_seq: whole.seq.wrapping_add(whole.payload as u32),
            next_id: whole.id.wrapping_add(segs),
            psh: whole.flags & TCP_PSH != 0,
            ended: true,
        })
    }

    pub(crate) fn segs(&self) -> u16 {
        self.segs
    }

    /// No more segments may join.
    pub(crate) fn ended(&self) -> bool {
        self.ended
    }

    pub(crate) fn first(&self) -> &Segment {
        &self.first
    }

    /// Merges the frame of `cand_len` bytes whose headers are `cand_hdr`, if it continues
    /// the run that started with headers `first_hdr`. Returns whether it did.
    pub(crate) fn offer(&mut self, first_hdr: &[u8], cand_hdr: &[u8], cand_len: usize) -> bool {
        let f = &self.first;
        let (l3, l4, hdr_len, mss) = (f.l3, f.l4, f.hdr_len, f.payload);
        if self.ended || self.segs == u16::MAX {
            return false;
        }
        let (Some(a), Some(b)) = (first_hdr.get(..hdr_len), cand_hdr.get(..hdr_len)) else {
            return false;
        };
        // This runs for every frame the NIC receives: compare whole ranges, then read the
        // fields that may differ where the first segment has them.
        if !f
            .fixed()
            .into_iter()
            .all(|r| match (a.get(r.clone()), b.get(r)) {
                (Some(x), Some(y)) => same(x, y),
                _ => false,
            })
        {
            return false;
        }
        let payload = cand_len.saturating_sub(hdr_len);
        let ip_len = if f.v6 {
            be16(b, l3 + 4).map(|v| usize::from(v) + 40)
        } else {
            be16(b, l3 + 2).map(usize::from)
        };
        let (Some(&fa), Some(&fb)) = (a.get(l4 + 13), b.get(l4 + 13)) else {
            return false;
        };
        let continues = (fa ^ fb) & !TCP_PSH == 0
            && payload > 0
            && payload <= mss
            && ip_len == cand_len.checked_sub(l3)
            && (hdr_len - l3) + self.payload + payload <= MAX_IP_LEN
            && be32(b, l4 + 4) == Some(self.next_seq)
            && (f.v6 || be16(b, l3 + 4) == Some(self.next_id));
        if !continues {
            return false;
        }
        self.segs += 1;
        self.payload += payload;
        self.next_seq = self.next_seq.wrapping_add(payload as u32);
        self.next_id = self.next_id.wrapping_add(1);
        if fb & TCP_PSH != 0 {
            self.psh = true;
            self.ended = true;
        }
        if payload < mss {
            self.ended = true;
        }
        true
    }

    /// Rewrites the first segment's headers `hdr` into those of the merged packet: IP
    /// lengths (and the IPv4 header checksum), PSH if a merged segment had it, and in the
    /// TCP checksum field the folded pseudo-header sum, as `tcp_gro_complete()` leaves it
    /// for `CHECKSUM_PARTIAL`. Returns the MSS (`gso_size`).
    pub(crate) fn finish(&self, hdr: &mut [u8]) -> u16 {
        let f = &self.first;
        let tcp_len = f.hdr_len - f.l4 + self.payload;
        if f.v6 {
            put16(hdr, f.l3 + 4, tcp_len as u16);
        } else {
            put16(hdr, f.l3 + 2, (f.l4 - f.l3 + tcp_len) as u16);
            put16(hdr, f.l3 + 10, 0);
            let csum = hdr.get(f.l3..f.l4).map_or(0, |ip| !fold(sum16(ip, 0)));
            put16(hdr, f.l3 + 10, csum);
        }
        if self.psh {
            if let Some(fl) = hdr.get_mut(f.l4 + 13) {
                *fl |= TCP_PSH;
            }
        }
        // Pseudo header: addresses, protocol, TCP length.
        let addrs = if f.v6 {
            hdr.get(f.l3 + 8..f.l3 + 40)
        } else {
            hdr.get(f.l3 + 12..f.l3 + 20)
        };
        let mut sum = addrs.map_or(0, |a| sum16(a, 0));
        sum = sum.wrapping_add(u32::from(IPPROTO_TCP));
        sum = sum.wrapping_add(tcp_len as u32 >> 16);
        sum = sum.wrapping_add(tcp_len as u32 & 0xffff);
        put16(hdr, f.l4 + 16, fold(sum));
        f.payload as u16
    }
}

#[kunit_tests(netgpu_sim_coalesce)]
mod tests {
    use super::*;

    const PAYLOAD: usize = 1000;

    /// Headers of a TCP/IPv4 segment with a timestamp option (32-byte TCP header).
    fn v4(seq: u32, id: u16, flags: u8, payload: usize) -> [u8; 66] {
        let mut h = [0u8; 66];
        h[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
        h[14] = 0x45;
        h[16..18].copy_from_slice(&((20 + 32 + payload) as u16).to_be_bytes());
        h[18..20].copy_from_slice(&id.to_be_bytes());
        h[20] = 0x40; // DF
        h[22] = 64;
        h[23] = IPPROTO_TCP;
        h[26..30].copy_from_slice(&[192, 0, 2, 1]);
        h[30..34].copy_from_slice(&[192, 0, 2, 2]);
        h[34..36].copy_from_slice(&40000u16.to_be_bytes());
        h[36..38].copy_from_slice(&5201u16.to_be_bytes());
        h[38..42].copy_from_slice(&seq.to_be_bytes());
        h[42..46].copy_from_slice(&7u32.to_be_bytes());
        h[46] = 8 << 4;
        h[47] = flags;
        h[48..50].copy_from_slice(&512u16.to_be_bytes());
        // NOP, NOP, timestamps.
        h[54..58].copy_from_slice(&[1, 1, 8, 10]);
        h[58..62].copy_from_slice(&1234u32.to_be_bytes());
        h
    }

    /// Headers of a TCP/IPv6 segment without options.
    fn v6(seq: u32, flags: u8, payload: usize) -> [u8; 74] {
        let mut h = [0u8; 74];
        h[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
        h[14] = 0x60;
        h[18..20].copy_from_slice(&((20 + payload) as u16).to_be_bytes());
        h[20] = IPPROTO_TCP;
        h[21] = 64;
        h[22..24].copy_from_slice(&[0x20, 0x01]);
        h[24..26].copy_from_slice(&[0x0d, 0xb8]);
        h[37] = 1;
        h[38..40].copy_from_slice(&[0x20, 0x01]);
        h[40..42].copy_from_slice(&[0x0d, 0xb8]);
        h[53] = 2;
        h[54..56].copy_from_slice(&40000u16.to_be_bytes());
        h[56..58].copy_from_slice(&5201u16.to_be_bytes());
        h[58..62].copy_from_slice(&seq.to_be_bytes());
        h[66] = 5 << 4;
        h[67] = flags;
        h
    }

    fn seg(h: &[u8], hdr_len: usize, payload: usize) -> Option<Segment> {
        Segment::parse(h, hdr_len, hdr_len + payload)
    }

    /// Offers the frame with headers `h` (of length `hdr_len`) and `payload` bytes.
    fn offer(run: &mut Run, first: &[u8], h: &[u8], hdr_len: usize, payload: usize) -> bool {
        run.offer(first, h, hdr_len + payload)
    }

    #[test]
    fn ipv4_header_checksum_matches_a_known_header() {
        // A header with a known checksum (0xb861), checksum field cleared.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(!fold(sum16(&h, 0)), 0xb861);
    }

    #[test]
    fn merges_in_order_segments_of_one_flow() {
        let h1 = v4(100, 9, TCP_ACK, PAYLOAD);
        let h2 = v4(1100, 10, TCP_ACK, PAYLOAD);
        let h3 = v4(2100, 11, TCP_ACK | TCP_PSH, 10);
        let s1 = seg(&h1, 66, PAYLOAD);
        assert!(s1.is_some());
        let Some(mut run) = s1.and_then(Run::start) else {
            return;
        };
        assert!(offer(&mut run, &h1, &h2, 66, PAYLOAD));
        assert!(offer(&mut run, &h1, &h3, 66, 10));
        assert_eq!(run.segs(), 3);
        // PSH ended the run.
        let h4 = v4(2110, 12, TCP_ACK, PAYLOAD);
        assert!(!offer(&mut run, &h1, &h4, 66, PAYLOAD));

        let mut out = h1;
        assert_eq!(run.finish(&mut out), PAYLOAD as u16);
        assert_eq!(be16(&out, 16), Some((20 + 32 + 2 * PAYLOAD + 10) as u16));
        assert_eq!(fold(sum16(&out[14..34], 0)), 0xffff);
        assert_eq!(out[47], TCP_ACK | TCP_PSH);
        // The TCP checksum field holds the folded pseudo-header sum.
        let tcp_len = 32 + 2 * PAYLOAD + 10;
        let pseudo = sum16(&out[26..34], 0) + 6 + tcp_len as u32;
        assert_eq!(be16(&out, 50), Some(fold(pseudo)));
        // Nothing else changed.
        for i in (0..66).filter(|i| ![16, 17, 24, 25, 47, 50, 51].contains(i)) {
            assert_eq!(out[i], h1[i]);
        }
    }

    #[test]
    fn merges_ipv6_segments() {
        let h1 = v6(5, TCP_ACK, PAYLOAD);
        let h2 = v6(5 + PAYLOAD as u32, TCP_ACK, PAYLOAD);
        let run = seg(&h1, 74, PAYLOAD).and_then(Run::start);
        assert!(run.is_some());
        let Some(mut run) = run else {
            return;
        };
        assert!(offer(&mut run, &h1, &h2, 74, PAYLOAD));
        let mut out = h1;
        run.finish(&mut out);
        assert_eq!(be16(&out, 18), Some((20 + 2 * PAYLOAD) as u16));
        assert_eq!(out[67], TCP_ACK);
    }

    #[test]
    fn refuses_what_software_gro_would_not_merge() {
        let h1 = v4(100, 9, TCP_ACK, PAYLOAD);
        let start = || seg(&h1, 66, PAYLOAD).and_then(Run::start);
        let refused = |h: [u8; 66], payload: usize| {
            let Some(mut run) = start() else {
                return false;
            };
            !offer(&mut run, &h1, &h, 66, payload)
        };
        // sequence gap
        assert!(refused(v4(1000, 10, TCP_ACK, PAYLOAD), PAYLOAD));
        // IPv4 ID jump
        assert!(refused(v4(1100, 12, TCP_ACK, PAYLOAD), PAYLOAD));
        // above MSS
        assert!(refused(v4(1100, 10, TCP_ACK, PAYLOAD + 1), PAYLOAD + 1));
        // no payload
        assert!(refused(v4(1100, 10, TCP_ACK, 0), 0));
        // FIN
        assert!(refused(v4(1100, 10, TCP_ACK | 1, PAYLOAD), PAYLOAD));
        let mut ack = v4(1100, 10, TCP_ACK, PAYLOAD);
        ack[45] = 8;
        // other ACK number
        assert!(refused(ack, PAYLOAD));
        let mut ts = v4(1100, 10, TCP_ACK, PAYLOAD);
        ts[61] = 0xd3;
        // other timestamp
        assert!(refused(ts, PAYLOAD));
        let mut port = v4(1100, 10, TCP_ACK, PAYLOAD);
        port[35] = 0x41;
        // other flow
        assert!(refused(port, PAYLOAD));
        let mut win = v4(1100, 10, TCP_ACK, PAYLOAD);
        win[49] = 1;
        // other window
        assert!(refused(win, PAYLOAD));

        // No run starts at PSH, SYN, or a segment without payload.
        assert!(seg(&v4(1, 1, TCP_ACK | TCP_PSH, 5), 66, 5)
            .and_then(Run::start)
            .is_none());
        assert!(seg(&v4(1, 1, 2, 5), 66, 5).and_then(Run::start).is_none());
        assert!(seg(&v4(1, 1, TCP_ACK, 0), 66, 0)
            .and_then(Run::start)
            .is_none());
        // A frame with Ethernet padding after the segment does not join.
        let Some(mut run) = start() else {
            return;
        };
        let h2 = v4(1100, 10, TCP_ACK, PAYLOAD);
        assert!(!run.offer(&h1, &h2, 66 + PAYLOAD + 4));
        assert!(run.offer(&h1, &h2, 66 + PAYLOAD));
        // Not a segment: Ethernet padding, a fragment, UDP.
        assert!(Segment::parse(&h1, 66, 66 + PAYLOAD + 4).is_none());
        let mut frag = h1;
        frag[20] = 0x20;
        assert!(seg(&frag, 66, PAYLOAD).is_none());
        let mut udp = h1;
        udp[23] = 17;
        assert!(seg(&udp, 66, PAYLOAD).is_none());
    }

    #[test]
    fn a_short_segment_ends_the_run() {
        let h1 = v4(0, 1, TCP_ACK, PAYLOAD);
        let h2 = v4(PAYLOAD as u32, 2, TCP_ACK, 10);
        let h3 = v4(PAYLOAD as u32 + 10, 3, TCP_ACK, PAYLOAD);
        let run = seg(&h1, 66, PAYLOAD).and_then(Run::start);
        assert!(run.is_some());
        let Some(mut run) = run else {
            return;
        };
        assert!(offer(&mut run, &h1, &h2, 66, 10));
        assert!(!offer(&mut run, &h1, &h3, 66, PAYLOAD));
    }

    #[test]
    fn a_tso_send_makes_the_run_its_frames_would() {
        const FIN: u8 = 0x01;
        // Three full segments and a short one with PSH, as the sender cut them.
        let frames = [
            v4(100, 9, TCP_ACK, PAYLOAD),
            v4(1100, 10, TCP_ACK, PAYLOAD),
            v4(2100, 11, TCP_ACK, PAYLOAD),
            v4(3100, 12, TCP_ACK | TCP_PSH, 500),
        ];
        let sizes = [PAYLOAD, PAYLOAD, PAYLOAD, 500];
        let merged = seg(&frames[0], 66, PAYLOAD).and_then(Run::start);
        assert!(merged.is_some());
        let Some(mut merged) = merged else {
            return;
        };
        for (h, &n) in frames.iter().zip(sizes.iter()).skip(1) {
            assert!(offer(&mut merged, &frames[0], h, 66, n));
        }
        // The send itself: the first frame's headers, the whole payload, PSH.
        let send = v4(100, 9, TCP_ACK | TCP_PSH, 3500);
        let whole = seg(&send, 66, 3500).and_then(|f| Run::whole(f, PAYLOAD as u16, 4));
        assert!(whole.is_some());
        let Some(whole) = whole else {
            return;
        };
        assert_eq!(whole.segs(), merged.segs());
        assert!(whole.ended());
        let (mut a, mut b) = (frames[0], send);
        assert_eq!(merged.finish(&mut a), PAYLOAD as u16);
        assert_eq!(whole.finish(&mut b), PAYLOAD as u16);
        assert_eq!(a, b);
        // What the frames would not merge into: FIN, sizes that segs x mss does not cut.
        let fin = v4(100, 9, TCP_ACK | FIN, 3500);
        assert!(seg(&fin, 66, 3500)
            .and_then(|f| Run::whole(f, PAYLOAD as u16, 4))
            .is_none());
        let sized = |payload, segs| {
            seg(&v4(100, 9, TCP_ACK, payload), 66, payload)
                .and_then(|f| Run::whole(f, PAYLOAD as u16, segs))
                .is_some()
        };
        assert!(sized(3000, 3));
        assert!(!sized(3000, 4));
        assert!(!sized(3500, 3));
        assert!(!sized(1000, 1));
    }
}
