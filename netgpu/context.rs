// SPDX-License-Identifier: GPL-2.0

//! Per-open contexts of `/dev/netgpu`.
//!
//! Every `open()` creates one [`Context`]; it lives until the last reference
//! to the file is dropped. Contexts are numbered in creation order; the
//! number names the context in dmesg lines and in `/proc/<pid>/fdinfo`.

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::{
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    prelude::*,
    seq_file::SeqFile,
    seq_print,
};

use super::ioctl;
use crate::uapi;

/// Source of context ids; the first context is 1.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The state of one open of `/dev/netgpu`.
pub(crate) struct Context {
    /// Unique id of this context, for dmesg and fdinfo.
    pub(crate) id: u64,
}

#[vtable]
impl MiscDevice for Context {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(KBox::new(Context { id }, GFP_KERNEL)?)
    }

    fn ioctl(ctx: &Context, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        ioctl::dispatch(ctx, cmd, arg)
    }

    fn show_fdinfo(ctx: &Context, m: &SeqFile, _file: &File) {
        seq_print!(m, "netgpu-context:\t{}\n", ctx.id);
        seq_print!(m, "netgpu-abi:\t{}\n", uapi::NETGPU_ABI_VERSION);
    }
}
