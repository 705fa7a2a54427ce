// SPDX-License-Identifier: GPL-2.0

//! The netgpu ABI for user space: the kernel module's own mirror of
//! `uapi/linux/netgpu.h` (`uapi/netgpu.rs`, compiled here unchanged) plus
//! thin, safe wrappers around the ioctls.

#[path = "../../../uapi/netgpu.rs"]
mod abi;
pub use abi::*;

pub mod vfio;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Path of the netgpu character device.
pub const DEVICE: &str = "/dev/netgpu";

/// An open context of `/dev/netgpu`.
pub struct Netgpu {
    file: File,
}

impl Netgpu {
    /// Opens a new context.
    pub fn open() -> io::Result<Self> {
        Self::open_path(DEVICE)
    }

    /// Opens a new context through `path`.
    pub fn open_path(path: &str) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Self { file })
    }

    /// The context's file descriptor.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// `NETGPU_IOC_GET_INFO`.
    pub fn info(&self) -> io::Result<NetgpuInfo> {
        let mut buf = [0u8; NetgpuInfo::SIZE];
        NetgpuInfo::default()
            .encode(&mut buf)
            .ok_or(io::ErrorKind::InvalidData)?;
        // SAFETY: `buf` is valid for reads and writes of the size encoded
        // in the command.
        unsafe { raw_ioctl(self.fd(), NETGPU_IOC_GET_INFO, buf.as_mut_ptr().cast())? };
        NetgpuInfo::decode(&buf).ok_or_else(|| io::ErrorKind::InvalidData.into())
    }

    /// Calls `cmd` with `arg` encoded, and decodes what the kernel wrote back.
    pub fn call<T: Wire>(&self, cmd: u32, arg: &T) -> io::Result<T> {
        let mut buf = vec![0u8; T::SIZE];
        arg.encode(&mut buf).ok_or(io::ErrorKind::InvalidData)?;
        // SAFETY: `buf` is valid for reads and writes of `T::SIZE` bytes,
        // the size every netgpu command encodes for its `T`.
        unsafe { raw_ioctl(self.fd(), cmd, buf.as_mut_ptr().cast())? };
        T::decode(&buf).ok_or_else(|| io::ErrorKind::InvalidData.into())
    }

    /// `NETGPU_IOC_IMPORT_DMABUF`: returns the region id and size.
    pub fn import_dmabuf(&self, fd: RawFd) -> io::Result<(u32, u64)> {
        let arg = NetgpuImportDmabuf {
            fd,
            ..Default::default()
        };
        let r = self.call(NETGPU_IOC_IMPORT_DMABUF, &arg)?;
        Ok((r.region_id, r.size))
    }

    /// `NETGPU_IOC_IMPORT_P2PMEM`: pins `size` bytes of PCI P2PDMA memory
    /// mapped at `addr`; returns the region id.
    pub fn import_p2pmem(&self, addr: usize, size: usize) -> io::Result<u32> {
        let arg = NetgpuImportP2pmem {
            addr: addr as u64,
            size: size as u64,
            ..Default::default()
        };
        Ok(self.call(NETGPU_IOC_IMPORT_P2PMEM, &arg)?.region_id)
    }
}

impl Netgpu {
    /// `NETGPU_IOC_SETUP_RINGS`, then maps both rings.
    pub fn setup_rings(&self, cq_entries: u32, rq_entries: u32) -> io::Result<(CqMap, RqMap)> {
        let arg = NetgpuSetupRings {
            cq_entries,
            rq_entries,
            ..Default::default()
        };
        let r = self.call(NETGPU_IOC_SETUP_RINGS, &arg)?;
        let cq = RingMap::new(self.fd(), &r.cq)?;
        let rq = RingMap::new(self.fd(), &r.rq)?;
        Ok((CqMap { ring: cq, head: 0 }, RqMap { ring: rq, tail: 0 }))
    }
}

impl Netgpu {
    /// `NETGPU_IOC_BIND_QUEUE`: returns the binding id.
    pub fn bind_queue(&self, ifindex: u32, queue: u32, region_id: u32) -> io::Result<u32> {
        let arg = NetgpuBindQueue {
            ifindex,
            queue,
            region_id,
            ..Default::default()
        };
        Ok(self.call(NETGPU_IOC_BIND_QUEUE, &arg)?.binding_id)
    }

    /// `NETGPU_IOC_UNBIND_QUEUE`.
    pub fn unbind_queue(&self, binding_id: u32) -> io::Result<()> {
        let arg = NetgpuUnbindQueue {
            binding_id,
            ..Default::default()
        };
        self.call(NETGPU_IOC_UNBIND_QUEUE, &arg).map(|_| ())
    }

