// SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note

//! Rust mirror of `uapi/linux/netgpu.h`.
//!
//! This file is shared, unchanged, by the kernel module and the user space
//! tools, so it depends on `core` only. Every structure is `#[repr(C)]` with
//! explicit padding (checked at compile time) and converts to and from its
//! wire bytes without `unsafe`: a field is read or written at its
//! `offset_of!`, so the layout the C header defines is the only one used.
//! A host test (`tools/uapi-check`) compiles the C header and checks every
//! size, offset, constant and ioctl number against this file.

use core::mem::{offset_of, size_of};

/// Version of the ABI described in this file.
pub const NETGPU_ABI_VERSION: u32 = 1;

/// ioctl type of netgpu; numbers `0x00..=0x1f`.
pub const NETGPU_IOC_TYPE: u32 = 0xE6;

/// Regions backed by a DMA-buf.
pub const NETGPU_FEATURE_DMABUF: u64 = 1 << 0;
/// [`NETGPU_IOC_IMPORT_P2PMEM`]: regions backed by PCI P2PDMA memory.
pub const NETGPU_FEATURE_P2PDMA: u64 = 1 << 1;
/// Completion and refill rings.
pub const NETGPU_FEATURE_RINGS: u64 = 1 << 2;
/// RX queue binding.
pub const NETGPU_FEATURE_BIND_QUEUE: u64 = 1 << 3;
/// TCP socket receive.
pub const NETGPU_FEATURE_TCP_RECV: u64 = 1 << 4;
/// poll() on the context.
pub const NETGPU_FEATURE_POLL: u64 = 1 << 5;
/// All feature bits this ABI version defines.
pub const NETGPU_FEATURES_KNOWN: u64 = (1 << 6) - 1;

/// The `_IOC_*` encoding of `include/uapi/asm-generic/ioctl.h` (x86, arm64).
pub mod ioc {
    /// Bits of the command number.
    pub const NRBITS: u32 = 8;
    /// Bits of the type.
    pub const TYPEBITS: u32 = 8;
    /// Bits of the argument size.
    pub const SIZEBITS: u32 = 14;
    /// Shift of the number.
    pub const NRSHIFT: u32 = 0;
    /// Shift of the type.
    pub const TYPESHIFT: u32 = NRSHIFT + NRBITS;
    /// Shift of the size.
    pub const SIZESHIFT: u32 = TYPESHIFT + TYPEBITS;
    /// Shift of the direction.
    pub const DIRSHIFT: u32 = SIZESHIFT + SIZEBITS;
    /// No data transfer.
    pub const NONE: u32 = 0;
    /// User space writes, the kernel reads.
    pub const WRITE: u32 = 1;
    /// The kernel writes, user space reads.
    pub const READ: u32 = 2;

    /// `_IOC(dir, type, nr, size)`.
    pub const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
        (dir << DIRSHIFT) | (ty << TYPESHIFT) | (nr << NRSHIFT) | ((size as u32) << SIZESHIFT)
    }
    /// `_IOC_DIR(cmd)`.
    pub const fn dir(cmd: u32) -> u32 {
        (cmd >> DIRSHIFT) & 3
    }
    /// `_IOC_TYPE(cmd)`.
    pub const fn ty(cmd: u32) -> u32 {
        (cmd >> TYPESHIFT) & ((1 << TYPEBITS) - 1)
    }
    /// `_IOC_NR(cmd)`.
    pub const fn nr(cmd: u32) -> u32 {
        (cmd >> NRSHIFT) & ((1 << NRBITS) - 1)
    }
    /// `_IOC_SIZE(cmd)`.
    pub const fn size(cmd: u32) -> usize {
        ((cmd >> SIZESHIFT) & ((1 << SIZEBITS) - 1)) as usize
    }
}

