// SPDX-License-Identifier: GPL-2.0

//! The `/dev/netgpu` misc device, its per-open contexts and ioctl dispatch.

pub(crate) mod binding;
mod context;
mod ioctl;
mod recv;
pub(crate) mod region;
mod ring;
mod ringmem;

use kernel::{
    miscdevice::{MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

use crate::uapi;
use context::Context;

/// The loaded module: owns the registration of `/dev/netgpu`.
///
/// The device node is created with the misc class default mode, 0600: every
/// netgpu operation either pins memory or reconfigures a NIC, so access is
/// for root (or whoever an administrator hands the node to) only.
#[pin_data]
pub(crate) struct NetgpuModule {
    #[pin]
    _miscdev: MiscDeviceRegistration<Context>,
}

impl kernel::InPlaceModule for NetgpuModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pr_info!("ABI version {}\n", uapi::NETGPU_ABI_VERSION);
        try_pin_init!(Self {
            _miscdev <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"netgpu" }),
        })
    }
}
