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
/* NETGPU_IOC_IMPORT_P2PMEM: regions backed by PCI P2PDMA memory. */
#define NETGPU_FEATURE_P2PDMA		_BITULL(1)
/* Completion and refill rings, NETGPU_IOC_SETUP_RINGS. */
#define NETGPU_FEATURE_RINGS		_BITULL(2)
/* RX queue binding, NETGPU_IOC_BIND_QUEUE. */
#define NETGPU_FEATURE_BIND_QUEUE	_BITULL(3)
/* TCP socket receive, NETGPU_IOC_ATTACH_SOCKET and NETGPU_IOC_RECV. */
#define NETGPU_FEATURE_TCP_RECV		_BITULL(4)
/* poll() on the context: readable while a NETGPU_IOC_RECV would not block. */
#define NETGPU_FEATURE_POLL		_BITULL(5)

/* All feature bits this header defines. */
#define NETGPU_FEATURES_KNOWN		(_BITULL(6) - 1)

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

/*
 * Objects of a context (regions, ...) are named by ids that are unique within
 * the context, handed out from 1 upwards and never reused; 0 is never an id.
 */

/**
 * struct netgpu_import_dmabuf - argument of %NETGPU_IOC_IMPORT_DMABUF
 * @fd: in: file descriptor of the DMA-buf.
 * @flags: in: must be zero.
 * @region_id: out: id of the new region.
 * @__pad: in: must be zero; out: zero.
 * @size: out: size of the region in bytes, a multiple of the page size.
 * @reserved: in: must be zero; out: zero.
 */
struct netgpu_import_dmabuf {
	__s32 fd;
	__u32 flags;
	__u32 region_id;
	__u32 __pad;
	__u64 size;
	__u64 reserved[2];
};

/* First published size of struct netgpu_import_dmabuf. */
#define NETGPU_IMPORT_DMABUF_SIZE_VER0	40

/* Most regions one context may hold. */
#define NETGPU_MAX_REGIONS	64

/*
 * NETGPU_IOC_IMPORT_DMABUF - make a DMA-buf a region of the context.
 *
 * The context holds a reference to the DMA-buf until it is closed; the
 * caller may close @fd right away. A region is carved into page-sized
 * receive buffers, addressed by their byte offset in the region.
 *
 * Errors: EBADF (@fd is not open), EINVAL (@fd is not a DMA-buf, its size
 * is zero or not a multiple of the page size, nonzero flags or reserved
 * fields), ENOSPC (the context holds %NETGPU_MAX_REGIONS regions), ENOMEM.
 */
#define NETGPU_IOC_IMPORT_DMABUF	_IOWR(NETGPU_IOC_TYPE, 0x01, struct netgpu_import_dmabuf)

/**
 * struct netgpu_import_p2pmem - argument of %NETGPU_IOC_IMPORT_P2PMEM
 * @addr: in: start of the memory in the caller's address space, page
 *	aligned.
 * @size: in: length of the memory in bytes, a nonzero multiple of the page
 *	size.
 * @flags: in: must be zero.
 * @region_id: out: id of the new region.
 * @reserved: in: must be zero; out: zero.
 */
struct netgpu_import_p2pmem {
	__u64 addr;
	__u64 size;
	__u32 flags;
	__u32 region_id;
	__u64 reserved[2];
};

/* First published size of struct netgpu_import_p2pmem. */
#define NETGPU_IMPORT_P2PMEM_SIZE_VER0	40