/// A field of a uAPI structure: native-endian bytes at a fixed offset.
pub trait Field: Sized {
    /// Reads the field at `off`, or `None` if `b` is too short.
    fn get(b: &[u8], off: usize) -> Option<Self>;
    /// Writes the field at `off`, or `None` if `b` is too short.
    fn put(&self, b: &mut [u8], off: usize) -> Option<()>;
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            fn get(b: &[u8], off: usize) -> Option<Self> {
                let c = b.get(off..)?.first_chunk::<{ size_of::<$t>() }>()?;
                Some(<$t>::from_ne_bytes(*c))
            }
            fn put(&self, b: &mut [u8], off: usize) -> Option<()> {
                let c = b.get_mut(off..)?.first_chunk_mut::<{ size_of::<$t>() }>()?;
                *c = self.to_ne_bytes();
                Some(())
            }
        }
    )*};
}
int_field!(i32, u32, u64);

impl<T: Field + Copy + Default, const N: usize> Field for [T; N] {
    fn get(b: &[u8], off: usize) -> Option<Self> {
        let mut v = [T::default(); N];
        for (i, e) in v.iter_mut().enumerate() {
            *e = T::get(b, off + i * size_of::<T>())?;
        }
        Some(v)
    }
    fn put(&self, b: &mut [u8], off: usize) -> Option<()> {
        for (i, e) in self.iter().enumerate() {
            e.put(b, off + i * size_of::<T>())?;
        }
        Some(())
    }
}

