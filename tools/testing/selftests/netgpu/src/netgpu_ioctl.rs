// SPDX-License-Identifier: GPL-2.0

//! kselftest: the `/dev/netgpu` context and ioctl ABI.
//!
//! Every bad input gets its exact errno checked, a one-line reason in dmesg,
//! and leaves the context working. Needs root and netgpu.ko loaded.

mod ktap;
mod rtnl;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};

use ktap::{Outcome, Test};
use netgpu_uapi::*;

const RW: u32 = ioc::READ | ioc::WRITE;

/// Calls `cmd` with `buf` as the argument; returns the errno or 0.
fn call(ctx: &Netgpu, cmd: u32, buf: *mut u8) -> i32 {
    // SAFETY: every caller passes a buffer of at least _IOC_SIZE(cmd) bytes,
    // or an address it wants the kernel to fault on.
    match unsafe { raw_ioctl(ctx.fd(), cmd, buf.cast()) } {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// The GET_INFO command with a `size`-byte argument.
fn info_cmd(size: usize) -> u32 {
    ioc::ioc(RW, NETGPU_IOC_TYPE, 0, size)
}

fn errname(e: i32) -> String {
    format!("{} ({})", io::Error::from_raw_os_error(e), e)
}

/// The context id /proc shows for `ctx`.
fn context_id(ctx: &Netgpu) -> io::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", ctx.fd()))?;
    s.lines()
        .find_map(|l| l.strip_prefix("netgpu-context:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no netgpu-context in fdinfo"))
}

/// A reader of new kernel log records.
struct Kmsg(BufReader<File>);

impl Kmsg {
    fn open() -> io::Result<Self> {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")?;
        f.seek(SeekFrom::End(0))?;
        Ok(Kmsg(BufReader::new(f)))
    }

    /// Messages logged since the last call.
    fn new_messages(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let mut rec = String::new();
            match self.0.read_line(&mut rec) {
                Ok(0) | Err(_) => break,
                Ok(_) => out.push(rec.split_once(';').map_or(rec.clone(), |r| r.1.to_string())),
            }
        }
        out
    }
}

/// Calls `cmd` on a fresh context with `arg`, and expects `errno`, a dmesg
/// line for that context containing `reason`, and a context that still
/// works afterwards.
fn expect_errno(cmd: u32, arg: *mut u8, errno: i32, reason: &str) -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    expect_errno_on(&ctx, cmd, arg, errno, reason)
}

/// [`expect_errno`] on the context `ctx`.
fn expect_errno_on(ctx: &Netgpu, cmd: u32, arg: *mut u8, errno: i32, reason: &str) -> Outcome {
    let id = try_or_fail!(context_id(ctx), "fdinfo");
    let mut kmsg = try_or_fail!(Kmsg::open(), "/dev/kmsg");
    let e = call(ctx, cmd, arg);
    check!(
        e == errno,
        "cmd {cmd:#x}: got {}, expected {}",
        errname(e),
        errname(errno)
    );
    let want = format!("netgpu: context {id}: ");
    let logged = kmsg.new_messages();
    check!(
        logged
            .iter()
            .any(|l| l.starts_with(&want) && l.contains(reason)),
        "no dmesg line '{want}...{reason}...' in {logged:?}"
    );
    let info = try_or_fail!(ctx.info(), "GET_INFO after a rejected call");
    check!(
        info.abi_version == NETGPU_ABI_VERSION,
        "bad abi version after rejection"
    );
    Outcome::Pass
}

/// [`expect_errno`] for GET_INFO with a `size`-byte argument built by `setup`.
fn expect_rejected(
    size: usize,
    setup: impl FnOnce(&mut [u8]),
    errno: i32,
    reason: &str,
) -> Outcome {
    let mut buf = vec![0u8; size.max(NetgpuInfo::SIZE)];
    setup(&mut buf);
    expect_errno(info_cmd(size), buf.as_mut_ptr(), errno, reason)
}

/// Runs `f` over `cases`, stopping at the first failure.
fn each<T>(cases: impl IntoIterator<Item = T>, mut f: impl FnMut(T) -> Outcome) -> Outcome {
    for c in cases {
        if let o @ Outcome::Fail(_) = f(c) {
            return o;
        }
    }
    Outcome::Pass
}

fn device_node() -> Outcome {
    let md = try_or_fail!(std::fs::metadata(DEVICE), DEVICE);
    check!(
        md.file_type().is_char_device(),
        "{DEVICE} is not a character device"
    );
    let mode = md.permissions().mode() & 0o777;
    check!(mode == 0o600, "{DEVICE} has mode {mode:o}, expected 600");
    Outcome::Pass
}

fn contexts_are_distinct() -> Outcome {
    let a = try_or_fail!(Netgpu::open(), "open");
    let b = try_or_fail!(Netgpu::open(), "open");
    let (ia, ib) = (
        try_or_fail!(context_id(&a), "fdinfo"),
        try_or_fail!(context_id(&b), "fdinfo"),
    );
    check!(
        ia != 0 && ib > ia,
        "context ids {ia} then {ib}: expected increasing, nonzero"
    );
    Outcome::Pass
}

fn get_info() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let info = try_or_fail!(ctx.info(), "GET_INFO");
    check!(
        info.abi_version == NETGPU_ABI_VERSION,
        "abi {} != {}",
        info.abi_version,
        NETGPU_ABI_VERSION
    );
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u32;
    check!(
        info.page_size == page,
        "page_size {} != {}",
        info.page_size,
        page
    );
    check!(
        info.features & !NETGPU_FEATURES_KNOWN == 0,
        "unknown feature bits {:#x}",
        info.features
    );
    check!(
        info.flags == 0 && info.__pad == 0 && info.reserved == [0; 4],
        "nonzero output padding: {info:?}"
    );
    Outcome::Pass
}

fn get_info_larger_arg_zero_tail() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let mut buf = vec![0u8; 128];
    let e = call(&ctx, info_cmd(128), buf.as_mut_ptr());
    check!(e == 0, "GET_INFO with a 128-byte argument: {}", errname(e));
    let info = NetgpuInfo::decode(&buf).expect("decode");
    check!(info.abi_version == NETGPU_ABI_VERSION, "abi not written");
    check!(
        buf[NetgpuInfo::SIZE..].iter().all(|&b| b == 0),
        "kernel wrote past its structure"
    );
    Outcome::Pass
}

fn unknown_nr() -> Outcome {
    let mut buf = [0u8; 64];
    each([0x1e, 0x1f, 0xff], |nr| {
        let cmd = ioc::ioc(RW, NETGPU_IOC_TYPE, nr, 56);
        expect_errno(cmd, buf.as_mut_ptr(), libc::ENOTTY, "unknown ioctl")
    })
}

fn foreign_type() -> Outcome {
    let mut buf = [0u8; 64];
    let cmd = ioc::ioc(RW, NETGPU_IOC_TYPE + 1, 0, 56);
    expect_errno(cmd, buf.as_mut_ptr(), libc::ENOTTY, "unknown ioctl")
}

fn wrong_direction() -> Outcome {
    let mut buf = [0u8; 64];
    each([ioc::NONE, ioc::READ, ioc::WRITE], |dir| {
        let cmd = ioc::ioc(dir, NETGPU_IOC_TYPE, 0, 56);
        expect_errno(cmd, buf.as_mut_ptr(), libc::ENOTTY, "unknown ioctl")
    })
}

fn short_arg() -> Outcome {
    each([0, 8, NETGPU_INFO_SIZE_VER0 - 1], |size| {
        expect_rejected(size, |_| {}, libc::EINVAL, "argument size")
    })
}

fn oversized_nonzero_tail() -> Outcome {
    expect_rejected(128, |b| b[100] = 1, libc::E2BIG, "trailing bytes not zero")
}

fn oversized_beyond_limit() -> Outcome {
    expect_rejected(16383, |_| {}, libc::E2BIG, "argument size")
}

fn nonzero_flags() -> Outcome {
    expect_rejected(56, |b| b[4] = 1, libc::EINVAL, "flags 0x1 not zero")
}

fn nonzero_pad() -> Outcome {
    expect_rejected(
        56,
        |b| b[20] = 0x80,
        libc::EINVAL,
        "reserved fields not zero",
    )
}

fn nonzero_reserved() -> Outcome {
    each([24, 32, 40, 55], |off| {
        expect_rejected(56, |b| b[off] = 1, libc::EINVAL, "reserved fields not zero")
    })
}

fn bad_pointer() -> Outcome {
    each([0usize, 8, usize::MAX - 4095], |addr| {
        let cmd = NETGPU_IOC_GET_INFO;
        expect_errno(cmd, addr as *mut u8, libc::EFAULT, "argument not readable")
    })
}

fn read_only_argument() -> Outcome {
    let prot = libc::PROT_READ;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    // SAFETY: a fresh anonymous mapping; unmapped below.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, prot, flags, -1, 0) };
    check!(p != libc::MAP_FAILED, "mmap failed");
    let o = expect_errno(
        NETGPU_IOC_GET_INFO,
        p.cast(),
        libc::EFAULT,
        "argument not writable",
    );
    // SAFETY: `p` is the 4096-byte mapping made above.
    unsafe { libc::munmap(p, 4096) };
    o
}

fn many_contexts() -> Outcome {
    let ctxs: Vec<Netgpu> = try_or_fail!(
        (0..256)
            .map(|_| Netgpu::open())
            .collect::<io::Result<Vec<_>>>(),
        "open 256 contexts"
    );
    for c in &ctxs {
        try_or_fail!(c.info(), "GET_INFO");
    }
    Outcome::Pass
}

fn not_readable_or_writable_as_file() -> Outcome {
    // The device has no read/write file operations.
    let mut f = try_or_fail!(File::open(DEVICE), "open");
    let mut b = [0u8; 8];
    match f.read(&mut b) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Outcome::Pass,
        r => Outcome::Fail(format!("read returned {r:?}, expected EINVAL")),
    }
}

/// [`expect_errno`] for IMPORT_DMABUF with `arg`.
fn expect_import_errno(ctx: &Netgpu, arg: NetgpuImportDmabuf, errno: i32, reason: &str) -> Outcome {
    let mut buf = vec![0u8; NetgpuImportDmabuf::SIZE];
    arg.encode(&mut buf).expect("encode");
    expect_errno_on(
        ctx,
        NETGPU_IOC_IMPORT_DMABUF,
        buf.as_mut_ptr(),
        errno,
        reason,
    )
}

/// A 1 MiB udmabuf.
fn udmabuf() -> io::Result<Udmabuf> {
    Udmabuf::new(1 << 20)
}

/// The `netgpu-region:` lines of the context's fdinfo.
fn fdinfo_regions(ctx: &Netgpu) -> io::Result<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", ctx.fd()))?;
    Ok(s.lines()
        .filter_map(|l| l.strip_prefix("netgpu-region:\t"))
        .map(str::to_string)
        .collect())
}

fn import_udmabuf() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let a = try_or_fail!(udmabuf(), "udmabuf");
    let b = try_or_fail!(Udmabuf::new(3 * 4096), "udmabuf");
    let (ia, sa) = try_or_fail!(ctx.import_dmabuf(a.dmabuf.as_raw_fd()), "import");
    let (ib, sb) = try_or_fail!(ctx.import_dmabuf(b.dmabuf.as_raw_fd()), "import");
    check!(ia == 1 && ib == 2, "region ids {ia}, {ib}: expected 1, 2");
    check!(
        sa == 1 << 20 && sb == 3 * 4096,
        "region sizes {sa}, {sb}: expected {}, {}",
        1 << 20,
        3 * 4096
    );
    let lines = try_or_fail!(fdinfo_regions(&ctx), "fdinfo");
    let want = [
        "1 dmabuf 1048576 bytes udmabuf free 256".to_string(),
        "2 dmabuf 12288 bytes udmabuf free 3".to_string(),
    ];
    check!(lines == want, "fdinfo regions {lines:?}, expected {want:?}");
    // The same DMA-buf may be imported again, as a region of its own.
    let (ic, _) = try_or_fail!(ctx.import_dmabuf(a.dmabuf.as_raw_fd()), "import");
    check!(ic == 3, "third region id {ic}, expected 3");
    Outcome::Pass
}

