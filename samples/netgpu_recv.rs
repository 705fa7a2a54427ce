// SPDX-License-Identifier: GPL-2.0

//! netgpu sample receiver: TCP payload straight into a DMA-buf.
//!
//! ```text
//! netgpu_recv IFNAME QUEUE ADDR PORT [--bytes N]
//!             [--mem udmabuf|vgem|vfio:PCI_FUNCTION|p2pmem:PCI_FUNCTION]
//!             [--size BYTES] [--no-steer] [--expect zc|copy] [--conns N]
//!             [--no-verify] [--copy-baseline] [--hold] [--rcvlowat BYTES]
//! ```
//!
//! 1. Makes the buffer: a udmabuf from a sealed memfd (default), a vgem
//!    dumb buffer exported by PRIME, standing in for GPU memory, or BAR 2
//!    of a PCI function exported by vfio-pci, standing in for a GPU's BAR
//!    (device memory that only maps peer to peer), or PCI P2PDMA memory
//!    of a p2pmem provider, mapped from its sysfs `p2pmem/allocate` file.
//!    DMA-bufs are imported with `NETGPU_IOC_IMPORT_DMABUF`, P2PDMA memory
//!    with `NETGPU_IOC_IMPORT_P2PMEM`.
//! 2. Opens a netgpu context, imports the buffer as a region, sets up the
//!    rings and binds RX queue QUEUE of IFNAME to the region.
//! 3. Steers the flow to that queue with an ntuple rule (`ethtool -N`),
//!    removed again at exit (`--no-steer` leaves steering alone).
//! 4. Accepts N TCP connections (default 1) on ADDR PORT and attaches them.
//! 5. Receives: each completion says where payload landed in the region;
//!    the bytes are checked against the sender's pattern through the CPU
//!    mapping of the buffer (memfd, dumb-buffer, vfio BAR or p2pmem mmap), then the
//!    buffer is returned through the refill ring.
//! 6. Says "all streams ended" on stderr when they have, then prints
//!    throughput and netgpu's counters. Exit status 0 only if every byte
//!    matched, every stream ended, and each was `--bytes` long if given.
//!
//! With several connections, each is its own stream from offset 0; the
//! completions say which socket their bytes came from.
//!
//! For benchmarks, `--no-verify` skips the byte check,
//! `--copy-baseline` receives without netgpu, the way an application does
//! today: `recv()` into host memory, then a CPU copy into the (mapped)
//! buffer, and `--hold` waits for the end of standard input between the
//! end of the streams and the teardown. `--rcvlowat` sets `SO_RCVLOWAT` on
//! the connections (either way of receiving): TCP then wakes the receiver
//! once that many bytes are queued, not for every packet.
//!
//! The sender is `netgpu_send ADDR PORT BYTES`.

#[path = "pattern.rs"]
mod pattern;

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Command, ExitCode};
use std::time::Instant;

use netgpu_uapi::*;

/// A read-only shared mapping of a buffer.
struct Map {
    ptr: *const u8,
    len: usize,
}

impl Map {
    /// Maps `len` bytes of `fd` from `offset`, read-only unless `write`.
    fn new(fd: RawFd, len: usize, offset: u64, write: bool) -> io::Result<Self> {
        let prot = if write {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a new shared mapping at an address the kernel picks.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd,
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Map { ptr: p.cast(), len })
    }

    fn bytes(&self, off: u64, len: usize) -> Option<&[u8]> {
        let off = usize::try_from(off).ok()?;
        if off.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: in bounds of the live mapping; the kernel does not write
        // a buffer while user space holds it.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.add(off), len) })
    }

    /// Bytes `off..off + len` to write; the mapping must be writable.
    fn bytes_mut(&mut self, off: u64, len: usize) -> Option<&mut [u8]> {
        let off = usize::try_from(off).ok()?;
        if off.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: in bounds of the live mapping, borrowed uniquely through
        // `self`; no netgpu context uses the buffer in the copy baseline.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.cast_mut().add(off), len) })
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.cast_mut().cast(), self.len) };
    }
}

