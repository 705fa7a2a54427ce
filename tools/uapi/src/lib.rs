// SPDX-License-Identifier: GPL-2.0

//! The netgpu ABI for user space: the kernel module's own mirror of
//! `uapi/linux/netgpu.h` (`uapi/netgpu.rs`, compiled here unchanged) plus
//! thin, safe wrappers around the ioctls.

#[path = "../../../uapi/netgpu.rs"]
mod abi;
pub use abi::*;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};

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
