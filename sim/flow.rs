// SPDX-License-Identifier: GPL-2.0

//! The classifier of netgpu-sim's "hardware": it parses the headers of a frame on the wire,
//! finds where the payload starts (for header/data split), hashes the flow with Toeplitz over
//! the RSS key, and steers it to an RX queue by ntuple rule or RSS indirection table.
//!
//! Everything here works on plain bytes and values; there is no `unsafe` in this file.

use kernel::prelude::*;

/// Length of an Ethernet header without VLAN tag.
pub(crate) const ETH_HLEN: usize = 14;
/// Bytes of a frame the classifier looks at: enough for Ethernet + VLAN + IPv6 + TCP options.
pub(crate) const PARSE_LEN: usize = 14 + 4 + 40 + 60;
/// Size of the RSS hash key (the common 40-byte Toeplitz key).
pub(crate) const RSS_KEY_LEN: usize = 40;
/// Size of the RSS indirection table.
pub(crate) const RSS_INDIR_LEN: usize = 128;
/// Number of ntuple rule slots.
pub(crate) const NTUPLE_SLOTS: usize = 64;

pub(crate) const ETH_P_IP: u16 = 0x0800;
pub(crate) const ETH_P_IPV6: u16 = 0x86dd;
pub(crate) const ETH_P_8021Q: u16 = 0x8100;
pub(crate) const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Transport protocol of a flow.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum L4 {
    Tcp,
    Udp,
}

/// What the classifier learned about one frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flow {
    /// IPv6 (else IPv4).
    pub(crate) v6: bool,
    /// Source address; IPv4 uses the first four bytes.
    pub(crate) src: [u8; 16],
    /// Destination address; IPv4 uses the first four bytes.
    pub(crate) dst: [u8; 16],
    /// Transport header, if it is TCP or UDP and the packet is not a fragment.
    pub(crate) l4: Option<L4>,
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    /// Length of the L2 to L4 headers, where the payload starts. Zero if there is no
    /// TCP or UDP header to split after.
    pub(crate) hdr_len: usize,
}

pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn copy_addr(b: &[u8], at: usize, len: usize) -> Option<[u8; 16]> {
    let mut a = [0u8; 16];
    a[..len].copy_from_slice(b.get(at..at + len)?);
    Some(a)
}

/// Parses an Ethernet frame (its first `PARSE_LEN` bytes or fewer). Returns `None` for
/// anything that is not IPv4 or IPv6.
pub(crate) fn parse(frame: &[u8]) -> Option<Flow> {
    let mut l3 = ETH_HLEN;
    let mut proto = be16(frame, 12)?;
    if proto == ETH_P_8021Q {
        proto = be16(frame, 16)?;
        l3 += 4;
    }
    let ip = frame.get(l3..)?;
    let (v6, src, dst, next, l4_off, fragment) = match proto {
        ETH_P_IP => {
            let ver_ihl = *ip.first()?;
            let ihl = usize::from(ver_ihl & 0xf) * 4;
            if ver_ihl >> 4 != 4 || ihl < 20 {
                return None;
            }
            // More-fragments flag or a fragment offset: no transport header to split on.
            let frag = be16(ip, 6)? & 0x3fff != 0;
            (
                false,
                copy_addr(ip, 12, 4)?,
                copy_addr(ip, 16, 4)?,
                *ip.get(9)?,
                ihl,
                frag,
            )
        }
        ETH_P_IPV6 => {
            if *ip.first()? >> 4 != 6 {
                return None;
            }
            (
                true,
                copy_addr(ip, 8, 16)?,
                copy_addr(ip, 24, 16)?,
                *ip.get(6)?,
                40,
                false,
            )
        }
        _ => return None,
    };
    let mut flow = Flow {
        v6,
        src,
        dst,
        l4: None,
        sport: 0,
        dport: 0,
        hdr_len: 0,
    };
    if fragment {
        return Some(flow);
    }
    let l4 = match ip.get(l4_off..) {
        Some(l4) => l4,
        None => return Some(flow),
    };
    let (kind, l4_len) = match next {
        IPPROTO_TCP => match l4.get(12) {
            Some(doff) if usize::from(doff >> 4) * 4 >= 20 => (L4::Tcp, usize::from(doff >> 4) * 4),
            _ => return Some(flow),
        },
        IPPROTO_UDP => (L4::Udp, 8),
        _ => return Some(flow),
    };
    let hdr_len = l3 + l4_off + l4_len;
    if hdr_len > frame.len() {
        return Some(flow);
    }
    flow.l4 = Some(kind);
    flow.sport = be16(l4, 0)?;
    flow.dport = be16(l4, 2)?;
    flow.hdr_len = hdr_len;
    Some(flow)
}

