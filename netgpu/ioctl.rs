// SPDX-License-Identifier: GPL-2.0

//! ioctl dispatch of `/dev/netgpu` and the copy of extensible arguments.
//!
//! The rules (see `uapi/linux/netgpu.h`): the kernel dispatches on the
//! ioctl type and number; the direction bits must match the command; the
//! argument size comes from the command and may be larger or smaller than
//! the kernel's structure, within limits. Every rejected call gets one dmesg
//! line naming the context, the command and the reason.

use core::cmp::min;

use kernel::{
    page::PAGE_SIZE,
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

use super::context::Context;
use crate::uapi::{self, ioc, NetgpuInfo, Wire};

/// Longest argument accepted at all; longer ones fail with `E2BIG`.
const MAX_ARG_SIZE: usize = PAGE_SIZE;

/// Largest structure of the ABI, the size of the copy buffer.
const MAX_STRUCT_SIZE: usize = 256;

/// Features this build of the module implements (`NETGPU_FEATURE_*`).
pub(crate) const FEATURES: u64 = 0;

/// A command of the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// `NETGPU_IOC_GET_INFO`.
    GetInfo,
}

impl Command {
    /// Name in dmesg lines.
    fn name(self) -> &'static str {
        match self {
            Command::GetInfo => "GET_INFO",
        }
    }
}

/// Decodes an ioctl number into a command and the user argument's size.
///
/// Fails with `ENOTTY` for any number that is not netgpu's, including a
/// known command number with the wrong direction bits.
pub(crate) fn decode(cmd: u32) -> Result<(Command, usize)> {
    if ioc::ty(cmd) != uapi::NETGPU_IOC_TYPE {
        return Err(ENOTTY);
    }
    let (command, dir) = match ioc::nr(cmd) {
        0x00 => (Command::GetInfo, ioc::READ | ioc::WRITE),
        _ => return Err(ENOTTY),
    };
    if ioc::dir(cmd) != dir {
        return Err(ENOTTY);
    }
    Ok((command, ioc::size(cmd)))
}

/// How many bytes of a user argument of `user_size` bytes map to a
/// structure the kernel knows as `kernel_size` bytes, first published with
/// `min_size` bytes.
pub(crate) fn arg_len(user_size: usize, min_size: usize, kernel_size: usize) -> Result<usize> {
    if user_size < min_size {
        return Err(EINVAL);
    }
    if user_size > MAX_ARG_SIZE {
        return Err(E2BIG);
    }
    Ok(min(user_size, kernel_size))
}

/// One ioctl call: the context, the command and the user argument.
struct Call<'a> {
    ctx: &'a Context,
    command: Command,
    arg: UserPtr,
    size: usize,
}

impl Call<'_> {
    /// Logs why the call is rejected and returns `err` to be propagated.
    fn reject(&self, err: Error, why: core::fmt::Arguments<'_>) -> Error {
        pr_info!(
            "context {}: {}: {} (errno {})\n",
            self.ctx.id,
            self.command.name(),
            why,
            err.to_errno()
        );
        err
    }

    /// Copies in the argument as a `T` first published with `min_size`
    /// bytes; bytes past `T` must be zero.
    fn read<T: Wire>(&self, min_size: usize) -> Result<T> {
        const { assert!(T::SIZE <= MAX_STRUCT_SIZE) };
        let len = arg_len(self.size, min_size, T::SIZE).map_err(|e| {
            self.reject(e, format_args!("argument size {} not accepted", self.size))
        })?;
        let unreadable = |e| self.reject(e, format_args!("argument not readable"));
        let mut buf = [0u8; MAX_STRUCT_SIZE];
        let mut reader = UserSlice::new(self.arg, self.size).reader();
        reader.read_slice(&mut buf[..len]).map_err(unreadable)?;
        let mut tail = [0u8; 64];
        while !reader.is_empty() {
            let n = min(reader.len(), tail.len());
            reader.read_slice(&mut tail[..n]).map_err(unreadable)?;
            if tail[..n].iter().any(|&b| b != 0) {
                return Err(self.reject(E2BIG, format_args!("unknown trailing bytes not zero")));
            }
        }
        T::decode(&buf).ok_or(EINVAL)
    }

    /// Copies `v` out to the argument, truncated to the user's size.
    fn write<T: Wire>(&self, v: &T) -> Result {
        let mut buf = [0u8; MAX_STRUCT_SIZE];
        v.encode(&mut buf).ok_or(EINVAL)?;
        let len = min(self.size, T::SIZE);
        UserSlice::new(self.arg, len)
            .writer()
            .write_slice(&buf[..len])
            .map_err(|e| self.reject(e, format_args!("argument not writable")))
    }
}

