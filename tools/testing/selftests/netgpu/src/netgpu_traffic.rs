// SPDX-License-Identifier: GPL-2.0

//! Test traffic with a verifiable payload, for the netgpu and netgpu-sim kselftests.
//!
//! ```text
//! netgpu_traffic recv tcp|udp ADDR PORT BYTES   # prints "received N bytes, verified"
//! netgpu_traffic send tcp|udp ADDR PORT BYTES [DGRAM]
//! ```
//!
//! The payload is a function of the stream offset ([`pattern`]), so the receiver checks
//! every byte without a copy of what was sent. For UDP each datagram starts with its
//! stream offset (8 bytes, little endian) and the receiver checks each datagram alone;
//! it stops after BYTES payload bytes or 3 s without data, and reports loss.
//! Exit status 0 only if everything received matched and (TCP) nothing was missing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Byte `off` of the test stream.
pub fn pattern(off: u64) -> u8 {
    let word = (off / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    word.to_le_bytes()[(off % 8) as usize]
}

fn fill(buf: &mut [u8], off: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern(off + i as u64);
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
    eprintln!("usage: netgpu_traffic recv|send tcp|udp ADDR PORT BYTES [DGRAM]");
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

fn recv_tcp(a: SocketAddr, bytes: u64) -> Result<String, String> {
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
        if let Some(i) = mismatch(&buf[..n], off) {
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
        "received {off} bytes, verified ({:.1} MB/s)",
        off as f64 / secs / 1e6
    ))
}

fn send_tcp(a: SocketAddr, bytes: u64) -> Result<String, String> {
    let mut c = None;
    // The receiver may still be starting.
    for _ in 0..50 {
        match TcpStream::connect(a) {
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
        fill(&mut buf[..n], off);
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

fn send_udp(a: SocketAddr, bytes: u64, dgram: usize) -> Result<String, String> {
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
        fill(&mut buf[8..8 + n], off);
        s.send_to(&buf[..8 + n], a)
            .map_err(|e| format!("send at {off}: {e}"))?;
        off += n as u64;
        sent += 1;
        // Datagrams are not flow controlled: pace them so the receiver keeps up.
        if sent.is_multiple_of(32) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(format!("sent {off} bytes in {sent} datagrams"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        return usage();
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
    let dgram = args.get(6).and_then(|d| d.parse().ok()).unwrap_or(1400);
    let r = match (args[1].as_str(), args[2].as_str()) {
        ("recv", "tcp") => recv_tcp(a, bytes),
        ("send", "tcp") => send_tcp(a, bytes),
        ("recv", "udp") => recv_udp(a, bytes),
        ("send", "udp") => send_udp(a, bytes, dgram),
        _ => return usage(),
    };
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