/*
 * NETGPU_IOC_IMPORT_P2PMEM - make PCI P2PDMA memory a region of the context.
 *
 * @addr and @size name a shared mapping of PCI peer-to-peer memory in the
 * caller's address space, such as the sysfs file p2pmem/allocate of a p2pmem
 * provider (/sys/bus/pci/devices/<function>/p2pmem/allocate, mapped
 * MAP_SHARED and writable at offset 0). P2PDMA memory must stay
 * hot-unpluggable, so the region holds the pages only while they stay mapped
 * there: once the mapping changes (munmap, mremap, mprotect, or the
 * provider's driver unbinding, which unmaps it) the region is revoked like a
 * DMA-buf whose exporter revokes it: its binding is unbound, the pages are
 * let go of, and receives that need its memory fail with ENXIO. The region
 * keeps its id until the context is closed.
 *
 * A queue can be bound to such a region only if its DMA device reaches the
 * provider peer to peer (NETGPU_IOC_BIND_QUEUE fails with ENXIO otherwise).
 * The copy fallback writes such a region through the kernel's own (uncached)
 * mapping of P2PDMA memory.
 *
 * Errors: EINVAL (@addr or @size not page aligned, @size zero, memory that
 * is not PCI P2PDMA memory, nonzero flags or reserved fields), EFAULT (part
 * of the range is not mapped, not by pages, or not writable), EAGAIN (the
 * mapping changed while it was being pinned), ENOSPC (the context holds
 * %NETGPU_MAX_REGIONS regions), ENOMEM.
 */
#define NETGPU_IOC_IMPORT_P2PMEM	_IOWR(NETGPU_IOC_TYPE, 0x09, struct netgpu_import_p2pmem)

/*
 * Rings. A context has one completion ring (CQ), which the kernel fills and
 * user space drains, and one refill ring (RQ), which user space fills and
 * the kernel drains. Each is mapped with mmap() on the context's fd at the
 * offset NETGPU_IOC_SETUP_RINGS reports; the mapping holds a __u32 head, a
 * __u32 tail and an array of ring_entries entries (a power of two). Head and
 * tail count entries and wrap at 2^32; entry i is at index i & (ring_entries
 * - 1); the ring holds tail - head entries.
 *
 * The producer writes entries, then stores the new tail with release
 * semantics; the consumer loads the tail with acquire semantics, reads the
 * entries, then stores the new head with release semantics; the producer
 * loads the head with acquire semantics before it reuses slots. Each side
 * writes only its own index; the kernel never trusts what it reads from
 * the ring memory.
 */

/* Most entries of a ring. */
#define NETGPU_MAX_RING_ENTRIES	32768

/* mmap() offsets of the rings. */
#define NETGPU_MMAP_CQ		0x0ULL
#define NETGPU_MMAP_RQ		0x10000000ULL

/**
 * struct netgpu_ring_offsets - where a ring lives, reported by
 * %NETGPU_IOC_SETUP_RINGS
 * @mmap_offset: offset argument of mmap() for this ring.
 * @mmap_size: length argument of mmap() for this ring.
 * @head: byte offset of the __u32 head in the mapping.
 * @tail: byte offset of the __u32 tail in the mapping.
 * @dropped: byte offset of a __u32 counter in the mapping, written by the
 *	kernel: for the CQ, the times a receive stopped because the ring was
 *	full; for the RQ, the entries skipped because they named no buffer the
 *	user held.
 * @entries: byte offset of the entry array in the mapping.
 * @ring_entries: number of entries, a power of two.
 * @__pad: out: zero.
 */
struct netgpu_ring_offsets {
	__u64 mmap_offset;
	__u64 mmap_size;
	__u32 head;
	__u32 tail;
	__u32 dropped;
	__u32 entries;
	__u32 ring_entries;
	__u32 __pad;
};

/**
 * struct netgpu_cqe - a completion: payload bytes that landed in a region
 * @offset: byte offset of the payload in the region.
 * @len: length of the payload in bytes; 0 only with %NETGPU_CQE_EOF.
 * @flags: NETGPU_CQE_* bits.
 * @region_id: the region.
 * @socket_id: the attached socket the bytes were received on.
 * @reserved: zero.
 *
 * Every completion with a nonzero @len hands the buffer (the page of the
 * region at @offset) to user space until it is returned through the RQ.
 */