/// Handles one ioctl on `ctx`.
pub(crate) fn dispatch(ctx: &Context, cmd: u32, arg: usize) -> Result<isize> {
    let (command, size) = decode(cmd).inspect_err(|_| {
        pr_info!("context {}: unknown ioctl {:#x}\n", ctx.id, cmd);
    })?;
    let call = Call {
        ctx,
        command,
        arg: UserPtr::from_addr(arg),
        size,
    };
    match command {
        Command::GetInfo => get_info(&call),
    }
}

/// The reply of `NETGPU_IOC_GET_INFO`.
pub(crate) fn info() -> NetgpuInfo {
    NetgpuInfo {
        abi_version: uapi::NETGPU_ABI_VERSION,
        features: FEATURES,
        page_size: PAGE_SIZE as u32,
        ..Default::default()
    }
}

fn get_info(call: &Call<'_>) -> Result<isize> {
    let req: NetgpuInfo = call.read(uapi::NETGPU_INFO_SIZE_VER0)?;
    if req.flags != 0 {
        return Err(call.reject(EINVAL, format_args!("flags {:#x} not zero", req.flags)));
    }
    if req.__pad != 0 || req.reserved.iter().any(|&r| r != 0) {
        return Err(call.reject(EINVAL, format_args!("reserved fields not zero")));
    }
    call.write(&info())?;
    Ok(0)
}

#[kunit_tests(netgpu_ioctl)]
mod tests {
    use super::*;

    #[test]
    fn decode_get_info() {
        assert_eq!(
            decode(uapi::NETGPU_IOC_GET_INFO),
            Ok((Command::GetInfo, uapi::NETGPU_INFO_SIZE_VER0))
        );
    }

    #[test]
    fn decode_rejects_foreign_numbers() {
        let t = uapi::NETGPU_IOC_TYPE;
        let rw = ioc::READ | ioc::WRITE;
        // Wrong type, same number and size.
        assert_eq!(decode(ioc::ioc(rw, t + 1, 0, 56)), Err(ENOTTY));
        // Unknown number.
        assert_eq!(decode(ioc::ioc(rw, t, 0x1f, 56)), Err(ENOTTY));
        // Known number, wrong direction.
        assert_eq!(decode(ioc::ioc(ioc::READ, t, 0, 56)), Err(ENOTTY));
        assert_eq!(decode(ioc::ioc(ioc::NONE, t, 0, 0)), Err(ENOTTY));
    }

    #[test]
    fn decode_keeps_user_size() {
        let rw = ioc::READ | ioc::WRITE;
        let cmd = ioc::ioc(rw, uapi::NETGPU_IOC_TYPE, 0, 200);
        assert_eq!(decode(cmd), Ok((Command::GetInfo, 200)));
    }

    #[test]
    fn arg_len_rules() {
        assert_eq!(arg_len(55, 56, 56), Err(EINVAL));
        assert_eq!(arg_len(0, 56, 56), Err(EINVAL));
        assert_eq!(arg_len(56, 56, 56), Ok(56));
        // Older, shorter structures than the kernel's are read in part.
        assert_eq!(arg_len(56, 56, 64), Ok(56));
        // Newer, longer ones: the kernel reads what it knows.
        assert_eq!(arg_len(128, 56, 64), Ok(64));
        assert_eq!(arg_len(MAX_ARG_SIZE, 56, 64), Ok(64));
        assert_eq!(arg_len(MAX_ARG_SIZE + 1, 56, 64), Err(E2BIG));
    }

    #[test]
    fn info_wire_round_trip() {
        let v = NetgpuInfo {
            abi_version: 7,
            flags: 0x8000_0001,
            features: 0x0123_4567_89ab_cdef,
            page_size: 4096,
            __pad: 3,
            reserved: [1, 2, 3, u64::MAX],
        };
        let mut b = [0u8; 56];
        assert_eq!(v.encode(&mut b), Some(()));
        assert_eq!(NetgpuInfo::decode(&b), Some(v));
        // Field offsets are the C header's.
        assert_eq!(b[0..4], 7u32.to_ne_bytes());
        assert_eq!(b[8..16], 0x0123_4567_89ab_cdefu64.to_ne_bytes());
        assert_eq!(b[48..56], u64::MAX.to_ne_bytes());
        // Short buffers are refused, not read past.
        assert_eq!(NetgpuInfo::decode(&b[..55]), None);
        assert_eq!(v.encode(&mut b[..55]), None);
    }

    #[test]
    fn info_reply_is_sane() {
        let i = info();
        assert_eq!(i.abi_version, uapi::NETGPU_ABI_VERSION);
        assert_eq!(i.features & !uapi::NETGPU_FEATURES_KNOWN, 0);
        assert!(i.page_size.is_power_of_two());
        assert_eq!(i.page_size as usize, PAGE_SIZE);
        assert_eq!(i.flags, 0);
        assert_eq!(i.__pad, 0);
        assert_eq!(i.reserved, [0; 4]);
    }
}