fn import_bad_fd() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    each([-1, 1_000_000], |fd| {
        let arg = NetgpuImportDmabuf {
            fd,
            ..Default::default()
        };
        expect_import_errno(&ctx, arg, libc::EBADF, &format!("fd {fd} is not open"))
    })
}

fn import_not_dmabuf() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let null = try_or_fail!(File::open("/dev/null"), "/dev/null");
    let ub = try_or_fail!(udmabuf(), "udmabuf");
    // Neither a character device nor the memfd behind a udmabuf is a DMA-buf.
    each([null.as_raw_fd(), ub.memfd.as_raw_fd(), ctx.fd()], |fd| {
        let arg = NetgpuImportDmabuf {
            fd,
            ..Default::default()
        };
        expect_import_errno(
            &ctx,
            arg,
            libc::EINVAL,
            &format!("fd {fd} is not a DMA-buf"),
        )
    })
}

fn import_nonzero_flags_reserved() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let ub = try_or_fail!(udmabuf(), "udmabuf");
    let fd = ub.dmabuf.as_raw_fd();
    let flags = NetgpuImportDmabuf {
        fd,
        flags: 1 << 31,
        ..Default::default()
    };
    let pad = NetgpuImportDmabuf {
        fd,
        __pad: 1,
        ..Default::default()
    };
    let reserved = NetgpuImportDmabuf {
        fd,
        reserved: [0, 1],
        ..Default::default()
    };
    pass!(expect_import_errno(
        &ctx,
        flags,
        libc::EINVAL,
        "flags 0x80000000 not zero"
    ));
    each([pad, reserved], |arg| {
        expect_import_errno(&ctx, arg, libc::EINVAL, "reserved fields not zero")
    })
}

fn import_region_limit() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let ub = try_or_fail!(Udmabuf::new(4096), "udmabuf");
    let fd = ub.dmabuf.as_raw_fd();
    for i in 0..NETGPU_MAX_REGIONS {
        try_or_fail!(ctx.import_dmabuf(fd), format!("import {i}"));
    }
    let arg = NetgpuImportDmabuf {
        fd,
        ..Default::default()
    };
    expect_import_errno(
        &ctx,
        arg,
        libc::ENOSPC,
        &format!("already {NETGPU_MAX_REGIONS} regions"),
    )
}

/// Whether debugfs lists a DMA-buf with inode number `ino`. Mounts debugfs
/// where `ip netns exec` left a fresh sysfs without it (in its own mount
/// namespace).
fn dmabuf_listed(ino: u64) -> io::Result<bool> {
    const BUFINFO: &str = "/sys/kernel/debug/dma_buf/bufinfo";
    if !std::path::Path::new(BUFINFO).exists() {
        // SAFETY: constant, NUL-terminated strings; no mount data.
        let r = unsafe {
            libc::mount(
                c"debugfs".as_ptr(),
                c"/sys/kernel/debug".as_ptr(),
                c"debugfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let s = std::fs::read_to_string(BUFINFO)?;
    Ok(s.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 6 && f[5].parse::<u64>().ok() == Some(ino)
    }))
}

fn import_holds_dmabuf_until_close() -> Outcome {
    use std::os::unix::fs::MetadataExt;
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let ub = try_or_fail!(udmabuf(), "udmabuf");
    let dup = try_or_fail!(ub.dmabuf.try_clone(), "dup");
    let ino = try_or_fail!(File::from(dup).metadata(), "fstat").ino();
    try_or_fail!(ctx.import_dmabuf(ub.dmabuf.as_raw_fd()), "import");
    drop(ub);
    check!(
        try_or_fail!(dmabuf_listed(ino), "bufinfo"),
        "DMA-buf {ino} gone while the context holds it"
    );
    drop(ctx);
    check!(
        !try_or_fail!(dmabuf_listed(ino), "bufinfo"),
        "DMA-buf {ino} still listed after the context closed"
    );
    Outcome::Pass
}

/// [`expect_errno`] for SETUP_RINGS with `arg`.
fn expect_rings_errno(ctx: &Netgpu, arg: NetgpuSetupRings, errno: i32, reason: &str) -> Outcome {
    let mut buf = vec![0u8; NetgpuSetupRings::SIZE];
    arg.encode(&mut buf).expect("encode");
    expect_errno_on(ctx, NETGPU_IOC_SETUP_RINGS, buf.as_mut_ptr(), errno, reason)
}

fn setup_rings() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let arg = NetgpuSetupRings {
        cq_entries: 64,
        rq_entries: 1024,
        ..Default::default()
    };
    let r = try_or_fail!(ctx.call(NETGPU_IOC_SETUP_RINGS, &arg), "SETUP_RINGS");
    for (name, o, n, esz, off) in [
        ("cq", r.cq, 64u64, NetgpuCqe::SIZE as u64, NETGPU_MMAP_CQ),
        ("rq", r.rq, 1024, NetgpuRqe::SIZE as u64, NETGPU_MMAP_RQ),
    ] {
        check!(
            o.ring_entries as u64 == n && o.mmap_offset == off,
            "{name}: {o:?}"
        );
        check!(
            o.head % 4 == 0 && o.tail % 4 == 0 && o.dropped % 4 == 0,
            "{name}: unaligned words {o:?}"
        );
        check!(
            o.mmap_size % 4096 == 0 && o.entries as u64 + n * esz <= o.mmap_size,
            "{name}: entries do not fit the mapping {o:?}"
        );
        let m = try_or_fail!(RingMap::new(ctx.fd(), &o), format!("mmap {name}"));
        for w in [o.head, o.tail, o.dropped] {
            check!(
                m.word(w).load(std::sync::atomic::Ordering::Acquire) == 0,
                "{name}: word at {w} not zero"
            );
        }
    }
    check!(
        r.reserved == [0; 2] && r.__pad == 0,
        "nonzero reserved output"
    );
    Outcome::Pass
}

fn setup_rings_twice() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    try_or_fail!(ctx.setup_rings(8, 8), "first SETUP_RINGS");
    let arg = NetgpuSetupRings {
        cq_entries: 8,
        rq_entries: 8,
        ..Default::default()
    };
    expect_rings_errno(&ctx, arg, libc::EBUSY, "rings already set up")
}

fn setup_rings_bad_entries() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let bad = [0, 3, 100, NETGPU_MAX_RING_ENTRIES * 2, u32::MAX];
    pass!(each(bad, |n| {
        let arg = NetgpuSetupRings {
            cq_entries: n,
            rq_entries: 8,
            ..Default::default()
        };
        expect_rings_errno(&ctx, arg, libc::EINVAL, &format!("cq_entries {n} is not"))
    }));
    each(bad, |n| {
        let arg = NetgpuSetupRings {
            cq_entries: 8,
            rq_entries: n,
            ..Default::default()
        };
        expect_rings_errno(&ctx, arg, libc::EINVAL, &format!("rq_entries {n} is not"))
    })
}

fn setup_rings_nonzero_flags_reserved() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let base = NetgpuSetupRings {
        cq_entries: 8,
        rq_entries: 8,
        ..Default::default()
    };
    pass!(expect_rings_errno(
        &ctx,
        NetgpuSetupRings { flags: 2, ..base },
        libc::EINVAL,
        "flags 0x2 not zero",
    ));
    each(
        [
            NetgpuSetupRings { __pad: 1, ..base },
            NetgpuSetupRings {
                reserved: [1, 0],
                ..base
            },
        ],
        |arg| expect_rings_errno(&ctx, arg, libc::EINVAL, "reserved fields not zero"),
    )
}

/// Maps `len` bytes at `off` of the context with `prot` and `flags`;
/// expects `errno` and a dmesg line containing `reason`.
fn expect_mmap_errno(
    ctx: &Netgpu,
    off: u64,
    len: usize,
    prot: i32,
    flags: i32,
    errno: i32,
    reason: &str,
) -> Outcome {
    let id = try_or_fail!(context_id(ctx), "fdinfo");
    let mut kmsg = try_or_fail!(Kmsg::open(), "/dev/kmsg");
    // SAFETY: a new mapping at an address the kernel picks; unmapped below
    // if it unexpectedly succeeds.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            flags,
            ctx.fd(),
            off as libc::off_t,
        )
    };
    if p != libc::MAP_FAILED {
        // SAFETY: the mapping just made.
        unsafe { libc::munmap(p, len) };
        return Outcome::Fail(format!("mmap at {off:#x} of {len} bytes succeeded"));
    }
    let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    check!(
        e == errno,
        "mmap at {off:#x}: got {}, expected {}",
        errname(e),
        errname(errno)
    );
    let want = format!("netgpu: context {id}: mmap: ");
    let logged = kmsg.new_messages();
    check!(
        logged
            .iter()
            .any(|l| l.starts_with(&want) && l.contains(reason)),
        "no dmesg line '{want}...{reason}...' in {logged:?}"
    );
    Outcome::Pass
}

const RW_PROT: i32 = libc::PROT_READ | libc::PROT_WRITE;

fn mmap_before_setup() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    expect_mmap_errno(
        &ctx,
        NETGPU_MMAP_CQ,
        4096,
        RW_PROT,
        libc::MAP_SHARED,
        libc::ENXIO,
        "no rings set up",
    )
}

fn mmap_bad_requests() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let arg = NetgpuSetupRings {
        cq_entries: 8,
        rq_entries: 8,
        ..Default::default()
    };
    let r = try_or_fail!(ctx.call(NETGPU_IOC_SETUP_RINGS, &arg), "SETUP_RINGS");
    let sh = libc::MAP_SHARED;
    let cq_len = r.cq.mmap_size as usize;
    let cases: [(u64, usize, i32, i32, i32, &str); 5] = [
        (
            4096,
            4096,
            RW_PROT,
            sh,
            libc::EINVAL,
            "offset 0x1000 is no ring's",
        ),
        (
            NETGPU_MMAP_RQ + 4096,
            4096,
            RW_PROT,
            sh,
            libc::EINVAL,
            "is no ring's",
        ),
        (
            NETGPU_MMAP_CQ,
            cq_len + 4096,
            RW_PROT,
            sh,
            libc::EINVAL,
            "do not fit the ring",
        ),
        (
            NETGPU_MMAP_CQ,
            cq_len,
            RW_PROT,
            libc::MAP_PRIVATE,
            libc::EPERM,
            "only shared",
        ),
        (
            NETGPU_MMAP_RQ,
            4096,
            RW_PROT | libc::PROT_EXEC,
            sh,
            libc::EPERM,
            "only shared",
        ),
    ];
    each(cases, |(off, len, prot, flags, errno, reason)| {
        expect_mmap_errno(&ctx, off, len, prot, flags, errno, reason)
    })
}

/// Expects `errno` and a dmesg line containing `reason` for `cmd` with the
/// encoded `arg` on `ctx`.
fn expect_call_errno<T: Wire>(
    ctx: &Netgpu,
    cmd: u32,
    arg: &T,
    errno: i32,
    reason: &str,
) -> Outcome {
    let mut buf = vec![0u8; T::SIZE];
    arg.encode(&mut buf).expect("encode");
    expect_errno_on(ctx, cmd, buf.as_mut_ptr(), errno, reason)
}

/// A context with a 1 MiB udmabuf region (id 1) and rings.
fn ready_context() -> io::Result<(Netgpu, Udmabuf, CqMap, RqMap)> {
    let ctx = Netgpu::open()?;
    let ub = udmabuf()?;
    ctx.import_dmabuf(ub.dmabuf.as_raw_fd())?;
    let (cq, rq) = ctx.setup_rings(256, 256)?;
    Ok((ctx, ub, cq, rq))
}

