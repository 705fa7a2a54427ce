// SPDX-License-Identifier: GPL-2.0

//! kselftest: the `/dev/netgpu` context and ioctl ABI.
//!
//! Every bad input gets its exact errno checked, a one-line reason in dmesg,
//! and leaves the context working. Needs root and netgpu.ko loaded.

mod ktap;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
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
    let id = try_or_fail!(context_id(&ctx), "fdinfo");
    let mut kmsg = try_or_fail!(Kmsg::open(), "/dev/kmsg");
    let e = call(&ctx, cmd, arg);
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
    each([0x01, 0x1f, 0xff], |nr| {
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
    ];
    if !std::path::Path::new(DEVICE).exists() {
        println!("TAP version 13\n1..0 # SKIP {DEVICE} missing: netgpu.ko not loaded");
        return std::process::ExitCode::from(4);
    }
    ktap::run(tests)
}
