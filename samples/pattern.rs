// SPDX-License-Identifier: GPL-2.0

//! The test stream of the netgpu samples and kselftests: byte `off` of the
//! stream is a function of `off`, so the receiver checks every byte without
//! a copy of what was sent. Same function as `netgpu_traffic`'s.

// Shared by both samples; each uses part of it.
#![allow(dead_code)]

/// Byte `off` of the test stream.
pub fn pattern(off: u64) -> u8 {
    let word = (off / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    word.to_le_bytes()[(off % 8) as usize]
}

/// Fills `buf` with the stream from offset `off`.
pub fn fill(buf: &mut [u8], off: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern(off + i as u64);
    }
}

/// The first offset in `buf` (holding the stream from `off`) that differs.
pub fn first_mismatch(buf: &[u8], off: u64) -> Option<u64> {
    buf.iter()
        .enumerate()
        .find(|(i, b)| **b != pattern(off + *i as u64))
        .map(|(i, _)| off + i as u64)
}