    /// `NETGPU_IOC_ATTACH_SOCKET`: returns the socket id.
    pub fn attach_socket(&self, fd: RawFd) -> io::Result<u32> {
        let arg = NetgpuAttachSocket {
            fd,
            ..Default::default()
        };
        Ok(self.call(NETGPU_IOC_ATTACH_SOCKET, &arg)?.socket_id)
    }

    /// `NETGPU_IOC_DETACH_SOCKET`.
    pub fn detach_socket(&self, socket_id: u32) -> io::Result<()> {
        let arg = NetgpuDetachSocket {
            socket_id,
            ..Default::default()
        };
        self.call(NETGPU_IOC_DETACH_SOCKET, &arg).map(|_| ())
    }

    /// `NETGPU_IOC_RECV`: returns (bytes, completions).
    pub fn recv(&self, socket_id: u32, max_bytes: u64, flags: u32) -> io::Result<(u64, u32)> {
        let arg = NetgpuRecv {
            socket_id,
            flags,
            max_bytes,
            ..Default::default()
        };
        let r = self.call(NETGPU_IOC_RECV, &arg)?;
        Ok((r.bytes, r.completions))
    }

    /// `NETGPU_IOC_GET_STATS` of the context (0) or a binding.
    pub fn stats(&self, binding_id: u32) -> io::Result<NetgpuStats> {
        let arg = NetgpuStats {
            binding_id,
            ..Default::default()
        };
        self.call(NETGPU_IOC_GET_STATS, &arg)
    }
}

/// A ring mapped from a context.
pub struct RingMap {
    ptr: *mut u8,
    len: usize,
    offsets: NetgpuRingOffsets,
}

// SAFETY: the mapping is shared memory accessed only through atomics and
// volatile copies.
unsafe impl Send for RingMap {}

impl RingMap {
    /// Maps the ring `offsets` describes from the context `fd`.
    pub fn new(fd: RawFd, offsets: &NetgpuRingOffsets) -> io::Result<Self> {
        let len = offsets.mmap_size as usize;
        // SAFETY: a new shared mapping of the context's ring; nothing else
        // is at the address the kernel picks.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                offsets.mmap_offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(RingMap {
            ptr: ptr.cast(),
            len,
            offsets: *offsets,
        })
    }

    /// The ring's offsets.
    pub fn offsets(&self) -> &NetgpuRingOffsets {
        &self.offsets
    }

    /// The `u32` at byte `off` of the mapping.
    pub fn word(&self, off: u32) -> &std::sync::atomic::AtomicU32 {
        assert!(off as usize + 4 <= self.len && off.is_multiple_of(4));
        // SAFETY: in bounds and aligned (checked); the mapping lives as long
        // as `self` and both sides access the word atomically.
        unsafe { std::sync::atomic::AtomicU32::from_ptr(self.ptr.add(off as usize).cast()) }
    }

    /// Byte offset of entry `i` of `size`-byte entries.
    fn slot(&self, i: u32, size: usize) -> usize {
        self.offsets.entries as usize + (i & (self.offsets.ring_entries - 1)) as usize * size
    }

    fn read(&self, off: usize, dst: &mut [u8]) {
        assert!(off + dst.len() <= self.len);
        if off.is_multiple_of(8) && dst.len().is_multiple_of(8) {
            for (i, w) in dst.chunks_exact_mut(8).enumerate() {
                // SAFETY: in bounds (checked above) and 8-aligned in the
                // page-aligned mapping.
                let v = unsafe { self.ptr.add(off + 8 * i).cast::<u64>().read_volatile() };
                w.copy_from_slice(&v.to_ne_bytes());
            }
            return;
        }
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: in bounds (checked above) of the live mapping.
            *b = unsafe { self.ptr.add(off + i).read_volatile() };
        }
    }

    fn write(&self, off: usize, src: &[u8]) {
        assert!(off + src.len() <= self.len);
        if off.is_multiple_of(8) && src.len().is_multiple_of(8) {
            for (i, w) in src.chunks_exact(8).enumerate() {
                let mut b = [0u8; 8];
                b.copy_from_slice(w);
                // SAFETY: in bounds (checked above) and 8-aligned in the
                // page-aligned mapping.
                unsafe {
                    self.ptr
                        .add(off + 8 * i)
                        .cast::<u64>()
                        .write_volatile(u64::from_ne_bytes(b))
                };
            }
            return;
        }
        for (i, b) in src.iter().enumerate() {
            // SAFETY: in bounds (checked above) of the live mapping.
            unsafe { self.ptr.add(off + i).write_volatile(*b) };
        }
    }
}

