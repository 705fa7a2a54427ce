// SPDX-License-Identifier: GPL-2.0

//! netgpu sample sender: connects to `ADDR PORT` and sends `BYTES` bytes of
//! the test stream (see `pattern.rs`), which `netgpu_recv` verifies.
//!
//! ```text
//! netgpu_send ADDR PORT BYTES [--from ADDR:PORT]
//! ```

#[path = "pattern.rs"]
mod pattern;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn connect(to: SocketAddr, from: Option<SocketAddr>) -> std::io::Result<TcpStream> {
    let Some(from) = from else {
        return TcpStream::connect(to);
    };
    // std has no bind-before-connect; do it with libc.
    let dom = if to.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(dom, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new socket nobody else owns.
    let s = unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let (fa, fl) = sockaddr(from);
    let (ta, tl) = sockaddr(to);
    // SAFETY: `fa`/`ta` hold socket addresses of lengths `fl`/`tl`.
    if unsafe { libc::bind(fd, fa.as_ptr().cast(), fl) } < 0
        || unsafe { libc::connect(fd, ta.as_ptr().cast(), tl) } < 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(s)
}

/// `a` as a `sockaddr_in`/`sockaddr_in6` in a buffer, and its length.
fn sockaddr(a: SocketAddr) -> ([u8; 28], libc::socklen_t) {
    let mut b = [0u8; 28];
    match a {
        SocketAddr::V4(v) => {
            b[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&v.port().to_be_bytes());
            b[4..8].copy_from_slice(&v.ip().octets());
            (b, 16)
        }
        SocketAddr::V6(v) => {
            b[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&v.port().to_be_bytes());
            b[8..24].copy_from_slice(&v.ip().octets());
            (b, 28)
        }
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let [addr, port, bytes, rest @ ..] = args else {
        return Err("usage: netgpu_send ADDR PORT BYTES [--from ADDR:PORT]".into());
    };
    let to: SocketAddr = format!("[{addr}]:{port}")
        .parse()
        .or_else(|_| format!("{addr}:{port}").parse())
        .map_err(|e| format!("address {addr} port {port}: {e}"))?;
    let bytes: u64 = bytes.parse().map_err(|e| format!("BYTES {bytes}: {e}"))?;
    let from = match rest {
        [] => None,
        [f, v] if f == "--from" => Some(v.parse().map_err(|e| format!("--from {v}: {e}"))?),
        _ => return Err(format!("unexpected arguments {rest:?}")),
    };
    let mut c = None;
    // The receiver may still be starting.
    for _ in 0..100 {
        match connect(to, from) {
            Ok(s) => {
                c = Some(s);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let mut c = c.ok_or_else(|| format!("cannot connect to {to}"))?;
    let t0 = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < bytes {
        let n = (bytes - off).min(buf.len() as u64) as usize;
        pattern::fill(&mut buf[..n], off);
        c.write_all(&buf[..n])
            .map_err(|e| format!("write at {off}: {e}"))?;
        off += n as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(format!("sent {off} bytes in {secs:.2} s"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("netgpu_send: {e}");
            ExitCode::FAILURE
        }
    }
}