fn bind_unknown_region() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let arg = NetgpuBindQueue {
        ifindex: 1,
        region_id: 7,
        ..Default::default()
    };
    expect_call_errno(
        &ctx,
        NETGPU_IOC_BIND_QUEUE,
        &arg,
        libc::ENOENT,
        "no region 7",
    )
}

fn bind_unknown_ifindex() -> Outcome {
    let (ctx, _ub, _cq, _rq) = try_or_fail!(ready_context(), "context");
    each([0u32, 99_999, u32::MAX], |ifindex| {
        let arg = NetgpuBindQueue {
            ifindex,
            region_id: 1,
            ..Default::default()
        };
        expect_call_errno(
            &ctx,
            NETGPU_IOC_BIND_QUEUE,
            &arg,
            libc::ENODEV,
            &format!("no device with ifindex {ifindex} in the caller's network namespace"),
        )
    })
}

fn bind_no_queue_api() -> Outcome {
    // The loopback device has no queue management API.
    let (ctx, _ub, _cq, _rq) = try_or_fail!(ready_context(), "context");
    let arg = NetgpuBindQueue {
        ifindex: 1,
        region_id: 1,
        ..Default::default()
    };
    expect_call_errno(
        &ctx,
        NETGPU_IOC_BIND_QUEUE,
        &arg,
        libc::EOPNOTSUPP,
        "ifindex 1 has no queue management API",
    )
}

fn bind_nonzero_flags_reserved() -> Outcome {
    let (ctx, _ub, _cq, _rq) = try_or_fail!(ready_context(), "context");
    let base = NetgpuBindQueue {
        ifindex: 1,
        region_id: 1,
        ..Default::default()
    };
    pass!(expect_call_errno(
        &ctx,
        NETGPU_IOC_BIND_QUEUE,
        &NetgpuBindQueue { flags: 1, ..base },
        libc::EINVAL,
        "flags 0x1 not zero",
    ));
    each(
        [
            NetgpuBindQueue { __pad: 1, ..base },
            NetgpuBindQueue {
                reserved: [0, 9],
                ..base
            },
        ],
        |a| {
            expect_call_errno(
                &ctx,
                NETGPU_IOC_BIND_QUEUE,
                &a,
                libc::EINVAL,
                "reserved fields not zero",
            )
        },
    )
}

fn unbind_detach_unknown() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    pass!(expect_call_errno(
        &ctx,
        NETGPU_IOC_UNBIND_QUEUE,
        &NetgpuUnbindQueue {
            binding_id: 3,
            ..Default::default()
        },
        libc::ENOENT,
        "no binding 3",
    ));
    pass!(expect_call_errno(
        &ctx,
        NETGPU_IOC_DETACH_SOCKET,
        &NetgpuDetachSocket {
            socket_id: 4,
            ..Default::default()
        },
        libc::ENOENT,
        "no socket 4",
    ));
    expect_call_errno(
        &ctx,
        NETGPU_IOC_GET_STATS,
        &NetgpuStats {
            binding_id: 5,
            ..Default::default()
        },
        libc::ENOENT,
        "no binding 5",
    )
}

/// A private network namespace for this thread with 192.0.2.1 on its
/// loopback device, so socket tests stay off every real address.
fn private_netns() -> io::Result<()> {
    // SAFETY: unshare(2) of this thread's network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    for args in [
        &["link", "set", "lo", "up"][..],
        &["addr", "add", "192.0.2.1/32", "dev", "lo"][..],
    ] {
        let st = std::process::Command::new("ip").args(args).status()?;
        if !st.success() {
            return Err(io::Error::other(format!("ip {args:?} failed")));
        }
    }
    Ok(())
}

/// A connected TCP pair over the private loopback: (client, server side).
fn tcp_pair() -> io::Result<(std::net::TcpStream, std::net::TcpStream)> {
    let l = std::net::TcpListener::bind("192.0.2.1:0")?;
    let c = std::net::TcpStream::connect(l.local_addr()?)?;
    let (s, _) = l.accept()?;
    Ok((c, s))
}

fn attach_bad_sockets() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let null = try_or_fail!(File::open("/dev/null"), "/dev/null");
    let udp = try_or_fail!(std::net::UdpSocket::bind("192.0.2.1:0"), "udp");
    let listener = try_or_fail!(std::net::TcpListener::bind("192.0.2.1:0"), "listen");
    let cases = [
        (-1, libc::EBADF, "fd -1 is not open".to_string()),
        (
            null.as_raw_fd(),
            libc::ENOTSOCK,
            format!("fd {} is not a socket", null.as_raw_fd()),
        ),
        (
            udp.as_raw_fd(),
            libc::EOPNOTSUPP,
            format!("fd {} is not a plain TCP socket", udp.as_raw_fd()),
        ),
        (
            listener.as_raw_fd(),
            libc::EINVAL,
            format!("fd {} is a listening socket", listener.as_raw_fd()),
        ),
    ];
    each(cases, |(fd, errno, why)| {
        let arg = NetgpuAttachSocket {
            fd,
            ..Default::default()
        };
        expect_call_errno(&ctx, NETGPU_IOC_ATTACH_SOCKET, &arg, errno, &why)
    })
}

fn attach_twice_detach() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let (_c, s) = try_or_fail!(tcp_pair(), "tcp pair");
    let id = try_or_fail!(ctx.attach_socket(s.as_raw_fd()), "attach");
    let arg = NetgpuAttachSocket {
        fd: s.as_raw_fd(),
        ..Default::default()
    };
    pass!(expect_call_errno(
        &ctx,
        NETGPU_IOC_ATTACH_SOCKET,
        &arg,
        libc::EBUSY,
        &format!("is attached as socket {id}"),
    ));
    try_or_fail!(ctx.detach_socket(id), "detach");
    let again = try_or_fail!(ctx.attach_socket(s.as_raw_fd()), "attach after detach");
    check!(
        again > id,
        "socket id {again} after {id}: ids are never reused"
    );
    Outcome::Pass
}

fn recv_errors() -> Outcome {
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let (_c, s) = try_or_fail!(tcp_pair(), "tcp pair");
    let id = try_or_fail!(ctx.attach_socket(s.as_raw_fd()), "attach");
    let arg = NetgpuRecv {
        socket_id: id,
        max_bytes: 4096,
        flags: NETGPU_RECV_NONBLOCK,
        ..Default::default()
    };
    pass!(expect_call_errno(
        &ctx,
        NETGPU_IOC_RECV,
        &arg,
        libc::ENXIO,
        "no rings set up"
    ));
    let _rings = try_or_fail!(ctx.setup_rings(16, 16), "rings");
    let cases = [
        (
            NetgpuRecv {
                socket_id: id + 1,
                ..arg
            },
            libc::ENOENT,
            format!("no socket {}", id + 1),
        ),
        (
            NetgpuRecv { flags: 6, ..arg },
            libc::EINVAL,
            "flags 0x6 not zero".to_string(),
        ),
        (
            NetgpuRecv {
                reserved: [1, 0],
                ..arg
            },
            libc::EINVAL,
            "reserved fields not zero".to_string(),
        ),
    ];
    pass!(each(cases, |(a, errno, why)| {
        expect_call_errno(&ctx, NETGPU_IOC_RECV, &a, errno, &why)
    }));
    // No data yet: EAGAIN, and not worth a dmesg line.
    match ctx.recv(id, 4096, NETGPU_RECV_NONBLOCK) {
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Outcome::Pass,
        r => Outcome::Fail(format!("RECV without data: {r:?}, expected EAGAIN")),
    }
}

/// Receives `bytes` of the test stream sent over a loopback TCP pair
/// through `ctx`, checking every completion against the memfd; returns
/// (payload bytes, completions, EOF seen).
fn loopback_stream(
    ctx: &Netgpu,
    region: &[u8],
    cq: &mut CqMap,
    rq: &mut RqMap,
    bytes: usize,
    close: bool,
) -> Result<(u64, u32, bool), String> {
    use std::io::Write;
    let (mut c, s) = tcp_pair().map_err(|e| format!("tcp pair: {e}"))?;
    let id = ctx
        .attach_socket(s.as_raw_fd())
        .map_err(|e| format!("attach: {e}"))?;
    let data: Vec<u8> = (0..bytes as u64).map(netgpu_pattern).collect();
    c.write_all(&data).map_err(|e| format!("send: {e}"))?;
    // Kept open until the stream is read unless the test wants an EOF.
    let keep = if close {
        drop(c);
        None
    } else {
        Some(c)
    };
    let (mut pos, mut comps, mut eof) = (0u64, 0u32, false);
    while pos < bytes as u64 || (close && !eof) {
        let (_, n) = ctx
            .recv(id, 1 << 20, 0)
            .map_err(|e| format!("RECV at {pos}: {e}"))?;
        if n == 0 && !close {
            break;
        }
        while let Some(e) = cq.pop() {
            comps += 1;
            if e.flags & NETGPU_CQE_EOF != 0 {
                eof = true;
                continue;
            }
            if e.flags & NETGPU_CQE_COPY == 0 || e.socket_id != id || e.region_id != 1 {
                return Err(format!("unexpected completion {e:?}"));
            }
            let off = e.offset as usize;
            let got = region
                .get(off..off + e.len as usize)
                .ok_or_else(|| format!("completion outside the region: {e:?}"))?;
            let want = &data[pos as usize..pos as usize + e.len as usize];
            if got != want {
                return Err(format!("bytes at stream offset {pos} differ ({e:?})"));
            }
            pos += u64::from(e.len);
            if !rq.push(&NetgpuRqe {
                offset: e.offset,
                region_id: 1,
                __pad: 0,
            }) {
                return Err("refill ring full".into());
            }
        }
    }
    drop(keep);
    Ok((pos, comps, eof))
}

/// Byte `off` of the test stream (the samples' pattern).
fn netgpu_pattern(off: u64) -> u8 {
    let word = (off / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    word.to_le_bytes()[(off % 8) as usize]
}

/// The memfd of a udmabuf, mapped read-only, as a slice.
fn map_memfd(ub: &Udmabuf) -> Result<&'static [u8], String> {
    map_ro(ub.memfd.as_raw_fd(), ub.size, 0).map_err(|e| format!("memfd {e}"))
}

fn copy_fallback_loopback() -> Outcome {
    let (ctx, ub, mut cq, mut rq) = try_or_fail!(ready_context(), "context");
    let bytes = 300_000;
    let map = try_or_fail!(map_memfd(&ub), "map");
    let (got, comps, eof) = try_or_fail!(
        loopback_stream(&ctx, map, &mut cq, &mut rq, bytes, true),
        "stream"
    );
    check!(got == bytes as u64, "received {got} of {bytes}");
    check!(eof, "no EOF completion after the peer closed");
    // The returned buffers go back: a RECV of 0 bytes takes them.
    let st = try_or_fail!(ctx.stats(0), "stats");
    check!(
        st.copy_bytes == bytes as u64 && st.zc_bytes == 0,
        "stats {st:?}"
    );
    check!(comps > 0, "no completions");
    // After the EOF the socket (id 2) reads 0 bytes and no second EOF.
    let r = try_or_fail!(ctx.recv(2, 4096, 0), "RECV after EOF");
    check!(r == (0, 0), "RECV after EOF gave {r:?}");
    check!(cq.pop().is_none(), "a completion after EOF");
    let lines = try_or_fail!(fdinfo_regions(&ctx), "fdinfo");
    check!(
        lines.first().is_some_and(|l| l.ends_with(" free 256")),
        "after every buffer came back, fdinfo says {lines:?}"
    );
    Outcome::Pass
}