struct netgpu_cqe {
	__u64 offset;
	__u32 len;
	__u32 flags;
	__u32 region_id;
	__u32 socket_id;
	__u64 reserved;
};

/* The bytes were copied by the CPU, not written by the NIC. */
#define NETGPU_CQE_COPY		_BITUL(0)
/* The peer closed the stream; nothing follows on this socket. */
#define NETGPU_CQE_EOF		_BITUL(1)

/**
 * struct netgpu_rqe - a returned buffer
 * @offset: any byte offset inside the buffer, as a completion reported it.
 * @region_id: the region.
 * @__pad: ignored.
 */
struct netgpu_rqe {
	__u64 offset;
	__u32 region_id;
	__u32 __pad;
};

/**
 * struct netgpu_setup_rings - argument of %NETGPU_IOC_SETUP_RINGS
 * @cq_entries: in: entries of the completion ring, a power of two up to
 *	%NETGPU_MAX_RING_ENTRIES.
 * @rq_entries: in: entries of the refill ring, likewise.
 * @flags: in: must be zero.
 * @__pad: in: must be zero; out: zero.
 * @cq: out: the completion ring.
 * @rq: out: the refill ring.
 * @reserved: in: must be zero; out: zero.
 */
struct netgpu_setup_rings {
	__u32 cq_entries;
	__u32 rq_entries;
	__u32 flags;
	__u32 __pad;
	struct netgpu_ring_offsets cq;
	struct netgpu_ring_offsets rq;
	__u64 reserved[2];
};

/* First published size of struct netgpu_setup_rings. */
#define NETGPU_SETUP_RINGS_SIZE_VER0	112

/*
 * NETGPU_IOC_SETUP_RINGS - create the context's completion and refill
 * rings, once per context. They live as long as the context.
 *
 * Errors: EINVAL (an entry count that is zero, not a power of two or above
 * %NETGPU_MAX_RING_ENTRIES, nonzero flags or reserved fields), EBUSY (the
 * rings exist), ENOMEM.
 *
 * mmap() of a ring fails with ENXIO before the rings exist, with EINVAL for
 * an offset that is not a ring's or a length above the ring's mmap_size,
 * and with EPERM for PROT_EXEC or a private mapping.
 */
#define NETGPU_IOC_SETUP_RINGS	_IOWR(NETGPU_IOC_TYPE, 0x02, struct netgpu_setup_rings)

/**
 * struct netgpu_bind_queue - argument of %NETGPU_IOC_BIND_QUEUE
 * @ifindex: in: the network device, in the caller's network namespace.
 * @queue: in: index of its RX queue.
 * @region_id: in: the region that receives the queue's payload.
 * @flags: in: must be zero.
 * @binding_id: out: id of the new binding.
 * @__pad: in: must be zero; out: zero.
 * @reserved: in: must be zero; out: zero.
 */
struct netgpu_bind_queue {
	__u32 ifindex;
	__u32 queue;
	__u32 region_id;
	__u32 flags;
	__u32 binding_id;
	__u32 __pad;
	__u64 reserved[2];
};

/* First published size of struct netgpu_bind_queue. */
#define NETGPU_BIND_QUEUE_SIZE_VER0	40

/*
 * NETGPU_IOC_BIND_QUEUE - make a region the memory provider of an RX queue.
 *
 * The region is attached to the queue's DMA device as a pinned, peer-to-peer
 * capable dynamic importer and mapped; the queue restarts with page pools
 * that hand its payload buffers out of the region. The NIC must split
 * headers from payload (ethtool tcp-data-split on) with hds-thresh 0. A
 * region is bound to at most one queue at a time.
 *
 * Errors: EPERM (no CAP_NET_ADMIN in the user namespace owning the device's
 * network namespace), ENODEV (no device @ifindex in the caller's network
 * namespace), ENOENT (no region @region_id), EOPNOTSUPP (the driver has no
 * queue management API), EINVAL (header/data split off or hds-thresh not
 * zero, a region the device cannot map, nonzero flags or reserved fields),
 * ERANGE (@queue out of range), EBUSY (the queue has a memory provider, is
 * used by AF_XDP or leased, or the region is bound), EEXIST (an XDP
 * program is attached), ENXIO (the device cannot DMA or reach the memory),
 * ENOMEM.
 */