impl Drop for RingMap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` is the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The completion ring, as its consumer sees it.
pub struct CqMap {
    /// The mapping.
    pub ring: RingMap,
    head: u32,
}

impl CqMap {
    /// Takes the next completion, if any.
    pub fn pop(&mut self) -> Option<NetgpuCqe> {
        use std::sync::atomic::Ordering;
        let tail = self
            .ring
            .word(self.ring.offsets.tail)
            .load(Ordering::Acquire);
        if tail == self.head {
            return None;
        }
        let mut b = [0u8; NetgpuCqe::SIZE];
        self.ring.read(self.ring.slot(self.head, b.len()), &mut b);
        self.head = self.head.wrapping_add(1);
        self.ring
            .word(self.ring.offsets.head)
            .store(self.head, Ordering::Release);
        NetgpuCqe::decode(&b)
    }

    /// The kernel's count of receives stopped by a full ring.
    pub fn overflows(&self) -> u32 {
        use std::sync::atomic::Ordering;
        self.ring
            .word(self.ring.offsets.dropped)
            .load(Ordering::Relaxed)
    }
}

/// The refill ring, as its producer sees it.
pub struct RqMap {
    /// The mapping.
    pub ring: RingMap,
    tail: u32,
}

impl RqMap {
    /// Queues `rqe`; `false` if the ring is full.
    pub fn push(&mut self, rqe: &NetgpuRqe) -> bool {
        use std::sync::atomic::Ordering;
        let head = self
            .ring
            .word(self.ring.offsets.head)
            .load(Ordering::Acquire);
        if self.tail.wrapping_sub(head) >= self.ring.offsets.ring_entries {
            return false;
        }
        let mut b = [0u8; NetgpuRqe::SIZE];
        if rqe.encode(&mut b).is_none() {
            return false;
        }
        self.ring.write(self.ring.slot(self.tail, b.len()), &b);
        self.tail = self.tail.wrapping_add(1);
        self.ring
            .word(self.ring.offsets.tail)
            .store(self.tail, Ordering::Release);
        true
    }

    /// The kernel's count of entries that named no held buffer.
    pub fn bad_entries(&self) -> u32 {
        use std::sync::atomic::Ordering;
        self.ring
            .word(self.ring.offsets.dropped)
            .load(Ordering::Relaxed)
    }
}

/// A udmabuf: a DMA-buf made of the pages of a sealed memfd, which stays
/// mapped in this process so that received bytes can be checked.
pub struct Udmabuf {
    /// The DMA-buf.
    pub dmabuf: OwnedFd,
    /// The memfd whose pages back it.
    pub memfd: OwnedFd,
    /// Size in bytes.
    pub size: usize,
}

/// `struct udmabuf_create` of `<linux/udmabuf.h>`.
#[repr(C)]
struct UdmabufCreate {
    memfd: u32,
    flags: u32,
    offset: u64,
    size: u64,
}

/// `UDMABUF_CREATE`: `_IOW('u', 0x42, struct udmabuf_create)`.
const UDMABUF_CREATE: u32 = ioc::ioc(
    ioc::WRITE,
    b'u' as u32,
    0x42,
    std::mem::size_of::<UdmabufCreate>(),
);
/// `UDMABUF_FLAGS_CLOEXEC`.
const UDMABUF_FLAGS_CLOEXEC: u32 = 1;

impl Udmabuf {
    /// Makes a udmabuf of `size` bytes (a multiple of the page size) from a
    /// new memfd, through `/dev/udmabuf`.
    pub fn new(size: usize) -> io::Result<Self> {
        // SAFETY: the name is a NUL-terminated string.
        let fd = unsafe {
            libc::memfd_create(
                c"netgpu-udmabuf".as_ptr(),
                libc::MFD_ALLOW_SEALING | libc::MFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let file = File::from(memfd.try_clone()?);
        file.set_len(size as u64)?;
        // SAFETY: plain fcntl on an fd we own.
        if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/udmabuf")?;
        let mut arg = UdmabufCreate {
            memfd: fd as u32,
            flags: UDMABUF_FLAGS_CLOEXEC,
            offset: 0,
            size: size as u64,
        };
        // SAFETY: `arg` is the structure UDMABUF_CREATE expects.
        let dmabuf = unsafe { raw_ioctl(dev.as_raw_fd(), UDMABUF_CREATE, (&raw mut arg).cast())? };
        // SAFETY: UDMABUF_CREATE returned a new fd that nobody else owns.
        let dmabuf = unsafe { OwnedFd::from_raw_fd(dmabuf) };
        Ok(Udmabuf {
            dmabuf,
            memfd,
            size,
        })
    }
}

/// Issues `ioctl(fd, cmd, arg)` and maps -1 to the `errno` error.
///
/// # Safety
///
/// `arg` must be what `cmd` expects: for commands with an argument, memory
/// valid for `_IOC_SIZE(cmd)` bytes of reads and writes, or an address the
/// caller wants the kernel to fault on.
pub unsafe fn raw_ioctl(fd: RawFd, cmd: u32, arg: *mut libc::c_void) -> io::Result<i32> {
    // SAFETY: the caller guarantees `arg` matches `cmd`.
    let r = unsafe { libc::ioctl(fd, cmd as _, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}