fn garbage_refill_entries() -> Outcome {
    let (ctx, _ub, _cq, mut rq) = try_or_fail!(ready_context(), "context");
    let (_c, s) = try_or_fail!(tcp_pair(), "tcp pair");
    let id = try_or_fail!(ctx.attach_socket(s.as_raw_fd()), "attach");
    let bad = [
        NetgpuRqe {
            offset: 0,
            region_id: 9,
            __pad: 0,
        },
        NetgpuRqe {
            offset: 1 << 40,
            region_id: 1,
            __pad: 0,
        },
        NetgpuRqe {
            offset: u64::MAX,
            region_id: 1,
            __pad: 0,
        },
        // Buffers user space does not hold (never completed).
        NetgpuRqe {
            offset: 0,
            region_id: 1,
            __pad: 0,
        },
        NetgpuRqe {
            offset: 4096 * 5 + 7,
            region_id: 1,
            __pad: 0,
        },
    ];
    for r in &bad {
        check!(rq.push(r), "refill ring full");
    }
    try_or_fail!(ctx.recv(id, 0, 0), "RECV 0");
    check!(
        rq.bad_entries() == bad.len() as u32,
        "ring drop counter {} after {} bad entries",
        rq.bad_entries(),
        bad.len()
    );
    let st = try_or_fail!(ctx.stats(0), "stats");
    check!(
        st.refill_errors == bad.len() as u64,
        "refill_errors {}",
        st.refill_errors
    );
    let lines = try_or_fail!(fdinfo_regions(&ctx), "fdinfo");
    check!(
        lines.first().is_some_and(|l| l.ends_with(" free 256")),
        "bad entries changed the free list: {lines:?}"
    );
    Outcome::Pass
}

fn double_return_rejected() -> Outcome {
    let (ctx, ub, mut cq, mut rq) = try_or_fail!(ready_context(), "context");
    let map = try_or_fail!(map_memfd(&ub), "map");
    let (got, _, _) = try_or_fail!(
        loopback_stream(&ctx, map, &mut cq, &mut rq, 1000, false),
        "stream"
    );
    check!(got == 1000, "received {got}");
    // The stream's buffer went back once above; returning it again (and
    // again) is counted, and the free list is whole, not over-full.
    for _ in 0..2 {
        check!(
            rq.push(&NetgpuRqe {
                offset: 0,
                region_id: 1,
                __pad: 0
            }),
            "refill ring full"
        );
    }
    try_or_fail!(ctx.recv(2, 0, 0), "RECV 0");
    check!(rq.bad_entries() == 2, "drop counter {}", rq.bad_entries());
    let lines = try_or_fail!(fdinfo_regions(&ctx), "fdinfo");
    check!(
        lines.first().is_some_and(|l| l.ends_with(" free 256")),
        "free list after double returns: {lines:?}"
    );
    Outcome::Pass
}

/// poll() on `fd` for `POLLIN` for up to `ms` milliseconds; the events.
fn poll_in(fd: i32, ms: i32) -> io::Result<i16> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    match unsafe { libc::poll(&mut p, 1, ms) } {
        n if n < 0 => Err(io::Error::last_os_error()),
        _ => Ok(p.revents),
    }
}

/// An edge-triggered epoll instance watching `fd` for `EPOLLIN`.
struct Epoll(std::os::fd::OwnedFd);

impl Epoll {
    fn new(fd: i32) -> io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscall.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `ep` is a new fd this owns.
        let ep = Epoll(unsafe { std::os::fd::OwnedFd::from_raw_fd(ep) });
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: 7,
        };
        // SAFETY: valid fds and event.
        if unsafe { libc::epoll_ctl(ep.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ep)
    }

    /// The number of events within `ms` milliseconds.
    fn wait(&self, ms: i32) -> io::Result<i32> {
        let mut ev = [libc::epoll_event { events: 0, u64: 0 }; 4];
        // SAFETY: `ev` has room for 4 events.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), ev.as_mut_ptr(), 4, ms) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n)
    }
}

/// Receives what the socket has and hands the buffers back.
fn drain_socket(ctx: &Netgpu, cq: &mut CqMap, rq: &mut RqMap, id: u32) -> io::Result<(u64, u32)> {
    let r = ctx.recv(id, 1 << 20, NETGPU_RECV_NONBLOCK)?;
    while let Some(e) = cq.pop() {
        if e.flags & NETGPU_CQE_EOF == 0 {
            rq.push(&NetgpuRqe {
                offset: e.offset,
                region_id: e.region_id,
                __pad: 0,
            });
        }
    }
    Ok(r)
}

fn poll_readiness() -> Outcome {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let (ctx, _ub, mut cq, mut rq) = try_or_fail!(ready_context(), "context");
    let fd = ctx.fd();
    check!(
        try_or_fail!(poll_in(fd, 0), "poll") == 0,
        "readable without sockets"
    );
    let (mut c, s) = try_or_fail!(tcp_pair(), "tcp pair");
    let id = try_or_fail!(ctx.attach_socket(s.as_raw_fd()), "attach");
    let ep = try_or_fail!(Epoll::new(fd), "epoll");
    check!(
        try_or_fail!(poll_in(fd, 0), "poll") == 0,
        "readable before the peer sent anything"
    );
    check!(try_or_fail!(ep.wait(0), "epoll_wait") == 0, "an early edge");
    // Data arriving while poll() sleeps wakes it: the socket's wakeup
    // reaches the context's wait queue.
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        c.write_all(b"hello").map(|()| c)
    });
    let t0 = Instant::now();
    let r = poll_in(fd, 10_000);
    let took = t0.elapsed();
    let mut c = match t.join() {
        Ok(Ok(c)) => c,
        _ => return Outcome::Fail("the sender thread failed".into()),
    };
    let r = try_or_fail!(r, "poll");
    check!(
        r & libc::POLLIN != 0 && took < Duration::from_secs(5),
        "poll gave {r:#x} after {took:?} for data sent after 300 ms"
    );
    check!(
        try_or_fail!(ep.wait(1000), "epoll_wait") == 1,
        "no epoll edge for the data"
    );
    check!(
        try_or_fail!(ep.wait(0), "epoll_wait") == 0,
        "a second edge without new data"
    );
    let got = try_or_fail!(drain_socket(&ctx, &mut cq, &mut rq, id), "RECV");
    check!(got.0 == 5, "RECV took {got:?}");
    check!(
        try_or_fail!(poll_in(fd, 0), "poll") == 0,
        "readable after RECV took everything"
    );
    try_or_fail!(c.write_all(b"x"), "send");
    check!(
        try_or_fail!(ep.wait(5000), "epoll_wait") == 1,
        "no epoll edge for more data"
    );
    try_or_fail!(drain_socket(&ctx, &mut cq, &mut rq, id), "RECV");
    // The end of the stream is readable until the socket is detached,
    // as with poll() on the socket: RECV returns at once.
    drop(c);
    check!(
        try_or_fail!(poll_in(fd, 5000), "poll") & libc::POLLIN != 0,
        "the peer's close is not readable"
    );
    let eof = try_or_fail!(drain_socket(&ctx, &mut cq, &mut rq, id), "RECV at EOF");
    check!(eof == (0, 1), "RECV at EOF gave {eof:?}");
    check!(
        try_or_fail!(poll_in(fd, 0), "poll") & libc::POLLIN != 0,
        "not readable after EOF"
    );
    try_or_fail!(ctx.detach_socket(id), "detach");
    check!(
        try_or_fail!(poll_in(fd, 0), "poll") == 0,
        "readable after the socket was detached"
    );
    Outcome::Pass
}

/// The netgpu-sim device the `--sim` tests bind (4 queues, split on).
static SIM_IF: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn sim_ifindex() -> io::Result<u32> {
    let name = SIM_IF.get().map_or("ngs1", String::as_str);
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))?
        .trim()
        .parse()
        .map_err(io::Error::other)
}

/// [`expect_call_errno`] for BIND_QUEUE of `region` to `queue` of the sim.
fn expect_bind_errno(ctx: &Netgpu, region: u32, queue: u32, errno: i32, reason: &str) -> Outcome {
    let ifindex = try_or_fail!(sim_ifindex(), "ifindex");
    let arg = NetgpuBindQueue {
        ifindex,
        queue,
        region_id: region,
        ..Default::default()
    };
    expect_call_errno(
        ctx,
        NETGPU_IOC_BIND_QUEUE,
        &arg,
        errno,
        &reason.replace("IFX", &ifindex.to_string()),
    )
}

/// The `netgpu-binding:` lines of the context's fdinfo.
fn fdinfo_bindings(ctx: &Netgpu) -> io::Result<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", ctx.fd()))?;
    Ok(s.lines()
        .filter_map(|l| l.strip_prefix("netgpu-binding:\t"))
        .map(str::to_string)
        .collect())
}

fn sim_bind_unbind() -> Outcome {
    let (ctx, _ub, _cq, _rq) = try_or_fail!(ready_context(), "context");
    let ifindex = try_or_fail!(sim_ifindex(), "ifindex");
    let b = try_or_fail!(ctx.bind_queue(ifindex, 3, 1), "BIND_QUEUE");
    let lines = try_or_fail!(fdinfo_bindings(&ctx), "fdinfo");
    let want = format!("{b} region 1 ifindex {ifindex} queue 3");
    check!(
        lines == [want.clone()],
        "fdinfo bindings {lines:?}, expected [{want}]"
    );
    try_or_fail!(ctx.unbind_queue(b), "UNBIND_QUEUE");
    let lines = try_or_fail!(fdinfo_bindings(&ctx), "fdinfo");
    check!(lines.is_empty(), "binding left after unbind: {lines:?}");
    // The region is free again once the queue's pools gave it back.
    let b2 = try_or_fail!(ctx.bind_queue(ifindex, 3, 1), "BIND_QUEUE again");
    check!(b2 > b, "binding id {b2} after {b}");
    Outcome::Pass
}

fn sim_bind_busy() -> Outcome {
    let (ctx, _ub, _cq, _rq) = try_or_fail!(ready_context(), "context");
    let ub2 = try_or_fail!(udmabuf(), "udmabuf");
    let (r2, _) = try_or_fail!(ctx.import_dmabuf(ub2.dmabuf.as_raw_fd()), "import");
    let ifindex = try_or_fail!(sim_ifindex(), "ifindex");
    try_or_fail!(ctx.bind_queue(ifindex, 3, 1), "BIND_QUEUE");
    pass!(expect_bind_errno(
        &ctx,
        r2,
        3,
        libc::EBUSY,
        "queue 3 of ifindex IFX has a memory provider",
    ));
    pass!(expect_bind_errno(
        &ctx,
        1,
        2,
        libc::EBUSY,
        "region 1 is bound"
    ));
    // Another context cannot take the queue either.
    let (other, _ub3, _cq3, _rq3) = try_or_fail!(ready_context(), "second context");
    expect_bind_errno(
        &other,
        1,
        3,
        libc::EBUSY,
        "queue 3 of ifindex IFX has a memory provider",
    )
}

fn sim_bind_out_of_range() -> Outcome {
    let (ctx, _ub, _cq, _rq) = try_or_fail!(ready_context(), "context");
    each([4u32, 1000, u32::MAX], |q| {
        expect_bind_errno(
            &ctx,
            1,
            q,
            libc::ERANGE,
            &format!("queue {q} out of range: ifindex IFX has 4 RX queues"),
        )
    })
}

/// PCI ids of the ivshmem function the VM runner adds; its BAR 2 is memory.
const IVSHMEM: (u16, u16) = (0x1af4, 0x1110);