/// The Toeplitz hash of `input` under `key` (Microsoft RSS). `key` must be at least four
/// bytes longer than `input`.
///
/// Input bit `n`, when set, adds the 32 key bits from bit `n` on to the hash. For each input
/// byte, the 64 key bits from its first bit on hold the windows of all its eight bits, so
/// each set bit costs a shift and an XOR (shifting the key through a 32-bit window one bit at
/// a time, as the specification describes it, cost the sender's CPU over 2000 instructions
/// a frame).
pub(crate) fn toeplitz(key: &[u8; RSS_KEY_LEN], input: &[u8]) -> u32 {
    let mut hash = 0u32;
    for (i, byte) in input.iter().enumerate() {
        // Key bits `8 * i` to `8 * i + 63`; those past its end are zero.
        let mut bytes = [0u8; 8];
        if let Some(rest) = key.get(i..) {
            let n = rest.len().min(8);
            bytes[..n].copy_from_slice(&rest[..n]);
        }
        let window = u64::from_be_bytes(bytes);
        let mut bits = *byte;
        while bits != 0 {
            // The most significant bit set: 0 for bit 7.
            let bit = bits.leading_zeros();
            hash ^= ((window << bit) >> 32) as u32;
            bits &= !(0x80 >> bit);
        }
    }
    hash
}

impl Flow {
    /// The RSS hash of this flow: addresses and, for TCP and UDP, ports.
    pub(crate) fn rss_hash(&self, key: &[u8; RSS_KEY_LEN]) -> u32 {
        let alen = if self.v6 { 16 } else { 4 };
        let mut input = [0u8; 36];
        input[..alen].copy_from_slice(&self.src[..alen]);
        input[alen..2 * alen].copy_from_slice(&self.dst[..alen]);
        let mut len = 2 * alen;
        if self.l4.is_some() {
            input[len..len + 2].copy_from_slice(&self.sport.to_be_bytes());
            input[len + 2..len + 4].copy_from_slice(&self.dport.to_be_bytes());
            len += 4;
        }
        toeplitz(key, &input[..len])
    }
}

/// One ntuple rule: a flow type, masked addresses and ports, and the queue to steer to.
/// A mask bit set means "this bit must match" (ethtool's convention).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) v6: bool,
    pub(crate) l4: L4,
    pub(crate) src: [u8; 16],
    pub(crate) src_mask: [u8; 16],
    pub(crate) dst: [u8; 16],
    pub(crate) dst_mask: [u8; 16],
    pub(crate) sport: u16,
    pub(crate) sport_mask: u16,
    pub(crate) dport: u16,
    pub(crate) dport_mask: u16,
    pub(crate) queue: u32,
}

fn masked_eq(a: &[u8; 16], b: &[u8; 16], mask: &[u8; 16]) -> bool {
    a.iter().zip(b).zip(mask).all(|((a, b), m)| a & m == b & m)
}

impl Rule {
    fn matches(&self, f: &Flow) -> bool {
        f.v6 == self.v6
            && f.l4 == Some(self.l4)
            && masked_eq(&f.src, &self.src, &self.src_mask)
            && masked_eq(&f.dst, &self.dst, &self.dst_mask)
            && f.sport & self.sport_mask == self.sport & self.sport_mask
            && f.dport & self.dport_mask == self.dport & self.dport_mask
    }
}

/// How frames are spread over RX queues. The datapath reads one snapshot of this under
/// RCU; ethtool replaces the snapshot as a whole.
#[derive(Clone)]
pub(crate) struct Steering {
    pub(crate) key: [u8; RSS_KEY_LEN],
    pub(crate) indir: [u32; RSS_INDIR_LEN],
    /// Rules by location; `None` is a free slot.
    pub(crate) rules: [Option<Rule>; NTUPLE_SLOTS],
    /// Whether the user set the indirection table (else it follows the channel count).
    pub(crate) indir_user: bool,
}

/// Where the classifier sends a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) queue: u32,
    pub(crate) hash: u32,
    /// The queue came from an ntuple rule.
    pub(crate) by_rule: bool,
}

/// The default key: the one from Microsoft's RSS specification, so hashes can be checked
/// against published values.
pub(crate) const DEFAULT_KEY: [u8; RSS_KEY_LEN] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

