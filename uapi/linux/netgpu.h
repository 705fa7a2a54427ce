/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * netgpu: zero-copy network receive into device (GPU) memory.
 *
 * User space drives netgpu through the character device /dev/netgpu. Every
 * open() of it creates one context; every ioctl below acts on the context of
 * the file it is called on.
 *
 * Argument structures are extensible. The size of the structure is encoded in
 * the ioctl number (_IOC_SIZE), and the kernel dispatches on the type and
 * number only, so old binaries keep working when a structure grows:
 *
 *  - an argument shorter than the first published size of its structure
 *    fails with EINVAL;
 *  - an argument longer than the kernel's structure is accepted only if every
 *    byte the kernel does not know is zero, else the call fails with E2BIG;
 *  - fields named flags, __pad and reserved must be zero on input, else the
 *    call fails with EINVAL. Reserved output space is written as zero.
 *
 * An ioctl number netgpu does not know, or one with the wrong direction bits,
 * fails with ENOTTY. An argument pointer that cannot be read or written fails
 * with EFAULT.
 */
#ifndef _UAPI_LINUX_NETGPU_H
#define _UAPI_LINUX_NETGPU_H

#include <linux/const.h>
#include <linux/ioctl.h>
#include <linux/types.h>

/* Version of the ABI described in this file. */
#define NETGPU_ABI_VERSION	1

/* ioctl type of netgpu; numbers 0x00-0x1f. */
#define NETGPU_IOC_TYPE		0xE6

/*
 * Feature bits reported in &netgpu_info.features: each is set only when the
 * running module implements that part of the ABI.
 */
/* NETGPU_IOC_IMPORT_DMABUF: regions backed by a DMA-buf. */
#define NETGPU_FEATURE_DMABUF		_BITULL(0)
/* Regions backed by PCI P2PDMA memory. */
#define NETGPU_FEATURE_P2PDMA		_BITULL(1)
/* Completion and refill rings, NETGPU_IOC_SETUP_RINGS. */
#define NETGPU_FEATURE_RINGS		_BITULL(2)
/* RX queue binding, NETGPU_IOC_BIND_QUEUE. */
#define NETGPU_FEATURE_BIND_QUEUE	_BITULL(3)
/* TCP socket receive, NETGPU_IOC_ATTACH_SOCKET and NETGPU_IOC_RECV. */
#define NETGPU_FEATURE_TCP_RECV		_BITULL(4)

/* All feature bits this header defines. */
#define NETGPU_FEATURES_KNOWN		(_BITULL(5) - 1)

/**
 * struct netgpu_info - argument of %NETGPU_IOC_GET_INFO
 * @abi_version: out: %NETGPU_ABI_VERSION of the running module.
 * @flags: in: must be zero.
 * @features: out: NETGPU_FEATURE_* bits of the running module.
 * @page_size: out: granularity, in bytes, of regions and receive buffers.
 * @__pad: in: must be zero; out: zero.
 * @reserved: in: must be zero; out: zero.
 */
struct netgpu_info {
	__u32 abi_version;
	__u32 flags;
	__u64 features;
	__u32 page_size;
	__u32 __pad;
	__u64 reserved[4];
};

/* First published size of struct netgpu_info. */
#define NETGPU_INFO_SIZE_VER0	56

/*
 * NETGPU_IOC_GET_INFO - report the ABI version and features of the module.
 *
 * Errors: EINVAL (short argument, nonzero flags, __pad or reserved), E2BIG
 * (longer argument with nonzero unknown bytes), EFAULT.
 */
#define NETGPU_IOC_GET_INFO	_IOWR(NETGPU_IOC_TYPE, 0x00, struct netgpu_info)

#endif /* _UAPI_LINUX_NETGPU_H */
