// SPDX-License-Identifier: GPL-2.0

//! Test traffic with a verifiable payload, for the netgpu and netgpu-sim kselftests.
//!
//! ```text
//! netgpu_traffic recv tcp|udp ADDR PORT BYTES   # prints "received N bytes, verified"
//! netgpu_traffic send tcp|udp ADDR PORT BYTES [DGRAM] [--from ADDR:PORT] [--ncdevmem N]
//! netgpu_traffic send udp ADDR PORT BYTES DGRAM --flood   # load for benchmarks
//! netgpu_traffic memcpy BYTES CHUNK   # memory bandwidth, for benchmarks
//! ```
//!
//! `--no-verify` makes the receiver skip the check (benchmarks). `--from` binds the
//! sender (for 5-tuple steering rules). `--ncdevmem N` sends the stream the kernel's
//! `ncdevmem -v N` validates instead: bytes 1 .. N-1, then a newline, repeated.
//! `--gap MS` sends UDP datagrams MS milliseconds apart. `--flood` sends UDP
//! unpaced, several datagrams per call (UDP GSO) and without copies
//! (`MSG_ZEROCOPY`), with no verifiable payload.
//!
//! The payload is a function of the stream offset ([`pattern`]), so the receiver checks
//! every byte without a copy of what was sent. For UDP each datagram starts with its
//! stream offset (8 bytes, little endian) and the receiver checks each datagram alone;
//! it stops after BYTES payload bytes or 3 s without data, and reports loss.
//! Exit status 0 only if everything received matched and (TCP) nothing was missing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Byte `off` of the test stream.
pub fn pattern(off: u64) -> u8 {
    let word = (off / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    word.to_le_bytes()[(off % 8) as usize]
}

/// Byte `off` of the stream `ncdevmem -v n` expects.
fn ncdevmem_pattern(off: u64, n: u64) -> u8 {
    match off % n + 1 {
        k if k == n => b'\n',
        k => k as u8,
    }
}

fn fill(buf: &mut [u8], off: u64, ncdevmem: Option<u64>) {
    if let Some(n) = ncdevmem {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = ncdevmem_pattern(off + i as u64, n);
        }
        return;
    }
    // Byte by byte up to a word boundary of the stream, then a word at a time: the
    // sender's CPU is shared with the sim's engine in the benchmarks, and filling bytes
    // one by one cost a fifth of it.
    let head = (off.next_multiple_of(8) - off).min(buf.len() as u64) as usize;
    let (first, rest) = buf.split_at_mut(head);
    for (i, b) in first.iter_mut().enumerate() {
        *b = pattern(off + i as u64);
    }
    let base = off + head as u64;
    let whole = rest.len() / 8 * 8;
    let (words, tail) = rest.split_at_mut(whole);
    for (i, w) in words.chunks_exact_mut(8).enumerate() {
        let word = (base / 8 + i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        w.copy_from_slice(&word.to_le_bytes());
    }
    for (i, b) in tail.iter_mut().enumerate() {
        *b = pattern(base + (whole + i) as u64);
    }
}

/// Index of the first byte of `buf` that differs from the stream at `off`.
fn mismatch(buf: &[u8], off: u64) -> Option<usize> {
    buf.iter()
        .enumerate()
        .find(|(i, b)| **b != pattern(off + *i as u64))
        .map(|(i, _)| i)
}

fn usage() -> ExitCode {
    eprintln!("usage: netgpu_traffic recv|send tcp|udp ADDR PORT BYTES [DGRAM] [--from ADDR:PORT] [--ncdevmem N] [--no-verify] [--flood] [--gap MS]\n       netgpu_traffic memcpy BYTES CHUNK");
    ExitCode::from(2)
}

fn addr(ip: &str, port: &str) -> Result<SocketAddr, String> {
    let s = if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    s.parse().map_err(|e| format!("bad address {s}: {e}"))
}

fn recv_tcp(a: SocketAddr, bytes: u64, verify: bool) -> Result<String, String> {
    let l = TcpListener::bind(a).map_err(|e| format!("bind {a}: {e}"))?;
    let (mut c, peer) = l.accept().map_err(|e| format!("accept: {e}"))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    let t = Instant::now();
    loop {
        let n = c
            .read(&mut buf)
            .map_err(|e| format!("read at {off}: {e}"))?;
        if n == 0 {
            break;
        }
        if let Some(i) = mismatch(&buf[..n], off).filter(|_| verify) {
            return Err(format!(
                "byte {} from {peer} is {:#x}, expected {:#x}",
                off + i as u64,
                buf[i],
                pattern(off + i as u64)
            ));
        }
        off += n as u64;
    }
    if off != bytes {
        return Err(format!("received {off} bytes, expected {bytes}"));
    }
    let secs = t.elapsed().as_secs_f64();
    Ok(format!(
        "received {off} bytes, {} ({:.1} MB/s)",
        if verify { "verified" } else { "not verified" },
        off as f64 / secs / 1e6
    ))
}

/// The memory bandwidth ceiling for the datapath: `bytes` copied in `chunk`-sized
/// memcpy calls between two 64 MiB buffers (the sim copies page-sized chunks).
fn memcpy_bw(bytes: u64, chunk: usize) -> Result<String, String> {
    const AREA: usize = 64 << 20;
    if chunk == 0 || chunk > AREA {
        return Err(format!("bad chunk size {chunk}"));
    }
    let src = vec![0x5au8; AREA];
    // Fault the destination in and warm up with one untimed pass: a zeroed vector is
    // mapped lazily, and its page faults would weigh on short measurements.
    let mut dst = vec![0xa5u8; AREA];
    for (d, s) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
        d.copy_from_slice(std::hint::black_box(s));
    }
    std::hint::black_box(&mut dst);
    let t = Instant::now();
    let mut done = 0u64;
    while done < bytes {
        for (d, s) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
            d.copy_from_slice(std::hint::black_box(s));
        }
        std::hint::black_box(&mut dst);
        done += AREA as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    Ok(format!(
        "memcpy {done} bytes in {chunk}-byte chunks: {:.1} MB/s",
        done as f64 / secs / 1e6
    ))
}