impl Steering {
    /// Default steering over `queues` RX queues: spread evenly, no rules.
    pub(crate) fn new(queues: u32) -> Self {
        let mut s = Steering {
            key: DEFAULT_KEY,
            indir: [0; RSS_INDIR_LEN],
            rules: [None; NTUPLE_SLOTS],
            indir_user: false,
        };
        s.spread(queues);
        s
    }

    /// Sets the indirection table to spread evenly over `queues` queues.
    pub(crate) fn spread(&mut self, queues: u32) {
        let queues = queues.max(1);
        for (i, q) in self.indir.iter_mut().enumerate() {
            // `i` < RSS_INDIR_LEN, which fits in u32.
            *q = i as u32 % queues;
        }
    }

    /// Picks the RX queue for a frame, given the number of active RX queues.
    pub(crate) fn classify(&self, flow: Option<&Flow>, queues: u32) -> Verdict {
        let queues = queues.max(1);
        let Some(flow) = flow else {
            return Verdict {
                queue: 0,
                hash: 0,
                by_rule: false,
            };
        };
        let hash = flow.rss_hash(&self.key);
        if let Some(rule) = self.rules.iter().flatten().find(|r| r.matches(flow)) {
            if rule.queue < queues {
                return Verdict {
                    queue: rule.queue,
                    hash,
                    by_rule: true,
                };
            }
        }
        // `hash % len` < RSS_INDIR_LEN, a valid index.
        let slot = self.indir[hash as usize % RSS_INDIR_LEN];
        Verdict {
            queue: slot % queues,
            hash,
            by_rule: false,
        }
    }
}

#[kunit_tests(netgpu_sim_flow)]
mod tests {
    use super::*;

    fn frame_v4(proto: u8, sport: u16, dport: u16, payload: usize) -> KVec<u8> {
        let mut f = KVec::new();
        let l4len = if proto == IPPROTO_TCP { 32 } else { 8 };
        let total = 20 + l4len + payload;
        let mut hdr = [0u8; 14 + 20 + 32];
        hdr[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
        hdr[14] = 0x45;
        hdr[16..18].copy_from_slice(&(total as u16).to_be_bytes());
        hdr[23] = proto;
        hdr[26..30].copy_from_slice(&[192, 0, 2, 1]);
        hdr[30..34].copy_from_slice(&[192, 0, 2, 2]);
        hdr[34..36].copy_from_slice(&sport.to_be_bytes());
        hdr[36..38].copy_from_slice(&dport.to_be_bytes());
        if proto == IPPROTO_TCP {
            hdr[46] = 8 << 4;
        }
        f.extend_from_slice(&hdr[..14 + 20 + l4len], GFP_KERNEL)
            .ok();
        for i in 0..payload {
            f.push(i as u8, GFP_KERNEL).ok();
        }
        f
    }

    #[test]
    fn toeplitz_matches_the_microsoft_vectors() {
        // From "Verifying the RSS Hash Calculation" in Microsoft's RSS documentation.
        let v4 = Flow {
            v6: false,
            src: copy_addr(&[66, 9, 149, 187], 0, 4).unwrap_or([0; 16]),
            dst: copy_addr(&[161, 142, 100, 80], 0, 4).unwrap_or([0; 16]),
            l4: Some(L4::Tcp),
            sport: 2794,
            dport: 1766,
            hdr_len: 0,
        };
        assert_eq!(v4.rss_hash(&DEFAULT_KEY), 0x51ccc178);
        assert_eq!(Flow { l4: None, ..v4 }.rss_hash(&DEFAULT_KEY), 0x323e8fc2);
        let src6 = [
            0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, 7,
        ];
        let dst6 = [
            0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        let v6 = Flow {
            v6: true,
            src: src6,
            dst: dst6,
            ..v4
        };
        assert_eq!(v6.rss_hash(&DEFAULT_KEY), 0x40207d3d);
        assert_eq!(Flow { l4: None, ..v6 }.rss_hash(&DEFAULT_KEY), 0x2cc18cd5);
    }

    /// Toeplitz as the specification states it: the key shifted through a 32-bit window
    /// one bit at a time.
    fn toeplitz_by_bits(key: &[u8; RSS_KEY_LEN], input: &[u8]) -> u32 {
        let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
        let mut hash = 0u32;
        for (i, byte) in input.iter().enumerate() {
            let next = key.get(i + 4).copied().unwrap_or(0);
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    hash ^= window;
                }
                window = (window << 1) | u32::from((next >> (7 - bit)) & 1);
            }
        }
        hash
    }

