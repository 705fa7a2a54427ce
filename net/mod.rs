// SPDX-License-Identifier: GPL-2.0

//! The network side of netgpu: thin wrappers over net devices, page pools
//! and net_iovs, and the memory provider.

pub(crate) mod netdev;
pub(crate) mod netmem;
pub(crate) mod provider;
pub(crate) mod skb;
pub(crate) mod socket;