/// A region netgpu-sim's DMA device cannot reach: a PCI BAR exported by
/// vfio-pci maps only peer to peer, and the sim's device is not on PCI.
/// BIND_QUEUE fails with the exporter's EINVAL and says why; the import
/// stays usable as a region, the queue stays free for another region, and
/// the DMA-buf goes when its holders close it.
fn sim_bind_unreachable_region() -> Outcome {
    use std::os::unix::fs::MetadataExt;
    let found = try_or_fail!(vfio::find_function(IVSHMEM.0, IVSHMEM.1), "PCI scan");
    let Some(bdf) = found else {
        return Outcome::Skip("no ivshmem PCI function (tools/vm/run.sh adds one)".into());
    };
    let func = try_or_fail!(vfio::VfioFunction::open(&bdf), format!("vfio-pci {bdf}"));
    let bar = try_or_fail!(func.dmabuf(2, 0, 1 << 20), "VFIO_DEVICE_FEATURE_DMA_BUF");
    let dup = try_or_fail!(bar.try_clone(), "dup");
    let ino = try_or_fail!(File::from(dup).metadata(), "fstat").ino();
    let (ctx, _ub, cq, rq) = try_or_fail!(ready_context(), "context");
    let (r, size) = try_or_fail!(ctx.import_dmabuf(bar.as_raw_fd()), "import the BAR");
    check!(size == 1 << 20, "region size {size}, expected {}", 1 << 20);
    pass!(expect_bind_errno(
        &ctx,
        r,
        3,
        libc::EINVAL,
        &format!("the DMA device of ifindex IFX cannot map region {r}"),
    ));
    let ifindex = try_or_fail!(sim_ifindex(), "ifindex");
    let b = try_or_fail!(ctx.bind_queue(ifindex, 3, 1), "BIND_QUEUE of the udmabuf");
    try_or_fail!(ctx.unbind_queue(b), "UNBIND_QUEUE");
    // The ring mappings hold the context's file too.
    drop((ctx, cq, rq));
    drop(bar);
    check!(
        !try_or_fail!(dmabuf_listed(ino), "bufinfo"),
        "BAR DMA-buf {ino} still listed after the context closed"
    );
    drop(func);
    Outcome::Pass
}

/// The first PCI function that publishes P2PDMA memory: the VM runner's
/// NVMe controller, whose controller memory buffer is p2pmem.
fn p2pmem_provider() -> io::Result<Option<String>> {
    for e in std::fs::read_dir("/sys/bus/pci/devices")? {
        let e = e?;
        let published = std::fs::read_to_string(e.path().join("p2pmem/published"));
        if published.is_ok_and(|s| s.trim() == "1") {
            return Ok(Some(e.file_name().to_string_lossy().into_owned()));
        }
    }
    Ok(None)
}

/// Bytes of P2PDMA memory provider `bdf` has not handed out.
fn p2pmem_available(bdf: &str) -> io::Result<u64> {
    std::fs::read_to_string(format!("/sys/bus/pci/devices/{bdf}/p2pmem/available"))?
        .trim()
        .parse()
        .map_err(io::Error::other)
}

/// Waits up to 5 s for provider `bdf` to have `want` bytes available again;
/// the error says how many it has `after` what.
fn p2pmem_back_to(bdf: &str, want: u64, after: &str) -> Result<(), String> {
    let back = wait_for(5, || Ok(p2pmem_available(bdf)? == want))
        .map_err(|e| format!("p2pmem available: {e}"))?;
    if !back {
        return Err(format!(
            "p2pmem available {} after {after}, {want} before",
            p2pmem_available(bdf).unwrap_or(0)
        ));
    }
    Ok(())
}

/// A shared mapping in this process, unmapped on drop.
struct UserMap {
    ptr: *mut libc::c_void,
    len: usize,
}

impl UserMap {
    /// `len` bytes of P2PDMA memory of provider `bdf`, from its sysfs
    /// `p2pmem/allocate` file; writable if `write`.
    fn p2pmem(bdf: &str, len: usize, write: bool) -> io::Result<Self> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/sys/bus/pci/devices/{bdf}/p2pmem/allocate"))?;
        let prot = if write {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        Self::map(len, prot, libc::MAP_SHARED, f.as_raw_fd())
    }

    /// `len` bytes of anonymous host memory.
    fn anon(len: usize) -> io::Result<Self> {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        Self::map(len, libc::PROT_READ | libc::PROT_WRITE, flags, -1)
    }

    /// `len` bytes of address space that cannot be accessed (`PROT_NONE`).
    fn inaccessible(len: usize) -> io::Result<Self> {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        Self::map(len, libc::PROT_NONE, flags, -1)
    }

    fn map(len: usize, prot: i32, flags: i32, fd: i32) -> io::Result<Self> {
        // SAFETY: a new mapping at an address the kernel picks.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(UserMap { ptr, len })
    }

    fn addr(&self) -> u64 {
        self.ptr as u64
    }

    /// The mapped bytes (the mapping must be readable).
    fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes are mapped for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for UserMap {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// The p2pmem provider, or the skip reason of a test that needs one.
fn need_p2pmem() -> Result<String, Outcome> {
    match p2pmem_provider() {
        Ok(Some(bdf)) => Ok(bdf),
        Ok(None) => Err(Outcome::Skip(
            "no p2pmem provider (tools/vm/run.sh adds an NVMe CMB)".into(),
        )),
        Err(e) => Err(Outcome::Fail(format!("PCI scan: {e}"))),
    }
}

/// IMPORT_P2PMEM's bad inputs, each with its errno and dmesg line; none
/// keeps a pin (the provider's free memory is back once the mappings go).
fn import_p2pmem_errors() -> Outcome {
    let bdf = match need_p2pmem() {
        Ok(b) => b,
        Err(o) => return o,
    };
    let before = try_or_fail!(p2pmem_available(&bdf), "p2pmem available");
    let mem = try_or_fail!(UserMap::p2pmem(&bdf, 64 << 10, true), "p2pmem mmap");
    let ro = try_or_fail!(UserMap::p2pmem(&bdf, 64 << 10, false), "p2pmem mmap");
    let host = try_or_fail!(UserMap::anon(64 << 10), "anonymous mmap");
    // A range no access is allowed to.
    let no_access = try_or_fail!(UserMap::inaccessible(8192), "PROT_NONE mmap");
    let hole = no_access.addr();
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let p = mem.addr();
    let at = |addr: u64, size: u64| NetgpuImportP2pmem {
        addr,
        size,
        ..Default::default()
    };
    let range = "is not a nonzero page-aligned range";
    let cases = [
        (at(p + 1, 4096), libc::EINVAL, range.to_string()),
        (at(p, 0), libc::EINVAL, range.to_string()),
        (at(p, 4097), libc::EINVAL, range.to_string()),
        // The last page of the address space: the range wraps.
        (at(!4095, 8192), libc::EINVAL, range.to_string()),
        (
            NetgpuImportP2pmem {
                flags: 1,
                ..at(p, 4096)
            },
            libc::EINVAL,
            "flags 0x1 not zero".to_string(),
        ),
        (
            NetgpuImportP2pmem {
                reserved: [0, 1],
                ..at(p, 4096)
            },
            libc::EINVAL,
            "reserved fields not zero".to_string(),
        ),
        (
            at(hole, 8192),
            libc::EFAULT,
            format!("cannot pin {hole:#x}+0x2000"),
        ),
        // Pinned for writes by DMA: a read-only mapping does not do.
        (at(ro.addr(), 4096), libc::EFAULT, "cannot pin".to_string()),
        (
            at(host.addr(), 8192),
            libc::EINVAL,
            format!("page at {:#x} is not PCI P2PDMA memory", host.addr()),
        ),
    ];
    pass!(each(cases, |(a, errno, why)| {
        expect_call_errno(&ctx, NETGPU_IOC_IMPORT_P2PMEM, &a, errno, &why)
    }));
    let lines = try_or_fail!(fdinfo_regions(&ctx), "fdinfo");
    check!(lines.is_empty(), "regions after failed imports: {lines:?}");
    drop((mem, ro));
    try_or_fail!(p2pmem_back_to(&bdf, before, "the mappings went"), "pins");
    Outcome::Pass
}

/// A P2PDMA region pins its pages only while they stay mapped: unmapping
/// them lets go of them although the context keeps the region.
fn import_p2pmem_unmap_lets_go() -> Outcome {
    let bdf = match need_p2pmem() {
        Ok(b) => b,
        Err(o) => return o,
    };
    let size = 1u64 << 20;
    let before = try_or_fail!(p2pmem_available(&bdf), "p2pmem available");
    let mem = try_or_fail!(UserMap::p2pmem(&bdf, size as usize, true), "p2pmem mmap");
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let r = try_or_fail!(
        ctx.import_p2pmem(mem.addr() as usize, size as usize),
        "import"
    );
    check!(r == 1, "region id {r}, expected 1");
    let lines = try_or_fail!(fdinfo_regions(&ctx), "fdinfo");
    check!(
        lines == ["1 p2pdma 1048576 bytes free 256"],
        "fdinfo regions {lines:?}"
    );
    let now = try_or_fail!(p2pmem_available(&bdf), "p2pmem available");
    check!(
        now == before - size,
        "p2pmem available {now} while mapped, expected {}",
        before - size
    );
    drop(mem);
    try_or_fail!(
        p2pmem_back_to(&bdf, before, "munmap with the context open"),
        "pins"
    );
    let lines = try_or_fail!(fdinfo_regions(&ctx), "fdinfo");
    check!(lines.len() == 1, "fdinfo regions after munmap {lines:?}");
    Outcome::Pass
}

/// netgpu-sim's default DMA device is not on PCI: it cannot reach P2PDMA
/// memory. BIND_QUEUE fails with ENXIO and says why; the queue stays free.
fn sim_bind_p2pmem_unreachable() -> Outcome {
    let bdf = match need_p2pmem() {
        Ok(b) => b,
        Err(o) => return o,
    };
    let before = try_or_fail!(p2pmem_available(&bdf), "p2pmem available");
    let mem = try_or_fail!(UserMap::p2pmem(&bdf, 1 << 20, true), "p2pmem mmap");
    let (ctx, _ub, cq, rq) = try_or_fail!(ready_context(), "context");
    let r = try_or_fail!(ctx.import_p2pmem(mem.addr() as usize, 1 << 20), "import");
    pass!(expect_bind_errno(
        &ctx,
        r,
        3,
        libc::ENXIO,
        &format!("the DMA device of ifindex IFX cannot map region {r}"),
    ));
    let ifindex = try_or_fail!(sim_ifindex(), "ifindex");
    let b = try_or_fail!(ctx.bind_queue(ifindex, 3, 1), "BIND_QUEUE of the udmabuf");
    try_or_fail!(ctx.unbind_queue(b), "UNBIND_QUEUE");
    drop((ctx, cq, rq, mem));
    try_or_fail!(p2pmem_back_to(&bdf, before, "close"), "pins");
    Outcome::Pass
}

/// The copy fallback into a P2PDMA region: a loopback stream (no NIC, so
/// every byte is copied) lands in the NVMe CMB through the kernel's mapping
/// of it, every byte checked through the user mapping of the same pages.
fn p2pmem_copy_fallback() -> Outcome {
    let bdf = match need_p2pmem() {
        Ok(b) => b,
        Err(o) => return o,
    };
    let size = 1usize << 20;
    let mem = try_or_fail!(UserMap::p2pmem(&bdf, size, true), "p2pmem mmap");
    let ctx = try_or_fail!(Netgpu::open(), "open");
    try_or_fail!(ctx.import_p2pmem(mem.addr() as usize, size), "import");
    let (mut cq, mut rq) = try_or_fail!(ctx.setup_rings(256, 256), "rings");
    let view = mem.as_slice();
    // More than the region: buffers must come back through the refill ring.
    let bytes = 3 * size / 2;
    let (got, _, eof) = try_or_fail!(
        loopback_stream(&ctx, view, &mut cq, &mut rq, bytes, true),
        "stream"
    );
    check!(got == bytes as u64, "received {got} of {bytes}");
    check!(eof, "no EOF completion after the peer closed");
    let st = try_or_fail!(ctx.stats(0), "stats");
    check!(
        st.copy_bytes == bytes as u64 && st.zc_bytes == 0,
        "stats {st:?}"
    );
    Outcome::Pass
}

/// `IFLA_INFO_DATA` attribute of netgpu-sim naming the pair's PCI function.
const SIM_INFO_DMA_DEV: u16 = 2;

/// A netgpu-sim pair on a PCI function not bound to netgpu_sim, on one that
/// does not exist, or named by a string longer than a PCI device name: each
/// refused with its exact errno and extended ack, and no link left behind.
fn sim_newlink_dma_dev_errnos() -> Outcome {
    let found = try_or_fail!(vfio::find_function(IVSHMEM.0, IVSHMEM.1), "PCI scan");
    let Some(bdf) = found else {
        return Outcome::Skip("no ivshmem PCI function (tools/vm/run.sh adds one)".into());
    };
    let not_ours = "dma-dev is not a PCI function bound to netgpu_sim";
    let cases = [
        (bdf.as_str(), libc::EBUSY, not_ours),
        ("0000:ff:1f.7", libc::ENODEV, not_ours),
        (
            "0000:00:00.0-longer-than-31-bytes",
            libc::EINVAL,
            "Attribute failed policy validation",
        ),
    ];
    each(cases, |(dev, errno, why)| {
        let data = [rtnl::attr_str(SIM_INFO_DMA_DEV, dev)];
        let r = try_or_fail!(rtnl::newlink("ngx", "netgpu-sim", &data), "RTM_NEWLINK");
        match r {
            Err((e, msg)) if e == errno && msg.contains(why) => (),
            r => {
                return Outcome::Fail(format!(
                    "dma-dev {dev}: {r:?}, expected {} with \"{why}\"",
                    errname(errno)
                ))
            }
        }
        check!(
            !std::path::Path::new("/sys/class/net/ngx").exists(),
            "dma-dev {dev}: link ngx left behind"
        );
        Outcome::Pass
    })
}

/// The provider of P2PDMA memory goes away mid-stream (its driver unbinds,
/// as on hot unplug). netgpu_p2p.sh sets up ngs1 on a PCI function behind
/// the same switch as the NVMe controller, RSS sending every flow to queue
/// 3. After 1 MiB is verified in the CMB, the NVMe driver unbinds: the
/// P2PDMA teardown unmaps the memory from user space, netgpu's notifier
/// revokes the binding and lets go of the pages, so the unbind completes.
/// The rest of the stream lands in host memory and the region cannot take
/// it: RECV fails with ENXIO. The driver binds again afterwards.
fn sim_p2pmem_provider_unbound_mid_stream() -> Outcome {
    let bdf = match need_p2pmem() {
        Ok(b) => b,
        Err(o) => return o,
    };
    let size = 4usize << 20;
    let mem = try_or_fail!(UserMap::p2pmem(&bdf, size, true), "p2pmem mmap");
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let r = try_or_fail!(ctx.import_p2pmem(mem.addr() as usize, size), "import");
    let (mut cq, mut rq) = try_or_fail!(ctx.setup_rings(1024, 1024), "SETUP_RINGS");
    let ifindex = try_or_fail!(sim_ifindex(), "ifindex");
    try_or_fail!(ctx.bind_queue(ifindex, 3, r), "BIND_QUEUE of the CMB");
    let lst = try_or_fail!(std::net::TcpListener::bind("[2001:db8::2]:5391"), "listen");
    let (_sender, sock, id) = try_or_fail!(stream_from_ngsa(&ctx, &lst, 5391), "stream");
    try_or_fail!(
        recv_zero_copy(&ctx, (&mut cq, &mut rq), (id, r), mem.as_slice(), 1 << 20),
        "CMB"
    );
    let mut kmsg = try_or_fail!(Kmsg::open(), "/dev/kmsg");
    let (tx, rx) = std::sync::mpsc::channel();
    let dev = bdf.clone();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::write("/sys/bus/pci/drivers/nvme/unbind", &dev));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(30)) {
        Ok(Ok(())) => (),
        Ok(Err(e)) => return Outcome::Fail(format!("nvme unbind of {bdf}: {e}")),
        Err(_) => return Outcome::Fail(format!("nvme unbind of {bdf} still waiting after 30 s")),
    }
    let revoked = format!("the user mapping changed under region {r}; unbinding queue 3");
    try_or_fail!(
        expect_revoked(&mut kmsg, &ctx, (&mut cq, &mut rq), id, &revoked),
        "CMB revoked"
    );
    drop((sock, ctx, cq, rq, mem));
    try_or_fail!(
        std::fs::write("/sys/bus/pci/drivers/nvme/bind", &bdf),
        "nvme bind again"
    );
    let back = try_or_fail!(
        wait_for(10, || Ok(
            p2pmem_provider()?.as_deref() == Some(bdf.as_str())
        )),
        "PCI scan"
    );
    check!(
        back,
        "{bdf} publishes no p2pmem 10 s after the NVMe driver bound again"
    );
    Outcome::Pass
}