/// Name, offset and size of a field of a uAPI structure.
pub type FieldLayout = (&'static str, usize, usize);

/// A uAPI structure that converts to and from its wire bytes.
pub trait Wire: Sized + Default {
    /// `sizeof` of the structure in this ABI version.
    const SIZE: usize;
    /// Decodes the first [`Self::SIZE`] bytes of `b`.
    fn decode(b: &[u8]) -> Option<Self>;
    /// Encodes into the first [`Self::SIZE`] bytes of `b`.
    fn encode(&self, b: &mut [u8]) -> Option<()>;
}

/// Defines a `#[repr(C)]` uAPI structure, its [`Wire`] conversions and a
/// compile-time proof that it has no implicit padding.
macro_rules! uapi_struct {
    ($(#[$m:meta])* pub struct $name:ident {
        $($(#[$fm:meta])* pub $f:ident: $t:ty,)*
    }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
        }

        const _: () = assert!(0 $(+ size_of::<$t>())* == size_of::<$name>(),
                              "implicit padding in a uAPI structure");

        impl $name {
            /// Name, offset and size of every field, in declaration order.
            pub const FIELDS: &'static [FieldLayout] = &[
                $((stringify!($f), offset_of!($name, $f), size_of::<$t>()),)*
            ];
        }

        impl Wire for $name {
            const SIZE: usize = size_of::<$name>();
            fn decode(b: &[u8]) -> Option<Self> {
                Some(Self { $($f: Field::get(b, offset_of!($name, $f))?,)* })
            }
            fn encode(&self, b: &mut [u8]) -> Option<()> {
                $(self.$f.put(b, offset_of!($name, $f))?;)*
                Some(())
            }
        }

        impl Field for $name {
            fn get(b: &[u8], off: usize) -> Option<Self> {
                Self::decode(b.get(off..)?)
            }
            fn put(&self, b: &mut [u8], off: usize) -> Option<()> {
                self.encode(b.get_mut(off..)?)
            }
        }
    };
}

uapi_struct! {
    /// Argument of [`NETGPU_IOC_GET_INFO`].
    pub struct NetgpuInfo {
        /// Out: [`NETGPU_ABI_VERSION`] of the running module.
        pub abi_version: u32,
        /// In: must be zero.
        pub flags: u32,
        /// Out: `NETGPU_FEATURE_*` bits of the running module.
        pub features: u64,
        /// Out: granularity, in bytes, of regions and receive buffers.
        pub page_size: u32,
        /// In: must be zero; out: zero.
        pub __pad: u32,
        /// In: must be zero; out: zero.
        pub reserved: [u64; 4],
    }
}

/// First published size of [`NetgpuInfo`].
pub const NETGPU_INFO_SIZE_VER0: usize = 56;

/// `NETGPU_IOC_GET_INFO`: report the ABI version and features.
pub const NETGPU_IOC_GET_INFO: u32 = ioc::ioc(
    ioc::READ | ioc::WRITE,
    NETGPU_IOC_TYPE,
    0x00,
    size_of::<NetgpuInfo>(),
);

uapi_struct! {
    /// Argument of [`NETGPU_IOC_IMPORT_DMABUF`].
    pub struct NetgpuImportDmabuf {
        /// In: file descriptor of the DMA-buf.
        pub fd: i32,
        /// In: must be zero.
        pub flags: u32,
        /// Out: id of the new region.
        pub region_id: u32,
        /// In: must be zero; out: zero.
        pub __pad: u32,
        /// Out: size of the region in bytes, a multiple of the page size.
        pub size: u64,
        /// In: must be zero; out: zero.
        pub reserved: [u64; 2],
    }
}

/// First published size of [`NetgpuImportDmabuf`].
pub const NETGPU_IMPORT_DMABUF_SIZE_VER0: usize = 40;

/// Most regions one context may hold.
pub const NETGPU_MAX_REGIONS: u32 = 64;

/// `NETGPU_IOC_IMPORT_DMABUF`: make a DMA-buf a region of the context.
pub const NETGPU_IOC_IMPORT_DMABUF: u32 = ioc::ioc(
    ioc::READ | ioc::WRITE,
    NETGPU_IOC_TYPE,
    0x01,
    size_of::<NetgpuImportDmabuf>(),
);

uapi_struct! {
    /// Argument of [`NETGPU_IOC_IMPORT_P2PMEM`].
    pub struct NetgpuImportP2pmem {
        /// In: start of the memory in the caller's address space, page aligned.
        pub addr: u64,
        /// In: length in bytes, a nonzero multiple of the page size.
        pub size: u64,
        /// In: must be zero.
        pub flags: u32,
        /// Out: id of the new region.
        pub region_id: u32,
        /// In: must be zero; out: zero.
        pub reserved: [u64; 2],
    }
}

/// First published size of [`NetgpuImportP2pmem`].
pub const NETGPU_IMPORT_P2PMEM_SIZE_VER0: usize = 40;

/// `NETGPU_IOC_IMPORT_P2PMEM`: make PCI P2PDMA memory mapped in the caller's
/// address space (a p2pmem provider's `p2pmem/allocate` file) a region.
pub const NETGPU_IOC_IMPORT_P2PMEM: u32 = ioc::ioc(
    ioc::READ | ioc::WRITE,
    NETGPU_IOC_TYPE,
    0x09,
    size_of::<NetgpuImportP2pmem>(),
);

/// Most entries of a ring.
pub const NETGPU_MAX_RING_ENTRIES: u32 = 32768;

/// `mmap()` offset of the completion ring.
pub const NETGPU_MMAP_CQ: u64 = 0x0;
/// `mmap()` offset of the refill ring.
pub const NETGPU_MMAP_RQ: u64 = 0x1000_0000;

uapi_struct! {
    /// Where a ring lives, reported by [`NETGPU_IOC_SETUP_RINGS`].
    pub struct NetgpuRingOffsets {
        /// Offset argument of `mmap()` for this ring.
        pub mmap_offset: u64,
        /// Length argument of `mmap()` for this ring.
        pub mmap_size: u64,
        /// Byte offset of the `u32` head in the mapping.
        pub head: u32,
        /// Byte offset of the `u32` tail in the mapping.
        pub tail: u32,
        /// Byte offset of the kernel's `u32` drop counter in the mapping.
        pub dropped: u32,
        /// Byte offset of the entry array in the mapping.
        pub entries: u32,
        /// Number of entries, a power of two.
        pub ring_entries: u32,
        /// Out: zero.
        pub __pad: u32,
    }
}

uapi_struct! {
    /// A completion: payload bytes that landed in a region.
    pub struct NetgpuCqe {
        /// Byte offset of the payload in the region.
        pub offset: u64,
        /// Length of the payload in bytes; 0 only with [`NETGPU_CQE_EOF`].
        pub len: u32,
        /// `NETGPU_CQE_*` bits.
        pub flags: u32,
        /// The region.
        pub region_id: u32,
        /// The attached socket the bytes were received on.
        pub socket_id: u32,
        /// Zero.
        pub reserved: u64,
    }
}

/// The bytes were copied by the CPU, not written by the NIC.
pub const NETGPU_CQE_COPY: u32 = 1 << 0;
/// The peer closed the stream; nothing follows on this socket.
pub const NETGPU_CQE_EOF: u32 = 1 << 1;

uapi_struct! {
    /// A returned buffer.
    pub struct NetgpuRqe {
        /// Any byte offset inside the buffer, as a completion reported it.
        pub offset: u64,
        /// The region.
        pub region_id: u32,
        /// Ignored.
        pub __pad: u32,
    }
}

uapi_struct! {
    /// Argument of [`NETGPU_IOC_SETUP_RINGS`].
    pub struct NetgpuSetupRings {
        /// In: entries of the completion ring.
        pub cq_entries: u32,
        /// In: entries of the refill ring.
        pub rq_entries: u32,
        /// In: must be zero.
        pub flags: u32,
        /// In: must be zero; out: zero.
        pub __pad: u32,
        /// Out: the completion ring.
        pub cq: NetgpuRingOffsets,
        /// Out: the refill ring.
        pub rq: NetgpuRingOffsets,
        /// In: must be zero; out: zero.
        pub reserved: [u64; 2],
    }
}

/// First published size of [`NetgpuSetupRings`].
pub const NETGPU_SETUP_RINGS_SIZE_VER0: usize = 112;

/// `NETGPU_IOC_SETUP_RINGS`: create the completion and refill rings.
pub const NETGPU_IOC_SETUP_RINGS: u32 = ioc::ioc(
    ioc::READ | ioc::WRITE,
    NETGPU_IOC_TYPE,
    0x02,
    size_of::<NetgpuSetupRings>(),
);

uapi_struct! {
    /// Argument of [`NETGPU_IOC_BIND_QUEUE`].
    pub struct NetgpuBindQueue {
        /// In: the network device, in the caller's network namespace.
        pub ifindex: u32,
        /// In: index of its RX queue.
        pub queue: u32,
        /// In: the region that receives the queue's payload.
        pub region_id: u32,
        /// In: must be zero.
        pub flags: u32,
        /// Out: id of the new binding.
        pub binding_id: u32,
        /// In: must be zero; out: zero.
        pub __pad: u32,
        /// In: must be zero; out: zero.
        pub reserved: [u64; 2],
    }
}

/// First published size of [`NetgpuBindQueue`].
pub const NETGPU_BIND_QUEUE_SIZE_VER0: usize = 40;

/// `NETGPU_IOC_BIND_QUEUE`: make a region the memory provider of an RX queue.
pub const NETGPU_IOC_BIND_QUEUE: u32 = ioc::ioc(
    ioc::READ | ioc::WRITE,
    NETGPU_IOC_TYPE,
    0x03,
    size_of::<NetgpuBindQueue>(),
);

uapi_struct! {
    /// Argument of [`NETGPU_IOC_UNBIND_QUEUE`].
    pub struct NetgpuUnbindQueue {
        /// In: the binding.
        pub binding_id: u32,
        /// In: must be zero.
        pub flags: u32,
        /// In: must be zero.
        pub reserved: [u64; 2],
    }
}

/// First published size of [`NetgpuUnbindQueue`].
pub const NETGPU_UNBIND_QUEUE_SIZE_VER0: usize = 24;

/// `NETGPU_IOC_UNBIND_QUEUE`: remove a binding's provider from its queue.
pub const NETGPU_IOC_UNBIND_QUEUE: u32 = ioc::ioc(
    ioc::WRITE,
    NETGPU_IOC_TYPE,
    0x04,
    size_of::<NetgpuUnbindQueue>(),
);

uapi_struct! {
    /// Argument of [`NETGPU_IOC_ATTACH_SOCKET`].
    pub struct NetgpuAttachSocket {
        /// In: a connected TCP socket.
        pub fd: i32,
        /// In: must be zero.
        pub flags: u32,
        /// Out: id of the attached socket.
        pub socket_id: u32,
        /// In: must be zero; out: zero.
        pub __pad: u32,
        /// In: must be zero; out: zero.
        pub reserved: [u64; 2],
    }
}

/// First published size of [`NetgpuAttachSocket`].
pub const NETGPU_ATTACH_SOCKET_SIZE_VER0: usize = 32;

/// Most sockets one context may attach.
pub const NETGPU_MAX_SOCKETS: u32 = 1024;

/// `NETGPU_IOC_ATTACH_SOCKET`: receive a TCP socket's stream through the context.
pub const NETGPU_IOC_ATTACH_SOCKET: u32 = ioc::ioc(
    ioc::READ | ioc::WRITE,
    NETGPU_IOC_TYPE,
    0x05,
    size_of::<NetgpuAttachSocket>(),
);

uapi_struct! {
    /// Argument of [`NETGPU_IOC_DETACH_SOCKET`].
    pub struct NetgpuDetachSocket {
        /// In: the attached socket.
        pub socket_id: u32,
        /// In: must be zero.
        pub flags: u32,
        /// In: must be zero.
        pub reserved: [u64; 2],
    }
}

/// First published size of [`NetgpuDetachSocket`].
pub const NETGPU_DETACH_SOCKET_SIZE_VER0: usize = 24;

/// `NETGPU_IOC_DETACH_SOCKET`: drop the context's reference to a socket.
pub const NETGPU_IOC_DETACH_SOCKET: u32 = ioc::ioc(
    ioc::WRITE,
    NETGPU_IOC_TYPE,
    0x06,
    size_of::<NetgpuDetachSocket>(),
);

uapi_struct! {
    /// Argument of [`NETGPU_IOC_RECV`].
    pub struct NetgpuRecv {
        /// In: the attached socket.
        pub socket_id: u32,
        /// In: `NETGPU_RECV_*` bits.
        pub flags: u32,
        /// In: most payload bytes to complete.
        pub max_bytes: u64,
        /// Out: payload bytes completed.
        pub bytes: u64,
        /// Out: completions posted.
        pub completions: u32,
        /// In: must be zero; out: zero.
        pub __pad: u32,
        /// In: must be zero; out: zero.
        pub reserved: [u64; 2],
    }
}

/// Do not wait for data.
pub const NETGPU_RECV_NONBLOCK: u32 = 1 << 0;

/// First published size of [`NetgpuRecv`].
pub const NETGPU_RECV_SIZE_VER0: usize = 48;

/// `NETGPU_IOC_RECV`: receive from an attached socket into completions.
pub const NETGPU_IOC_RECV: u32 = ioc::ioc(
    ioc::READ | ioc::WRITE,
    NETGPU_IOC_TYPE,
    0x07,
    size_of::<NetgpuRecv>(),
);

uapi_struct! {
    /// Argument of [`NETGPU_IOC_GET_STATS`].
    pub struct NetgpuStats {
        /// In: 0 for the whole context, else one of its bindings.
        pub binding_id: u32,
        /// In: must be zero.
        pub flags: u32,
        /// Out: payload bytes completed where the NIC wrote them.
        pub zc_bytes: u64,
        /// Out: payload bytes completed by the copy fallback.
        pub copy_bytes: u64,
        /// Out: refill entries that named no held buffer.
        pub refill_errors: u64,
        /// Out: times a page pool found no free buffer.
        pub alloc_failures: u64,
        /// Out: times a receive stopped at a full completion ring.
        pub cq_overflows: u64,
        /// Out: times a receive met payload it must not expose.
        pub foreign_frags: u64,
        /// Out: zero.
        pub reserved: [u64; 4],
    }
}

/// First published size of [`NetgpuStats`].
pub const NETGPU_STATS_SIZE_VER0: usize = 88;

/// `NETGPU_IOC_GET_STATS`: read the counters of the context or a binding.
pub const NETGPU_IOC_GET_STATS: u32 = ioc::ioc(
    ioc::READ | ioc::WRITE,
    NETGPU_IOC_TYPE,
    0x08,
    size_of::<NetgpuStats>(),
);