fn connect(a: SocketAddr, from: Option<SocketAddr>) -> std::io::Result<TcpStream> {
    let Some(from) = from else {
        return TcpStream::connect(a);
    };
    let domain = if a.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: plain socket creation; the fd is owned by the TcpStream below.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket we own.
    let s = unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // Best effort, as before: the bind below reports a port in use.
    let _ = setsockopt_int(&s, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
    let (sa, len) = sockaddr(from);
    // SAFETY: `sa` holds a sockaddr of `len` bytes.
    if unsafe { libc::bind(fd, std::ptr::from_ref(&sa).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let (sa, len) = sockaddr(a);
    // SAFETY: as above.
    if unsafe { libc::connect(fd, std::ptr::from_ref(&sa).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(s)
}

fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *std::ptr::from_mut(&mut ss).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *std::ptr::from_mut(&mut ss).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn send_tcp(
    a: SocketAddr,
    bytes: u64,
    from: Option<SocketAddr>,
    ncdevmem: Option<u64>,
) -> Result<String, String> {
    let mut c = None;
    // The receiver may still be starting.
    for _ in 0..50 {
        match connect(a, from) {
            Ok(s) => {
                c = Some(s);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let mut c = c.ok_or_else(|| format!("cannot connect to {a}"))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < bytes {
        let n = (bytes - off).min(buf.len() as u64) as usize;
        fill(&mut buf[..n], off, ncdevmem);
        c.write_all(&buf[..n])
            .map_err(|e| format!("write at {off}: {e}"))?;
        off += n as u64;
    }
    Ok(format!("sent {off} bytes"))
}

fn recv_udp(a: SocketAddr, bytes: u64) -> Result<String, String> {
    let s = UdpSocket::bind(a).map_err(|e| format!("bind {a}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65536];
    let (mut got, mut dgrams) = (0u64, 0u64);
    let mut first = true;
    while got < bytes {
        let n = match s.recv(&mut buf) {
            Ok(n) => n,
            Err(_) if !first => break,
            Err(e) => return Err(format!("no datagram: {e}")),
        };
        first = false;
        if n < 8 {
            return Err(format!("short datagram of {n} bytes"));
        }
        let off = u64::from_le_bytes(buf[..8].try_into().map_err(|_| "header")?);
        if let Some(i) = mismatch(&buf[8..n], off) {
            return Err(format!("datagram at {off}: byte {i} differs"));
        }
        got += (n - 8) as u64;
        dgrams += 1;
    }
    Ok(format!(
        "received {got} of {bytes} bytes in {dgrams} datagrams, verified"
    ))
}

/// Sends `bytes` in datagrams of `dgram` bytes, each starting with its stream offset;
/// `gap` apart if given, else paced in bursts.
fn send_udp(
    a: SocketAddr,
    bytes: u64,
    dgram: usize,
    gap: Option<Duration>,
) -> Result<String, String> {
    let bind: SocketAddr = if a.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }
        .parse()
        .map_err(|_| "any")?;
    let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; dgram + 8];
    let mut off = 0u64;
    let mut sent = 0u64;
    while off < bytes {
        let n = (bytes - off).min(dgram as u64) as usize;
        buf[..8].copy_from_slice(&off.to_le_bytes());
        fill(&mut buf[8..8 + n], off, None);
        s.send_to(&buf[..8 + n], a)
            .map_err(|e| format!("send at {off}: {e}"))?;
        off += n as u64;
        sent += 1;
        // Datagrams are not flow controlled: pace them so the receiver keeps up.
        if let Some(g) = gap {
            std::thread::sleep(g);
        } else if sent.is_multiple_of(32) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(format!("sent {off} bytes in {sent} datagrams"))
}

/// UDP_SEGMENT (linux/udp.h): the kernel splits each send into datagrams
/// of this payload size (UDP GSO).
const UDP_SEGMENT: libc::c_int = 103;
/// The most segments one UDP GSO send may carry (UDP_MAX_SEGMENTS).
const UDP_MAX_SEGMENTS: usize = 64;

/// Sends `bytes` as fast as the stack takes them, in datagrams of `dgram`
/// bytes, several per system call (UDP GSO) and without copying them
/// (`MSG_ZEROCOPY`): a load for a device's receive path that costs the
/// sender little per byte. Nothing is paced and the payload is written once,
/// so no receiver can verify it.
fn flood_udp(a: SocketAddr, bytes: u64, dgram: usize) -> Result<String, String> {
    let bind: SocketAddr = if a.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }
        .parse()
        .map_err(|_| "any")?;
    let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    s.connect(a).map_err(|e| format!("connect {a}: {e}"))?;
    let seg = libc::c_int::try_from(dgram).map_err(|_| "datagram size")?;
    setsockopt_int(&s, libc::SOL_UDP, UDP_SEGMENT, seg).map_err(|e| format!("UDP_SEGMENT: {e}"))?;
    setsockopt_int(&s, libc::SOL_SOCKET, libc::SO_ZEROCOPY, 1)
        .map_err(|e| format!("SO_ZEROCOPY: {e}"))?;
    // An IPv6 UDP datagram carries at most 65535 - 8 bytes of payload.
    let per_send = (65527 / dgram).clamp(1, UDP_MAX_SEGMENTS) * dgram;
    let mut buf = vec![0u8; per_send];
    fill(&mut buf, 0, None);
    let (mut off, mut sends) = (0u64, 0u64);
    while off < bytes {
        let n = (bytes - off).min(per_send as u64) as usize;
        // SAFETY: `buf` holds at least `n` bytes and is never written again, so the
        // kernel may keep reading it after the call (MSG_ZEROCOPY).
        let r = unsafe { libc::send(s.as_raw_fd(), buf.as_ptr().cast(), n, libc::MSG_ZEROCOPY) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            // Too many sends in flight: take their completions and retry.
            if e.raw_os_error() == Some(libc::ENOBUFS) {
                reap_zerocopy(&s);
                continue;
            }
            return Err(format!("send at {off}: {e}"));
        }
        off += n as u64;
        sends += 1;
        if sends.is_multiple_of(16) {
            reap_zerocopy(&s);
        }
    }
    Ok(format!(
        "sent {off} bytes in {sends} sends of up to {per_send} bytes"
    ))
}

/// Sets integer socket option `name` at `level` of `s` to `v`.
fn setsockopt_int(
    s: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: `v` is a c_int that outlives the call, with its size passed.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Takes the `MSG_ZEROCOPY` completions queued on `s`'s error queue. They
/// only say which sends the kernel no longer reads, and the buffer is never
/// written, so they are dropped.
fn reap_zerocopy(s: &UdpSocket) {
    let mut control = [0u64; 16];
    loop {
        // SAFETY: all-zero is a valid msghdr (no name, no data).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: `msg` describes `control`, valid for writes during the call.
        let r = unsafe {
            libc::recvmsg(
                s.as_raw_fd(),
                &raw mut msg,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            return;
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 && !(args.len() == 4 && args[1] == "memcpy") {
        return usage();
    }
    if args[1] == "memcpy" {
        let (Ok(bytes), Ok(chunk)) = (args[2].parse(), args[3].parse()) else {
            return usage();
        };
        return report(memcpy_bw(bytes, chunk));
    }
    let a = match addr(&args[3], &args[4]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Ok(bytes) = args[5].parse::<u64>() else {
        return usage();
    };
    let mut dgram = 1400;
    let mut verify = true;
    let mut from = None;
    let mut ncdevmem = None;
    let mut flood = false;
    let mut gap = None;
    let mut rest = args[6..].iter();
    while let Some(a) = rest.next() {
        match (a.as_str(), rest.clone().next()) {
            ("--from", Some(v)) => {
                let Some((ip, port)) = v.rsplit_once(':') else {
                    return usage();
                };
                match addr(ip.trim_matches(['[', ']']), port) {
                    Ok(f) => from = Some(f),
                    Err(_) => return usage(),
                }
                rest.next();
            }
            ("--ncdevmem", Some(v)) => {
                match v.parse::<u64>() {
                    Ok(n) if n >= 2 => ncdevmem = Some(n),
                    _ => return usage(),
                }
                rest.next();
            }
            ("--no-verify", _) => verify = false,
            ("--flood", _) => flood = true,
            ("--gap", Some(v)) => {
                match v.parse::<u64>() {
                    Ok(ms) => gap = Some(Duration::from_millis(ms)),
                    Err(_) => return usage(),
                }
                rest.next();
            }
            (d, _) => match d.parse() {
                Ok(d) => dgram = d,
                Err(_) => return usage(),
            },
        }
    }
    let r = match (args[1].as_str(), args[2].as_str()) {
        ("recv", "tcp") => recv_tcp(a, bytes, verify),
        ("send", "tcp") => send_tcp(a, bytes, from, ncdevmem),
        ("recv", "udp") => recv_udp(a, bytes),
        ("send", "udp") if flood => flood_udp(a, bytes, dgram),
        ("send", "udp") => send_udp(a, bytes, dgram, gap),
        _ => return usage(),
    };
    report(r)
}

fn report(r: Result<String, String>) -> ExitCode {
    match r {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("netgpu_traffic: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_matches_pattern_at_any_offset_and_length() {
        for off in [0u64, 1, 5, 7, 8, 13, 1 << 20, (1 << 20) + 3] {
            for len in [0usize, 1, 7, 8, 9, 23, 64, 4099] {
                let mut buf = vec![0u8; len];
                fill(&mut buf, off, None);
                assert_eq!(mismatch(&buf, off), None, "off {off} len {len}");
            }
        }
    }
}