/// Maps `len` bytes of `fd` from `offset` read-only; the mapping is leaked
/// for the test's life (a revoked BAR mapping must not be touched, only
/// left alone).
fn map_ro(fd: i32, len: usize, offset: u64) -> Result<&'static [u8], String> {
    // SAFETY: a new shared read-only mapping at an address the kernel picks.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!("mmap: {}", io::Error::last_os_error()));
    }
    // SAFETY: the mapping is `len` bytes and never unmapped.
    Ok(unsafe { std::slice::from_raw_parts(p.cast(), len) })
}

/// A child process, killed and reaped on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to `secs` for a kernel log line containing `what`.
fn wait_kmsg(kmsg: &mut Kmsg, secs: u64, what: &str) -> io::Result<bool> {
    let mut seen = Vec::new();
    wait_for(secs, || {
        seen.extend(kmsg.new_messages());
        Ok(seen.iter().any(|l| l.contains(what)))
    })
}

/// Starts `netgpu_send` of 256 MiB from ngsa to `[2001:db8::2]:port`,
/// accepts it on `lst` and attaches it to `ctx` (reads time out after
/// 10 s); returns the sender, the socket and its id.
fn stream_from_ngsa(
    ctx: &Netgpu,
    lst: &std::net::TcpListener,
    port: u16,
) -> Result<(Child, std::net::TcpStream, u32), String> {
    let sender = std::process::Command::new("ip")
        .args(["netns", "exec", "ngsa", "netgpu_send", "2001:db8::2"])
        .arg(port.to_string())
        .arg((256u64 << 20).to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("netgpu_send: {e}"))?;
    let sender = Child(sender);
    let (sock, _) = lst.accept().map_err(|e| format!("accept: {e}"))?;
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
    let id = ctx
        .attach_socket(sock.as_raw_fd())
        .map_err(|e| format!("attach: {e}"))?;
    Ok((sender, sock, id))
}

/// Receives the first `upto` bytes of socket `id`'s stream, all zero-copy
/// into region `r`, whose bytes `view` shows; checks every byte and returns
/// the buffers.
fn recv_zero_copy(
    ctx: &Netgpu,
    (cq, rq): (&mut CqMap, &mut RqMap),
    (id, r): (u32, u32),
    view: &[u8],
    upto: u64,
) -> Result<(), String> {
    let mut pos = 0u64;
    while pos < upto {
        ctx.recv(id, 256 << 10, 0)
            .map_err(|e| format!("RECV at {pos}: {e}"))?;
        while let Some(e) = cq.pop() {
            if e.flags != 0 || e.region_id != r || e.socket_id != id {
                return Err(format!(
                    "completion {e:?}: expected zero-copy in region {r}"
                ));
            }
            let got = view
                .get(e.offset as usize..(e.offset + u64::from(e.len)) as usize)
                .ok_or_else(|| format!("completion outside the region: {e:?}"))?;
            if let Some(i) = (0..got.len()).find(|&i| got[i] != netgpu_pattern(pos + i as u64)) {
                return Err(format!("byte at stream offset {} differs", pos + i as u64));
            }
            pos += u64::from(e.len);
            rq.push(&NetgpuRqe {
                offset: e.offset,
                region_id: r,
                __pad: 0,
            });
        }
    }
    Ok(())
}

/// Receives socket `id` until RECV fails, returning every buffer unread;
/// the errno it failed with.
fn recv_until_error(ctx: &Netgpu, cq: &mut CqMap, rq: &mut RqMap, id: u32) -> i32 {
    loop {
        match ctx.recv(id, 256 << 10, 0) {
            Ok(_) => {
                while let Some(e) = cq.pop() {
                    rq.push(&NetgpuRqe {
                        offset: e.offset,
                        region_id: e.region_id,
                        __pad: 0,
                    });
                }
            }
            Err(e) => break e.raw_os_error().unwrap_or(0),
        }
    }
}

/// After a revocation of region memory bound to queue 3: dmesg says
/// `revoked` within 10 s, and receiving socket `id` ends with ENXIO, the
/// copy fallback having nowhere to write, with its dmesg line.
fn expect_revoked(
    kmsg: &mut Kmsg,
    ctx: &Netgpu,
    (cq, rq): (&mut CqMap, &mut RqMap),
    id: u32,
    revoked: &str,
) -> Result<(), String> {
    if !wait_kmsg(kmsg, 10, revoked).map_err(|e| format!("kmsg: {e}"))? {
        return Err(format!("no dmesg line '{revoked}' within 10 s"));
    }
    // The memory is gone from the CPU too: completions are no longer read.
    let err = recv_until_error(ctx, cq, rq, id);
    if err != libc::ENXIO {
        return Err(format!(
            "RECV after the revocation: {}, expected {}",
            errname(err),
            errname(libc::ENXIO)
        ));
    }
    let why = format!("socket {id}: region not mappable by the CPU for the copy fallback");
    if !wait_kmsg(kmsg, 1, &why).map_err(|e| format!("kmsg: {e}"))? {
        return Err(format!("no dmesg line '{why}'"));
    }
    Ok(())
}

/// Revocation mid-stream. netgpu_p2p.sh sets up ngs1 on a PCI function
/// behind the same PCIe switch as the ivshmem function, with RSS sending
/// every flow to queue 3. The receive goes into the ivshmem BAR, exported
/// by vfio-pci and mapped peer to peer; after 1 MiB verified through the
/// BAR mapping, memory decoding is turned off and vfio-pci revokes the
/// DMA-buf. netgpu logs it and unbinds the queue; the rest of the stream
/// arrives in host memory, which the region cannot take (no CPU mapping of
/// a BAR DMA-buf), so the receive fails with ENXIO and says why. Once
/// closed, the DMA-buf is released.
fn sim_p2p_revoked_mid_stream() -> Outcome {
    use std::os::unix::fs::MetadataExt;
    let found = try_or_fail!(vfio::find_function(IVSHMEM.0, IVSHMEM.1), "PCI scan");
    let Some(bdf) = found else {
        return Outcome::Skip("no ivshmem PCI function (tools/vm/run.sh adds one)".into());
    };
    let size = 4usize << 20;
    let func = try_or_fail!(vfio::VfioFunction::open(&bdf), format!("vfio-pci {bdf}"));
    let bar = try_or_fail!(
        func.dmabuf(2, 0, size as u64),
        "VFIO_DEVICE_FEATURE_DMA_BUF"
    );
    let dup = try_or_fail!(bar.try_clone(), "dup");
    let ino = try_or_fail!(File::from(dup).metadata(), "fstat").ino();
    let map = try_or_fail!(
        map_ro(func.fd(), size, vfio::VfioFunction::region_offset(2)),
        "BAR mmap"
    );
    let ctx = try_or_fail!(Netgpu::open(), "open");
    let (r, _) = try_or_fail!(ctx.import_dmabuf(bar.as_raw_fd()), "import the BAR");
    let (mut cq, mut rq) = try_or_fail!(ctx.setup_rings(1024, 1024), "SETUP_RINGS");
    let ifindex = try_or_fail!(sim_ifindex(), "ifindex");
    let b = try_or_fail!(ctx.bind_queue(ifindex, 3, r), "BIND_QUEUE of the BAR");
    let lst = try_or_fail!(std::net::TcpListener::bind("[2001:db8::2]:5390"), "listen");
    let (_sender, sock, id) = try_or_fail!(stream_from_ngsa(&ctx, &lst, 5390), "stream");
    let pos = 1u64 << 20;
    try_or_fail!(
        recv_zero_copy(&ctx, (&mut cq, &mut rq), (id, r), map, pos),
        "BAR"
    );
    let st = try_or_fail!(ctx.stats(b), "stats");
    check!(
        st.zc_bytes >= pos,
        "binding zc bytes {} < {pos}",
        st.zc_bytes
    );
    let mut kmsg = try_or_fail!(Kmsg::open(), "/dev/kmsg");
    try_or_fail!(func.set_memory_enabled(false), "memory decoding off");
    let revoked = format!("the DMA-buf exporter revoked region {r}; unbinding queue 3");
    try_or_fail!(
        expect_revoked(&mut kmsg, &ctx, (&mut cq, &mut rq), id, &revoked),
        "BAR revoked"
    );
    // The ring mappings hold the context's file too.
    drop((sock, ctx, cq, rq));
    drop(bar);
    drop(func);
    let gone = try_or_fail!(wait_kicking(10, || Ok(!dmabuf_listed(ino)?)), "bufinfo");
    check!(
        gone,
        "BAR DMA-buf {ino} still listed 10 s after everything closed"
    );
    Outcome::Pass
}