#define NETGPU_IOC_BIND_QUEUE	_IOWR(NETGPU_IOC_TYPE, 0x03, struct netgpu_bind_queue)

/**
 * struct netgpu_unbind_queue - argument of %NETGPU_IOC_UNBIND_QUEUE
 * @binding_id: in: the binding.
 * @flags: in: must be zero.
 * @reserved: in: must be zero.
 */
struct netgpu_unbind_queue {
	__u32 binding_id;
	__u32 flags;
	__u64 reserved[2];
};

/* First published size of struct netgpu_unbind_queue. */
#define NETGPU_UNBIND_QUEUE_SIZE_VER0	24

/*
 * NETGPU_IOC_UNBIND_QUEUE - remove a binding's provider from its queue.
 *
 * The queue restarts with ordinary page pools. Buffers still in skbs or
 * held by user space return to the region as they are released. Closing
 * the context unbinds all its bindings.
 *
 * Errors: ENOENT (no binding @binding_id), EINVAL (nonzero flags or
 * reserved fields).
 */
#define NETGPU_IOC_UNBIND_QUEUE	_IOW(NETGPU_IOC_TYPE, 0x04, struct netgpu_unbind_queue)

/**
 * struct netgpu_attach_socket - argument of %NETGPU_IOC_ATTACH_SOCKET
 * @fd: in: a connected TCP socket.
 * @flags: in: must be zero.
 * @socket_id: out: id of the attached socket in completions and
 *	%NETGPU_IOC_RECV.
 * @__pad: in: must be zero; out: zero.
 * @reserved: in: must be zero; out: zero.
 */
struct netgpu_attach_socket {
	__s32 fd;
	__u32 flags;
	__u32 socket_id;
	__u32 __pad;
	__u64 reserved[2];
};

/* First published size of struct netgpu_attach_socket. */
#define NETGPU_ATTACH_SOCKET_SIZE_VER0	32

/* Most sockets one context may attach. */
#define NETGPU_MAX_SOCKETS	1024

/*
 * NETGPU_IOC_ATTACH_SOCKET - receive a TCP socket's stream through the
 * context. The context holds a reference to the socket until it is
 * detached or the context closes. Read the stream with %NETGPU_IOC_RECV
 * only: recv() would fail on payload in device memory.
 *
 * Errors: EBADF (@fd is not open), ENOTSOCK (@fd is not a socket),
 * EOPNOTSUPP (not a TCP socket, or one with a ULP such as TLS), EINVAL (a
 * listening socket, nonzero flags or reserved fields), EBUSY (the socket
 * is attached to this context), ENOSPC (the context has
 * %NETGPU_MAX_SOCKETS sockets), ENOMEM.
 */
#define NETGPU_IOC_ATTACH_SOCKET	_IOWR(NETGPU_IOC_TYPE, 0x05, struct netgpu_attach_socket)

/**
 * struct netgpu_detach_socket - argument of %NETGPU_IOC_DETACH_SOCKET
 * @socket_id: in: the attached socket.
 * @flags: in: must be zero.
 * @reserved: in: must be zero.
 */
struct netgpu_detach_socket {
	__u32 socket_id;
	__u32 flags;
	__u64 reserved[2];
};

/* First published size of struct netgpu_detach_socket. */
#define NETGPU_DETACH_SOCKET_SIZE_VER0	24

/*
 * NETGPU_IOC_DETACH_SOCKET - drop the context's reference to a socket.
 * Buffers already completed stay with user space until returned.
 *
 * Errors: ENOENT (no socket @socket_id), EINVAL (nonzero flags or reserved
 * fields).
 */