    #[test]
    fn toeplitz_matches_the_bitwise_hash() {
        // Many keys and inputs of every length, from a xorshift generator.
        let mut x = 0x2545_f491u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        };
        for _ in 0..16 {
            let mut key = [0u8; RSS_KEY_LEN];
            key.iter_mut().for_each(|k| *k = next());
            for len in 0..=RSS_KEY_LEN - 4 {
                let mut input = [0u8; RSS_KEY_LEN - 4];
                input.iter_mut().for_each(|b| *b = next());
                assert_eq!(
                    toeplitz(&key, &input[..len]),
                    toeplitz_by_bits(&key, &input[..len])
                );
            }
        }
        let ones = [0xffu8; RSS_KEY_LEN - 4];
        assert_eq!(
            toeplitz(&DEFAULT_KEY, &ones),
            toeplitz_by_bits(&DEFAULT_KEY, &ones)
        );
    }

    #[test]
    fn parse_finds_the_payload() {
        let f = frame_v4(IPPROTO_TCP, 1000, 5201, 100);
        let flow = parse(&f);
        assert!(flow.is_some());
        let flow = flow.unwrap_or(Flow {
            v6: true,
            src: [0; 16],
            dst: [0; 16],
            l4: None,
            sport: 0,
            dport: 0,
            hdr_len: 0,
        });
        assert_eq!(flow.l4, Some(L4::Tcp));
        assert_eq!(flow.hdr_len, 14 + 20 + 32);
        assert_eq!((flow.sport, flow.dport), (1000, 5201));
        let u = parse(&frame_v4(IPPROTO_UDP, 7, 9, 10)).map(|f| f.hdr_len);
        assert_eq!(u, Some(14 + 20 + 8));
        // ICMP: an IP flow but nothing to split on.
        let i = parse(&frame_v4(1, 0, 0, 10)).map(|f| (f.l4, f.hdr_len));
        assert_eq!(i, Some((None, 0)));
        // Truncated TCP header: no split.
        let t = frame_v4(IPPROTO_TCP, 1, 2, 0);
        assert_eq!(parse(&t[..40]).map(|f| f.hdr_len), Some(0));
        // ARP: not IP.
        let mut arp = frame_v4(IPPROTO_TCP, 1, 2, 0);
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert!(parse(&arp).is_none());
    }

    #[test]
    fn rules_override_rss() {
        let f = frame_v4(IPPROTO_TCP, 1000, 5201, 0);
        let flow = parse(&f);
        let mut s = Steering::new(4);
        let by_rss = s.classify(flow.as_ref(), 4);
        assert!(!by_rss.by_rule);
        let mut rule = Rule {
            v6: false,
            l4: L4::Tcp,
            src: [0; 16],
            src_mask: [0; 16],
            dst: [0; 16],
            dst_mask: [0; 16],
            sport: 0,
            sport_mask: 0,
            dport: 5201,
            dport_mask: 0xffff,
            queue: 3,
        };
        s.rules[5] = Some(rule);
        let v = s.classify(flow.as_ref(), 4);
        assert_eq!((v.queue, v.by_rule, v.hash), (3, true, by_rss.hash));
        // A UDP flow to the same port does not match a tcp4 rule.
        let u = parse(&frame_v4(IPPROTO_UDP, 1000, 5201, 0));
        assert!(!s.classify(u.as_ref(), 4).by_rule);
        // A rule to a queue beyond the active ones falls back to RSS.
        rule.queue = 7;
        s.rules[5] = Some(rule);
        assert!(!s.classify(flow.as_ref(), 4).by_rule);
    }

    #[test]
    fn rss_spreads_over_the_table() {
        let mut s = Steering::new(2);
        let mut seen = [0u32; 2];
        for port in 0..64u16 {
            let f = parse(&frame_v4(IPPROTO_UDP, port, 9, 0));
            let v = s.classify(f.as_ref(), 2);
            seen[v.queue as usize] += 1;
        }
        assert!(seen[0] > 8 && seen[1] > 8);
        s.indir = [1; RSS_INDIR_LEN];
        let f = parse(&frame_v4(IPPROTO_UDP, 1, 9, 0));
        assert_eq!(s.classify(f.as_ref(), 2).queue, 1);
        assert_eq!(s.classify(None, 2).queue, 0);
    }
}