/// The memory to receive into: a DMA-buf, or none for P2PDMA memory, which
/// netgpu pins through its CPU mapping.
struct Buffer {
    dmabuf: Option<OwnedFd>,
    map: Map,
    _keep: Vec<OwnedFd>,
}

fn udmabuf(size: usize, write: bool) -> io::Result<Buffer> {
    let u = Udmabuf::new(size)?;
    let map = Map::new(u.memfd.as_raw_fd(), size, 0, write)?;
    Ok(Buffer {
        dmabuf: Some(u.dmabuf),
        map,
        _keep: vec![u.memfd],
    })
}

/// `struct drm_version` (64-bit layout).
#[repr(C)]
#[derive(Default)]
struct DrmVersion {
    major: i32,
    minor: i32,
    patch: i32,
    name_len: usize,
    name: usize,
    date_len: usize,
    date: usize,
    desc_len: usize,
    desc: usize,
}

/// `struct drm_mode_create_dumb`.
#[repr(C)]
#[derive(Default)]
struct CreateDumb {
    height: u32,
    width: u32,
    bpp: u32,
    flags: u32,
    handle: u32,
    pitch: u32,
    size: u64,
}

/// `struct drm_prime_handle`.
#[repr(C)]
#[derive(Default)]
struct PrimeHandle {
    handle: u32,
    flags: u32,
    fd: i32,
}

/// `struct drm_mode_map_dumb`.
#[repr(C)]
#[derive(Default)]
struct MapDumb {
    handle: u32,
    pad: u32,
    offset: u64,
}

const fn drm_iowr<T>(nr: u32) -> u32 {
    ioc::ioc(
        ioc::READ | ioc::WRITE,
        b'd' as u32,
        nr,
        std::mem::size_of::<T>(),
    )
}

