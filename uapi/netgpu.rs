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
/// Regions backed by PCI P2PDMA memory.
pub const NETGPU_FEATURE_P2PDMA: u64 = 1 << 1;
/// Completion and refill rings.
pub const NETGPU_FEATURE_RINGS: u64 = 1 << 2;
/// RX queue binding.
pub const NETGPU_FEATURE_BIND_QUEUE: u64 = 1 << 3;
/// TCP socket receive.
pub const NETGPU_FEATURE_TCP_RECV: u64 = 1 << 4;
/// All feature bits this ABI version defines.
pub const NETGPU_FEATURES_KNOWN: u64 = (1 << 5) - 1;

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
int_field!(u32, u64);

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