#define NETGPU_IOC_DETACH_SOCKET	_IOW(NETGPU_IOC_TYPE, 0x06, struct netgpu_detach_socket)

/**
 * struct netgpu_recv - argument of %NETGPU_IOC_RECV
 * @socket_id: in: the attached socket.
 * @flags: in: NETGPU_RECV_* bits.
 * @max_bytes: in: most payload bytes to complete; 0 only takes back the
 *	buffers in the refill ring.
 * @bytes: out: payload bytes completed.
 * @completions: out: completions posted.
 * @__pad: in: must be zero; out: zero.
 * @reserved: in: must be zero; out: zero.
 */
struct netgpu_recv {
	__u32 socket_id;
	__u32 flags;
	__u64 max_bytes;
	__u64 bytes;
	__u32 completions;
	__u32 __pad;
	__u64 reserved[2];
};

/* Do not wait for data. */
#define NETGPU_RECV_NONBLOCK	_BITUL(0)

/* First published size of struct netgpu_recv. */
#define NETGPU_RECV_SIZE_VER0	48

/*
 * NETGPU_IOC_RECV - take back the buffers in the refill ring, then receive
 * from an attached socket: post a completion for every piece of payload,
 * in stream order. Payload in this context's buffers is completed where
 * the NIC wrote it; any other payload the CPU can read (a queue without a
 * binding, the linear part of an skb) is copied into a free buffer of the
 * context's first region and completed with %NETGPU_CQE_COPY. When the
 * peer has closed the stream and all data is completed, one completion
 * with %NETGPU_CQE_EOF and length 0 is posted, once. Waits for data unless
 * %NETGPU_RECV_NONBLOCK is set, up to the socket's SO_RCVTIMEO. poll() on
 * the context reports EPOLLIN while a receive on some attached socket would
 * not block (%NETGPU_FEATURE_POLL).
 *
 * Errors: ENOENT (no socket @socket_id), ENXIO (no rings set up), EAGAIN
 * (no data, with %NETGPU_RECV_NONBLOCK or after SO_RCVTIMEO), ENOSPC (the
 * completion ring is full), ENOBUFS (payload to copy and no free buffer),
 * EACCES (payload in memory of another context or provider, which is
 * never exposed), ENOTCONN, the socket's pending error, EINTR.
 */
#define NETGPU_IOC_RECV		_IOWR(NETGPU_IOC_TYPE, 0x07, struct netgpu_recv)

/**
 * struct netgpu_stats - argument of %NETGPU_IOC_GET_STATS
 * @binding_id: in: 0 for the whole context, else one of its bindings.
 * @flags: in: must be zero.
 * @zc_bytes: out: payload bytes completed where the NIC wrote them.
 * @copy_bytes: out: payload bytes completed by the copy fallback.
 * @refill_errors: out: refill entries that named no held buffer.
 * @alloc_failures: out: times a page pool found no free buffer.
 * @cq_overflows: out: times a receive stopped at a full completion ring.
 * @foreign_frags: out: times a receive met payload it must not expose.
 * @reserved: out: zero.
 *
 * For a binding, only @zc_bytes and @alloc_failures are its own; the other
 * counters are zero.
 */
struct netgpu_stats {
	__u32 binding_id;
	__u32 flags;
	__u64 zc_bytes;
	__u64 copy_bytes;
	__u64 refill_errors;
	__u64 alloc_failures;
	__u64 cq_overflows;
	__u64 foreign_frags;
	__u64 reserved[4];
};

/* First published size of struct netgpu_stats. */
#define NETGPU_STATS_SIZE_VER0	88

/*
 * NETGPU_IOC_GET_STATS - read the counters of the context or a binding.
 *
 * Errors: ENOENT (no binding @binding_id), EINVAL (nonzero flags).
 */
#define NETGPU_IOC_GET_STATS	_IOWR(NETGPU_IOC_TYPE, 0x08, struct netgpu_stats)

#endif /* _UAPI_LINUX_NETGPU_H */