/// `ioctl(fd, cmd, arg)` on a DRM structure.
fn drm_ioctl<T>(fd: RawFd, cmd: u32, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` is the structure `cmd` encodes, valid for its size.
    unsafe { raw_ioctl(fd, cmd, (arg as *mut T).cast()) }.map(|_| ())
}

/// The first DRM card whose driver is vgem.
fn vgem_card() -> io::Result<File> {
    for i in 0..16 {
        let Ok(f) = OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/dev/dri/card{i}"))
        else {
            continue;
        };
        let mut name = [0u8; 16];
        let mut v = DrmVersion {
            name_len: name.len(),
            name: name.as_mut_ptr() as usize,
            ..Default::default()
        };
        if drm_ioctl(f.as_raw_fd(), drm_iowr::<DrmVersion>(0x00), &mut v).is_ok()
            && name.starts_with(b"vgem")
        {
            return Ok(f);
        }
    }
    Err(io::Error::new(io::ErrorKind::NotFound, "no vgem DRM card"))
}

fn vgem(size: usize, write: bool) -> io::Result<Buffer> {
    let card = vgem_card()?;
    let fd = card.as_raw_fd();
    // One row of 4-byte pixels per page.
    let mut c = CreateDumb {
        height: (size / 4096) as u32,
        width: 1024,
        bpp: 32,
        ..Default::default()
    };
    drm_ioctl(fd, drm_iowr::<CreateDumb>(0xB2), &mut c)?;
    if c.size as usize != size {
        return Err(io::Error::other(format!(
            "vgem made {} bytes, not {size}",
            c.size
        )));
    }
    let mut p = PrimeHandle {
        handle: c.handle,
        flags: (libc::O_CLOEXEC | libc::O_RDWR) as u32,
        fd: -1,
    };
    drm_ioctl(fd, drm_iowr::<PrimeHandle>(0x2d), &mut p)?;
    // SAFETY: PRIME returned a new fd that nobody else owns.
    let dmabuf = unsafe { OwnedFd::from_raw_fd(p.fd) };
    let mut m = MapDumb {
        handle: c.handle,
        ..Default::default()
    };
    drm_ioctl(fd, drm_iowr::<MapDumb>(0xB3), &mut m)?;
    let map = Map::new(fd, size, m.offset, write)?;
    Ok(Buffer {
        dmabuf: Some(dmabuf),
        map,
        _keep: vec![card.into()],
    })
}

/// The first `size` bytes of BAR 2 of PCI function `bdf`, through vfio-pci:
/// exported as a DMA-buf and mapped through the vfio device.
fn vfio_bar(bdf: &str, size: usize, write: bool) -> io::Result<Buffer> {
    let func = vfio::VfioFunction::open(bdf)?;
    let dmabuf = func.dmabuf(2, 0, size as u64)?;
    let map = Map::new(func.fd(), size, vfio::VfioFunction::region_offset(2), write)?;
    Ok(Buffer {
        dmabuf: Some(dmabuf),
        map,
        _keep: func.into_fds(),
    })
}

/// `size` bytes of PCI P2PDMA memory of the p2pmem provider `bdf`, allocated
/// by mapping its sysfs `p2pmem/allocate` file (shared, writable: netgpu
/// pins the pages for writes by DMA).
fn p2pmem(bdf: &str, size: usize) -> io::Result<Buffer> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/sys/bus/pci/devices/{bdf}/p2pmem/allocate"))?;
    let map = Map::new(f.as_raw_fd(), size, 0, true)?;
    Ok(Buffer {
        dmabuf: None,
        map,
        _keep: vec![f.into()],
    })
}

/// An ntuple rule, deleted on drop.
struct Rule {
    ifname: String,
    id: String,
}

impl Rule {
    fn add(ifname: &str, addr: &SocketAddr, queue: u32) -> Result<Self, String> {
        let ft = if addr.is_ipv6() { "tcp6" } else { "tcp4" };
        let out = Command::new("ethtool")
            .args(["-N", ifname, "flow-type", ft])
            .args(["dst-ip", &addr.ip().to_string()])
            .args(["dst-port", &addr.port().to_string()])
            .args(["action", &queue.to_string()])
            .output()
            .map_err(|e| format!("ethtool: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("Added rule with ID "))
            .map(|s| s.trim().to_string());
        match id {
            Some(id) if out.status.success() => Ok(Rule {
                ifname: ifname.into(),
                id,
            }),
            _ => Err(format!(
                "ethtool -N {ifname}: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }
}

impl Drop for Rule {
    fn drop(&mut self) {
        let _ = Command::new("ethtool")
            .args(["-N", &self.ifname, "delete", &self.id])
            .status();
    }
}

/// Where the buffer comes from (`--mem`).
enum Mem {
    Udmabuf,
    Vgem,
    /// BAR 2 of this PCI function, exported by vfio-pci.
    Vfio(String),
    /// P2PDMA memory of this p2pmem provider.
    P2pmem(String),
}

impl Mem {
    fn name(&self) -> &'static str {
        match self {
            Mem::Udmabuf => "udmabuf",
            Mem::Vgem => "vgem",
            Mem::Vfio(_) => "vfio BAR",
            Mem::P2pmem(_) => "p2pmem",
        }
    }
}

struct Opts {
    ifname: String,
    queue: u32,
    addr: SocketAddr,
    bytes: Option<u64>,
    mem: Mem,
    size: usize,
    steer: bool,
    expect: Option<String>,
    conns: usize,
    verify: bool,
    copy_baseline: bool,
    hold: bool,
    rcvlowat: Option<i32>,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let [ifname, queue, addr, port, rest @ ..] = args else {
        return Err("usage: netgpu_recv IFNAME QUEUE ADDR PORT [--bytes N] [--mem udmabuf|vgem|vfio:PCI_FUNCTION|p2pmem:PCI_FUNCTION] [--size BYTES] [--no-steer] [--expect zc|copy] [--conns N] [--no-verify] [--copy-baseline] [--hold] [--rcvlowat BYTES]".into());
    };
    let addr: SocketAddr = format!("[{addr}]:{port}")
        .parse()
        .or_else(|_| format!("{addr}:{port}").parse())
        .map_err(|e| format!("address {addr} port {port}: {e}"))?;
    let mut o = Opts {
        ifname: ifname.clone(),
        queue: queue.parse().map_err(|e| format!("QUEUE {queue}: {e}"))?,
        addr,
        bytes: None,
        mem: Mem::Udmabuf,
        size: 32 << 20,
        steer: true,
        expect: None,
        conns: 1,
        verify: true,
        copy_baseline: false,
        hold: false,
        rcvlowat: None,
    };
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--bytes" => o.bytes = Some(val()?.parse().map_err(|e| format!("--bytes: {e}"))?),
            "--size" => o.size = val()?.parse().map_err(|e| format!("--size: {e}"))?,
            "--mem" => {
                o.mem = match val()?.as_str() {
                    "udmabuf" => Mem::Udmabuf,
                    "vgem" => Mem::Vgem,
                    m => match (m.strip_prefix("vfio:"), m.strip_prefix("p2pmem:")) {
                        (Some(bdf), _) => Mem::Vfio(bdf.to_string()),
                        (_, Some(bdf)) => Mem::P2pmem(bdf.to_string()),
                        _ => {
                            return Err(format!("--mem {m}: udmabuf, vgem, vfio:BDF or p2pmem:BDF"))
                        }
                    },
                }
            }
            "--no-steer" => o.steer = false,
            "--no-verify" => o.verify = false,
            "--copy-baseline" => o.copy_baseline = true,
            "--hold" => o.hold = true,
            "--rcvlowat" => {
                o.rcvlowat = Some(val()?.parse().map_err(|e| format!("--rcvlowat: {e}"))?)
            }
            "--expect" => o.expect = Some(val()?.clone()),
            "--conns" => o.conns = val()?.parse().map_err(|e| format!("--conns: {e}"))?,
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    Ok(o)
}

/// Sets `SO_RCVLOWAT` on `conn` to `bytes`, if given.
fn set_rcvlowat(conn: &TcpStream, bytes: Option<i32>) -> Result<(), String> {
    let Some(v) = bytes else {
        return Ok(());
    };
    // SAFETY: a valid socket and a c_int option value of the size given.
    let r = unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&raw const v).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(format!(
            "SO_RCVLOWAT {v}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn ifindex(ifname: &str) -> Result<u32, String> {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/ifindex"))
        .map_err(|e| format!("{ifname}: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("{ifname} ifindex: {e}"))
}

/// The buffer `o` asks for, its mapping writable if `write`.
fn buffer(o: &Opts, write: bool) -> Result<Buffer, String> {
    match &o.mem {
        Mem::Udmabuf => udmabuf(o.size, write).map_err(|e| format!("udmabuf buffer: {e}")),
        Mem::Vgem => vgem(o.size, write).map_err(|e| format!("vgem buffer: {e}")),
        Mem::Vfio(bdf) => {
            vfio_bar(bdf, o.size, write).map_err(|e| format!("vfio {bdf} BAR 2: {e}"))
        }
        Mem::P2pmem(bdf) => p2pmem(bdf, o.size).map_err(|e| format!("p2pmem of {bdf}: {e}")),
    }
}

/// Tells whoever watches (the benchmark) that the streams are received, before
/// the counters are read and the buffer and context are torn down; with
/// `--hold`, waits for the end of standard input first, so that the watcher
/// can measure the receive without the teardown.
fn ended(o: &Opts) {
    eprintln!("netgpu_recv: all streams ended");
    if o.hold {
        let _ = io::copy(&mut io::stdin(), &mut io::sink());
    }
}

/// The copy baseline: one connection received with `read()` into host
/// memory, each chunk then copied into the buffer through its CPU mapping
/// at the stream offset (wrapping at the buffer's end). No netgpu.
fn run_copy(o: &Opts) -> Result<String, String> {
    if o.conns != 1 {
        return Err("--copy-baseline takes one connection".into());
    }
    let mut buf = buffer(o, true)?;
    let _rule = if o.steer {
        Some(Rule::add(&o.ifname, &o.addr, o.queue)?)
    } else {
        None
    };
    let l = TcpListener::bind(o.addr).map_err(|e| format!("listen {}: {e}", o.addr))?;
    let (mut conn, peer) = l.accept().map_err(|e| format!("accept: {e}"))?;
    set_rcvlowat(&conn, o.rcvlowat)?;
    let mut host = vec![0u8; 1 << 20];
    let size = o.size as u64;
    let t0 = Instant::now();
    let mut pos = 0u64;
    loop {
        let n = match conn.read(&mut host) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("recv: {e}")),
        };
        let mut done = 0;
        while done < n {
            let at = (pos + done as u64) % size;
            let chunk = (n - done).min((size - at) as usize);
            let dst = buf
                .map
                .bytes_mut(at, chunk)
                .ok_or("the buffer mapping is too short")?;
            dst.copy_from_slice(&host[done..done + chunk]);
            if let Some(bad) = o
                .verify
                .then(|| pattern::first_mismatch(dst, pos + done as u64))
                .flatten()
            {
                return Err(format!("stream byte {bad} is wrong"));
            }
            done += chunk;
        }
        pos += n as u64;
    }
    let secs = t0.elapsed().as_secs_f64();
    ended(o);
    if let Some(want) = o.bytes.filter(|w| *w != pos) {
        return Err(format!("received {pos} of {want} bytes"));
    }
    Ok(format!(
        "received {pos} bytes on 1 connection(s) from {peer}, {}: {:.1} MB/s, copied into the {} buffer (copy baseline, no netgpu)",
        if o.verify { "verified" } else { "not verified" },
        pos as f64 / secs / 1e6,
        o.mem.name(),
    ))
}

fn run(o: &Opts) -> Result<String, String> {
    if o.copy_baseline {
        return run_copy(o);
    }
    let buf = buffer(o, false)?;
    let ctx = Netgpu::open().map_err(|e| format!("{DEVICE}: {e}"))?;
    let region = match &buf.dmabuf {
        Some(fd) => ctx
            .import_dmabuf(fd.as_raw_fd())
            .map(|(region, _)| region)
            .map_err(|e| format!("IMPORT_DMABUF: {e}"))?,
        None => ctx
            .import_p2pmem(buf.map.ptr as usize, buf.map.len)
            .map_err(|e| format!("IMPORT_P2PMEM: {e}"))?,
    };
    let (mut cq, mut rq) = ctx
        .setup_rings(4096, 4096)
        .map_err(|e| format!("SETUP_RINGS: {e}"))?;
    let binding = ctx
        .bind_queue(ifindex(&o.ifname)?, o.queue, region)
        .map_err(|e| format!("BIND_QUEUE {} queue {}: {e}", o.ifname, o.queue))?;
    let _rule = if o.steer {
        Some(Rule::add(&o.ifname, &o.addr, o.queue)?)
    } else {
        None
    };
    let l = TcpListener::bind(o.addr).map_err(|e| format!("listen {}: {e}", o.addr))?;
    // Each stream: (socket id, the connection, next stream offset, ended).
    let mut streams = Vec::new();
    let mut peer = None;
    for _ in 0..o.conns.max(1) {
        let (conn, p) = l.accept().map_err(|e| format!("accept: {e}"))?;
        set_rcvlowat(&conn, o.rcvlowat)?;
        let sid = ctx
            .attach_socket(conn.as_raw_fd())
            .map_err(|e| format!("ATTACH_SOCKET: {e}"))?;
        peer.get_or_insert(p);
        streams.push((sid, conn, 0u64, false));
    }
    let flags = if streams.len() > 1 {
        NETGPU_RECV_NONBLOCK
    } else {
        0
    };
    let t0 = Instant::now();
    let (mut total, mut zc, mut copied, mut comps) = (0u64, 0u64, 0u64, 0u64);
    while streams.iter().any(|s| !s.3) {
        let mut idle = true;
        for k in 0..streams.len() {
            if streams[k].3 {
                continue;
            }
            match ctx.recv(streams[k].0, 1 << 20, flags) {
                Ok(_) => idle = false,
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
                Err(e) => return Err(format!("RECV on socket {}: {e}", streams[k].0)),
            }
            while let Some(c) = cq.pop() {
                comps += 1;
                let s = streams
                    .iter_mut()
                    .find(|s| s.0 == c.socket_id)
                    .ok_or_else(|| format!("completion for unknown socket: {c:?}"))?;
                if c.flags & NETGPU_CQE_EOF != 0 {
                    s.3 = true;
                    // A socket at its end stays readable: detached, it no
                    // longer wakes poll() below.
                    ctx.detach_socket(s.0)
                        .map_err(|e| format!("DETACH_SOCKET {}: {e}", s.0))?;
                    continue;
                }
                if c.region_id != region {
                    return Err(format!("completion in region {}: {c:?}", c.region_id));
                }
                let data = buf
                    .map
                    .bytes(c.offset, c.len as usize)
                    .ok_or_else(|| format!("completion outside the buffer: {c:?}"))?;
                if let Some(bad) = o
                    .verify
                    .then(|| pattern::first_mismatch(data, s.2))
                    .flatten()
                {
                    return Err(format!("socket {} stream byte {bad} is wrong ({c:?})", s.0));
                }
                s.2 += u64::from(c.len);
                total += u64::from(c.len);
                if c.flags & NETGPU_CQE_COPY != 0 {
                    copied += u64::from(c.len);
                } else {
                    zc += u64::from(c.len);
                }
                let r = NetgpuRqe {
                    offset: c.offset,
                    region_id: c.region_id,
                    __pad: 0,
                };
                while !rq.push(&r) {
                    // Let the kernel take back what is queued.
                    ctx.recv(s.0, 0, 0).map_err(|e| format!("RECV 0: {e}"))?;
                }
            }
        }
        if idle && streams.iter().any(|s| !s.3) {
            // Sleep until some attached socket is readable.
            let mut p = libc::pollfd {
                fd: ctx.fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            match unsafe { libc::poll(&mut p, 1, 60_000) } {
                0 => return Err("no socket became readable in 60 s".into()),
                n if n < 0 => {
                    return Err(format!(
                        "poll on the context: {}",
                        std::io::Error::last_os_error()
                    ))
                }
                _ => (),
            }
        }
    }
    let peer = peer.map_or_else(String::new, |p| p.to_string());
    let pos = total;
    let secs = t0.elapsed().as_secs_f64();
    ended(o);
    let st = ctx.stats(0).map_err(|e| format!("GET_STATS: {e}"))?;
    let bs = ctx
        .stats(binding)
        .map_err(|e| format!("GET_STATS {binding}: {e}"))?;
    if let Some(want) = o.bytes {
        for s in &streams {
            if s.2 != want {
                return Err(format!("socket {} received {} of {want} bytes", s.0, s.2));
            }
        }
    }
    if st.zc_bytes != zc || st.copy_bytes != copied {
        return Err(format!(
            "counters disagree: {st:?}, completions zc {zc} copy {copied}"
        ));
    }
    match o.expect.as_deref() {
        Some("zc") if zc == 0 || copied > pos / 100 => {
            return Err(format!(
                "expected zero-copy payload: zc {zc}, copy {copied}"
            ));
        }
        Some("copy") if copied != pos => {
            return Err(format!("expected copied payload: zc {zc}, copy {copied}"));
        }
        _ => (),
    }
    Ok(format!(
        "received {pos} bytes on {} connection(s) from {peer}, {}: {:.1} MB/s, zc {zc}, copy {copied}, completions {comps}, refill errors {}, alloc failures {}, overflows {}, binding zc {}",
        streams.len(),
        if o.verify { "verified" } else { "not verified" },
        pos as f64 / secs / 1e6,
        st.refill_errors,
        st.alloc_failures,
        cq.overflows(),
        bs.zc_bytes
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args).and_then(|o| run(&o)) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("netgpu_recv: {e}");
            ExitCode::FAILURE
        }
    }
}
