// SPDX-License-Identifier: GPL-2.0

//! netgpu: zero-copy network receive into device (GPU) memory.
//!
//! A NIC with header/data split writes TCP headers to host pages, which the
//! kernel stack processes as usual, and payloads straight into device memory
//! that user space brought in as a DMA-buf or as PCI P2PDMA memory. netgpu is
//! the page_pool memory provider that serves those payload buffers, and the
//! character device `/dev/netgpu` through which user space imports memory,
//! binds RX queues, attaches sockets and learns where payload bytes landed.
//!
//! The ABI is `uapi/linux/netgpu.h`; its Rust mirror is [`uapi`].
//! `Documentation/netgpu.rst` describes the design.
//!
//! Layout of the crate:
//! - [`uapi`]: the ABI, shared with the user space tools.
//! - [`netgpu`]: the misc device, per-open contexts, regions and ioctl
//!   dispatch.
//! - [`dmabuf`]: wrappers over the DMA-buf importer API.
//! - [`p2pdma`]: PCI P2PDMA memory pinned from user space and mapped for
//!   a device.
//! - [`net`]: wrappers over net devices, page pools and net_iovs, and the
//!   memory provider.

use kernel::prelude::*;

#[path = "dmabuf/mod.rs"]
mod dmabuf;
#[path = "net/mod.rs"]
mod net;
#[path = "netgpu/mod.rs"]
mod netgpu;
#[path = "p2pdma/mod.rs"]
mod p2pdma;
#[path = "uapi/netgpu.rs"]
pub mod uapi;

module! {
    type: netgpu::NetgpuModule,
    name: "netgpu",
    authors: ["The netgpu developers"],
    description: "Zero-copy network receive into GPU memory",
    license: "GPL",
    imports_ns: ["DMA_BUF", "NETDEV_INTERNAL"],
}