/// devmem TCP (netdev netlink `bind-rx`, through the tree's ynl) on queue 3
/// with a vfio-pci BAR DMA-buf: its plain `dma_buf_attach()` is neither
/// peer-to-peer capable nor revocable, so vfio-pci refuses it with
/// EOPNOTSUPP. netgpu's attachment of the same kind of DMA-buf is accepted
/// (netgpu_p2p.sh receives into it).
fn sim_devmem_refuses_bar() -> Outcome {
    let found = try_or_fail!(vfio::find_function(IVSHMEM.0, IVSHMEM.1), "PCI scan");
    let Some(bdf) = found else {
        return Outcome::Skip("no ivshmem PCI function (tools/vm/run.sh adds one)".into());
    };
    let ksrc = try_or_fail!(std::env::var("NETGPU_KSRC"), "NETGPU_KSRC");
    let func = try_or_fail!(vfio::VfioFunction::open(&bdf), format!("vfio-pci {bdf}"));
    let bar = try_or_fail!(func.dmabuf(2, 0, 1 << 20), "VFIO_DEVICE_FEATURE_DMA_BUF");
    // ynl inherits the DMA-buf.
    // SAFETY: clears close-on-exec of an fd we own.
    check!(
        unsafe { libc::fcntl(bar.as_raw_fd(), libc::F_SETFD, 0) } == 0,
        "F_SETFD: {}",
        io::Error::last_os_error()
    );
    let ifindex = try_or_fail!(sim_ifindex(), "ifindex");
    let json = format!(
        r#"{{"ifindex": {ifindex}, "fd": {}, "queues": [{{"id": 3, "type": "rx"}}]}}"#,
        bar.as_raw_fd()
    );
    let out = try_or_fail!(
        std::process::Command::new("python3")
            .arg(format!("{ksrc}/tools/net/ynl/pyynl/cli.py"))
            .arg("--no-schema")
            .arg("--spec")
            .arg(format!("{ksrc}/Documentation/netlink/specs/netdev.yaml"))
            .args(["--do", "bind-rx", "--json", &json])
            .output(),
        "ynl"
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    check!(
        !out.status.success(),
        "devmem bind-rx of a BAR succeeded: {text}"
    );
    check!(
        // ynl prints the extack message and strerror(EOPNOTSUPP).
        text.contains("Failed to bind dmabuf to device")
            && text.contains("Operation not supported"),
        "devmem bind-rx did not fail at the attachment with EOPNOTSUPP: {text}"
    );
    Outcome::Pass
}

/// Runs `f` on a new thread, after `setup` ran there.
fn on_thread(setup: fn() -> io::Result<()>, f: fn() -> Outcome) -> Outcome {
    std::thread::spawn(move || match setup() {
        Ok(()) => f(),
        Err(e) => Outcome::Fail(format!("thread setup: {e}")),
    })
    .join()
    .unwrap_or_else(|_| Outcome::Fail("thread panicked".into()))
}

/// Drops CAP_NET_ADMIN from this thread's effective set.
fn drop_net_admin() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut h = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget with a version-3 header and two data words.
    if unsafe { libc::syscall(libc::SYS_capget, &raw mut h, d.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    d[0].effective &= !(1 << 12);
    // SAFETY: capset of this thread with the words read above.
    if unsafe { libc::syscall(libc::SYS_capset, &raw mut h, d.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn sim_bind_unprivileged() -> Outcome {
    on_thread(drop_net_admin, || {
        let (ctx, _ub, _cq, _rq) = try_or_fail!(ready_context(), "context");
        expect_bind_errno(
            &ctx,
            1,
            3,
            libc::EPERM,
            "CAP_NET_ADMIN needed in the user namespace of ifindex IFX",
        )
    })
}

fn sim_bind_wrong_netns() -> Outcome {
    let ifindex = try_or_fail!(sim_ifindex(), "ifindex");
    check!(ifindex > 1, "ngs1 has ifindex {ifindex}");
    on_thread(
        // SAFETY: unshare(2) of this thread's network namespace.
        || match unsafe { libc::unshare(libc::CLONE_NEWNET) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        },
        || {
            let (ctx, _ub, _cq, _rq) = try_or_fail!(ready_context(), "context");
            let ifindex = try_or_fail!(sim_ifindex_outside(), "ifindex");
            let arg = NetgpuBindQueue {
                ifindex,
                queue: 3,
                region_id: 1,
                ..Default::default()
            };
            expect_call_errno(
                &ctx,
                NETGPU_IOC_BIND_QUEUE,
                &arg,
                libc::ENODEV,
                &format!("no device with ifindex {ifindex} in the caller's network namespace"),
            )
        },
    )
}

/// The sim's ifindex, remembered before the thread left its namespace.
fn sim_ifindex_outside() -> io::Result<u32> {
    SIM_IFINDEX
        .get()
        .copied()
        .ok_or_else(|| io::Error::other("ifindex not recorded"))
}

static SIM_IFINDEX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// Runs the NET_RX softirq on every CPU, as `kick_cpus` of sim_lib.sh does.
/// That frees the skbs other CPUs deferred to it: skbs a receive took from
/// a socket on another CPU than the one that built them wait in that CPU's
/// list (`skb_attempt_defer_free()`) for its next softirq, holding their
/// page pool buffers, and with them a binding and its DMA-buf; on an idle
/// VM whose queue gets no more traffic, for good. Each CPU's thread loops a
/// few datagrams over `lo` of a network namespace of its own.
fn kick_cpus() {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<_> = (0..n)
        .map(|cpu| std::thread::spawn(move || kick_cpu(cpu)))
        .collect();
    for t in threads {
        // A CPU left unkicked only makes the caller wait longer.
        let _ = t.join();
    }
}

fn kick_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed CPU set with one bit set, for this thread only; and
    // a new network namespace for this thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0
            || libc::unshare(libc::CLONE_NEWNET) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
    // SAFETY: an ifreq naming "lo", read and written by the two ioctls.
    unsafe {
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, c) in ifr.ifr_name.iter_mut().zip(b"lo") {
            *d = *c as libc::c_char;
        }
        if libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) != 0 {
            return Err(io::Error::last_os_error());
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    for _ in 0..3 {
        s.send_to(b"x", "127.0.0.1:9")?;
    }
    Ok(())
}

/// [`wait_for`], kicking every CPU each second (see [`kick_cpus`]): for
/// what waits on page pools to give buffers back.
fn wait_kicking(secs: u64, mut cond: impl FnMut() -> io::Result<bool>) -> io::Result<bool> {
    for _ in 0..secs {
        kick_cpus();
        if wait_for(1, &mut cond)? {
            return Ok(true);
        }
    }
    cond()
}

/// Polls `cond` every 100 ms for up to `secs` seconds; whether it held.
fn wait_for(secs: u64, mut cond: impl FnMut() -> io::Result<bool>) -> io::Result<bool> {
    for _ in 0..secs * 10 {
        if cond()? {
            return Ok(true);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    cond()
}

/// Network namespace teardown under a binding. Run outside the namespace
/// (`ngsb`) of the sim device: a thread enters it only to bind queue 3,
/// so that nothing but the bind mount keeps it, then `ip netns del` drops
/// that. The namespace's cleanup deletes the device: the provider's
/// uninstall marks the binding unregistered, the context still unbinds and
/// closes cleanly, and the DMA-buf's last reference goes once the page
/// pool of the queue has released its buffers.
fn sim_netns_deleted_while_bound() -> Outcome {
    use std::ffi::CString;
    use std::os::unix::fs::MetadataExt;
    let ifname = SIM_IF.get().map_or("ngs1", String::as_str).to_string();
    let bound = std::thread::spawn(move || -> io::Result<(Netgpu, u64, u32)> {
        let ns = File::open("/run/netns/ngsb")?;
        // SAFETY: setns(2) of this thread into a namespace file.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let name = CString::new(ifname).map_err(io::Error::other)?;
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let ctx = Netgpu::open()?;
        let ub = udmabuf()?;
        let ino = File::from(ub.dmabuf.try_clone()?).metadata()?.ino();
        let (region, _) = ctx.import_dmabuf(ub.dmabuf.as_raw_fd())?;
        let binding = ctx.bind_queue(ifindex, 3, region)?;
        Ok((ctx, ino, binding))
    })
    .join();
    let Ok(bound) = bound else {
        return Outcome::Fail("the binding thread panicked".into());
    };
    let (ctx, ino, binding) = try_or_fail!(bound, "bind in ngsb");
    let st = try_or_fail!(
        std::process::Command::new("ip")
            .args(["netns", "del", "ngsb"])
            .status(),
        "ip netns del"
    );
    check!(st.success(), "ip netns del ngsb: {st}");
    let gone = wait_for(30, || {
        Ok(fdinfo_bindings(&ctx)?
            .iter()
            .any(|l| l.ends_with(" unregistered")))
    });
    check!(
        try_or_fail!(gone, "fdinfo"),
        "binding not unregistered 30 s after the namespace went: {:?}",
        fdinfo_bindings(&ctx)
    );
    try_or_fail!(
        ctx.unbind_queue(binding),
        "UNBIND_QUEUE after the device went"
    );
    drop(ctx);
    let freed = wait_kicking(30, || dmabuf_listed(ino).map(|l| !l));
    check!(
        try_or_fail!(freed, "bufinfo"),
        "DMA-buf {ino} still listed 30 s after the context closed"
    );
    Outcome::Pass
}

fn sim_bind_hds_off() -> Outcome {
    let (ctx, _ub, _cq, _rq) = try_or_fail!(ready_context(), "context");
    expect_bind_errno(
        &ctx,
        1,
        3,
        libc::EINVAL,
        "tcp-data-split is off on ifindex IFX",
    )
}

fn sim_bind_hds_thresh() -> Outcome {
    let (ctx, _ub, _cq, _rq) = try_or_fail!(ready_context(), "context");
    expect_bind_errno(
        &ctx,
        1,
        3,
        libc::EINVAL,
        "hds-thresh is 64 on ifindex IFX, not 0",
    )
}

/// `BPF_PROG_LOAD`'s part of `union bpf_attr`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct BpfProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `BPF_LINK_CREATE`'s part of `union bpf_attr`, for a device target.
#[repr(C)]
struct BpfLinkCreate {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;

/// bpf(2) `cmd` with `attr`; the new fd.
fn bpf<T>(cmd: libc::c_long, attr: &T) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is the part of `union bpf_attr` that `cmd` reads,
    // valid for its size; the kernel zero-extends a shorter attr.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_ref(attr),
            std::mem::size_of::<T>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: bpf(2) returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attaches an XDP program that passes every packet to `ifindex` in
/// generic (skb) mode through a BPF link: detached when the fd closes.
/// The program declares multi-buffer support, which the kernel demands on
/// a device with header/data split on.
fn xdp_pass_link(ifindex: u32) -> io::Result<OwnedFd> {
    // r0 = XDP_PASS; exit
    let insns: [u64; 2] = [0x0000_0002_0000_00b7, 0x95];
    let license = c"GPL";
    let prog = bpf(
        BPF_PROG_LOAD,
        &BpfProgLoad {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_flags: BPF_F_XDP_HAS_FRAGS,
            expected_attach_type: BPF_XDP,
            ..Default::default()
        },
    )?;
    bpf(
        BPF_LINK_CREATE,
        &BpfLinkCreate {
            prog_fd: prog.as_raw_fd() as u32,
            target_ifindex: ifindex,
            attach_type: BPF_XDP,
            flags: XDP_FLAGS_SKB_MODE,
        },
    )
}

/// An AF_XDP socket bound in copy mode to one queue, and its UMEM.
struct Xsk {
    _sock: OwnedFd,
    umem: *mut libc::c_void,
}

const XSK_UMEM_LEN: usize = 16 * 4096;

impl Xsk {
    fn bind(ifindex: u32, queue: u32) -> io::Result<Self> {
        // SAFETY: a new private anonymous mapping.
        let umem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                XSK_UMEM_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if umem == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: socket(2) has no memory arguments.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            // SAFETY: the mapping made above, not used since.
            unsafe { libc::munmap(umem, XSK_UMEM_LEN) };
            return Err(e);
        }
        // SAFETY: socket(2) returned a new fd that nobody else owns.
        let x = Xsk {
            _sock: unsafe { OwnedFd::from_raw_fd(fd) },
            umem,
        };
        let reg = libc::xdp_umem_reg {
            addr: umem as u64,
            len: XSK_UMEM_LEN as u64,
            chunk_size: 4096,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        sockopt(fd, libc::XDP_UMEM_REG, &reg)?;
        for opt in [
            libc::XDP_UMEM_FILL_RING,
            libc::XDP_UMEM_COMPLETION_RING,
            libc::XDP_RX_RING,
        ] {
            sockopt(fd, opt, &16u32)?;
        }
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: libc::XDP_COPY,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: a valid sockaddr_xdp of the size passed.
        let r = unsafe {
            libc::bind(
                fd,
                std::ptr::from_ref(&sa).cast(),
                std::mem::size_of_val(&sa) as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(x)
    }
}

impl Drop for Xsk {
    fn drop(&mut self) {
        // The socket closes after this; unmapping first is fine, the
        // kernel pinned the UMEM pages at XDP_UMEM_REG.
        // SAFETY: the mapping made in `bind`.
        unsafe { libc::munmap(self.umem, XSK_UMEM_LEN) };
    }
}

/// setsockopt(2) at `SOL_XDP` with a plain value.
fn sockopt<T>(fd: i32, opt: i32, val: &T) -> io::Result<()> {
    // SAFETY: `val` is valid for its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            opt,
            std::ptr::from_ref(val).cast(),
            std::mem::size_of::<T>() as u32,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// XDP and a binding exclude each other: the kernel refuses a program on
/// a device with a memory provider, netgpu refuses to bind a device with a
/// program (generic mode here), and binds again once it is detached.
fn sim_bind_xdp_attached() -> Outcome {
    let (ctx, _ub, _cq, _rq) = try_or_fail!(ready_context(), "context");
    let ifindex = try_or_fail!(sim_ifindex(), "ifindex");
    let b = try_or_fail!(ctx.bind_queue(ifindex, 3, 1), "BIND_QUEUE");
    match xdp_pass_link(ifindex) {
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => (),
        Err(e) => return Outcome::Fail(format!("XDP attach while bound: {e}, not EBUSY")),
        Ok(_) => return Outcome::Fail("XDP attached beside a bound queue".into()),
    }
    try_or_fail!(ctx.unbind_queue(b), "UNBIND_QUEUE");
    let link = try_or_fail!(xdp_pass_link(ifindex), "attach an XDP program");
    pass!(expect_bind_errno(
        &ctx,
        1,
        3,
        libc::EEXIST,
        "an XDP program is attached to ifindex IFX",
    ));
    drop(link);
    let b = try_or_fail!(
        ctx.bind_queue(ifindex, 3, 1),
        "BIND_QUEUE after XDP detached"
    );
    try_or_fail!(ctx.unbind_queue(b), "UNBIND_QUEUE");
    Outcome::Pass
}

/// Binding refused on a queue an AF_XDP socket uses (copy mode registers
/// its pool at the queue too); the device's other queues stay bindable,
/// and the queue is free again once the socket's pool is gone.
fn sim_bind_af_xdp() -> Outcome {
    let (ctx, _ub, _cq, _rq) = try_or_fail!(ready_context(), "context");
    let ifindex = try_or_fail!(sim_ifindex(), "ifindex");
    let xsk = try_or_fail!(Xsk::bind(ifindex, 3), "AF_XDP socket on queue 3");
    pass!(expect_bind_errno(
        &ctx,
        1,
        3,
        libc::EBUSY,
        "queue 3 of ifindex IFX is used by AF_XDP",
    ));
    let b = try_or_fail!(ctx.bind_queue(ifindex, 2, 1), "BIND_QUEUE of queue 2");
    try_or_fail!(ctx.unbind_queue(b), "UNBIND_QUEUE of queue 2");
    drop(xsk);
    // The socket's pool leaves the queue from a work item after close.
    let mut bound = None;
    let freed = wait_for(10, || match ctx.bind_queue(ifindex, 3, 1) {
        Ok(b) => {
            bound = Some(b);
            Ok(true)
        }
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(false),
        Err(e) => Err(e),
    });
    check!(
        try_or_fail!(freed, "BIND_QUEUE after the socket closed"),
        "queue 3 still busy 10 s after the AF_XDP socket closed"
    );
    if let Some(b) = bound {
        try_or_fail!(ctx.unbind_queue(b), "UNBIND_QUEUE");
    }
    Outcome::Pass
}

fn main() -> std::process::ExitCode {
    let tests: &[Test] = &[
        ("device_node_is_char_0600", device_node),
        ("contexts_are_distinct", contexts_are_distinct),
        ("get_info", get_info),
        (
            "get_info_larger_arg_zero_tail",
            get_info_larger_arg_zero_tail,
        ),
        ("unknown_nr_enotty", unknown_nr),
        ("foreign_type_enotty", foreign_type),
        ("wrong_direction_enotty", wrong_direction),
        ("short_arg_einval", short_arg),
        ("oversized_nonzero_tail_e2big", oversized_nonzero_tail),
        ("oversized_beyond_limit_e2big", oversized_beyond_limit),
        ("nonzero_flags_einval", nonzero_flags),
        ("nonzero_pad_einval", nonzero_pad),
        ("nonzero_reserved_einval", nonzero_reserved),
        ("bad_pointer_efault", bad_pointer),
        ("read_only_argument_efault", read_only_argument),
        ("many_contexts", many_contexts),
        ("read_einval", not_readable_or_writable_as_file),
        ("import_udmabuf", import_udmabuf),
        ("import_bad_fd_ebadf", import_bad_fd),
        ("import_not_dmabuf_einval", import_not_dmabuf),
        (
            "import_nonzero_flags_reserved_einval",
            import_nonzero_flags_reserved,
        ),
        ("import_region_limit_enospc", import_region_limit),
        (
            "import_holds_dmabuf_until_close",
            import_holds_dmabuf_until_close,
        ),
        ("setup_rings", setup_rings),
        ("setup_rings_twice_ebusy", setup_rings_twice),
        ("setup_rings_bad_entries_einval", setup_rings_bad_entries),
        (
            "setup_rings_nonzero_flags_reserved_einval",
            setup_rings_nonzero_flags_reserved,
        ),
        ("mmap_before_setup_enxio", mmap_before_setup),
        ("mmap_bad_requests", mmap_bad_requests),
        ("bind_unknown_region_enoent", bind_unknown_region),
        ("bind_unknown_ifindex_enodev", bind_unknown_ifindex),
        ("bind_no_queue_api_eopnotsupp", bind_no_queue_api),
        (
            "bind_nonzero_flags_reserved_einval",
            bind_nonzero_flags_reserved,
        ),
        ("unbind_detach_stats_unknown_enoent", unbind_detach_unknown),
        ("attach_bad_sockets", attach_bad_sockets),
        ("attach_twice_ebusy_detach", attach_twice_detach),
        ("recv_errors", recv_errors),
        ("copy_fallback_loopback", copy_fallback_loopback),
        ("garbage_refill_entries_counted", garbage_refill_entries),
        ("double_return_rejected", double_return_rejected),
        ("poll_readiness", poll_readiness),
        ("import_p2pmem_errors", import_p2pmem_errors),
        ("import_p2pmem_unmap_lets_go", import_p2pmem_unmap_lets_go),
        ("p2pmem_copy_fallback", p2pmem_copy_fallback),
    ];
    if !std::path::Path::new(DEVICE).exists() {
        println!("TAP version 13\n1..0 # SKIP {DEVICE} missing: netgpu.ko not loaded");
        return std::process::ExitCode::from(4);
    }
    // `--sim IFNAME [TEST]`: the cases that need a netgpu-sim device, run by
    // netgpu_rx.sh in the device's namespace; TEST picks one of them.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, ifname, rest @ ..] = &args[..] {
        if flag == "--sim" {
            let _ = SIM_IF.set(ifname.clone());
            if let Ok(i) = sim_ifindex() {
                let _ = SIM_IFINDEX.set(i);
            }
            let sim: &[Test] = &[
                ("bind_unbind", sim_bind_unbind),
                ("bind_busy_ebusy", sim_bind_busy),
                ("bind_out_of_range_erange", sim_bind_out_of_range),
                ("bind_unprivileged_eperm", sim_bind_unprivileged),
                ("bind_wrong_netns_enodev", sim_bind_wrong_netns),
                ("bind_xdp_attached_eexist", sim_bind_xdp_attached),
                ("bind_af_xdp_ebusy", sim_bind_af_xdp),
                (
                    "bind_unreachable_region_einval",
                    sim_bind_unreachable_region,
                ),
                ("bind_p2pmem_unreachable_enxio", sim_bind_p2pmem_unreachable),
            ];
            let extra: &[Test] = &[
                ("bind_hds_off_einval", sim_bind_hds_off),
                ("bind_hds_thresh_einval", sim_bind_hds_thresh),
                ("netns_deleted_while_bound", sim_netns_deleted_while_bound),
                ("p2p_revoked_mid_stream", sim_p2p_revoked_mid_stream),
                ("devmem_refuses_bar", sim_devmem_refuses_bar),
                ("newlink_dma_dev_errnos", sim_newlink_dma_dev_errnos),
                (
                    "p2pmem_provider_unbound_mid_stream",
                    sim_p2pmem_provider_unbound_mid_stream,
                ),
            ];
            return match rest {
                [] => ktap::run(sim),
                [one] => match extra.iter().chain(sim).find(|t| t.0 == one.as_str()) {
                    Some(t) => ktap::run(std::slice::from_ref(t)),
                    None => {
                        eprintln!("no test {one}");
                        std::process::ExitCode::FAILURE
                    }
                },
                _ => std::process::ExitCode::FAILURE,
            };
        }
    }
    // Socket tests talk over 192.0.2.1 on the loopback device of a network
    // namespace of their own.
    if let Err(e) = private_netns() {
        println!("TAP version 13\n1..0 # SKIP no private network namespace: {e}");
        return std::process::ExitCode::from(4);
    }
    ktap::run(tests)
}
