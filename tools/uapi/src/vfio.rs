// SPDX-License-Identifier: GPL-2.0

//! PCI BAR memory exported as a DMA-buf by vfio-pci: device memory of the
//! kind a GPU's BAR holds, without a GPU.
//!
//! Without an IOMMU (as in the test guest) the function is opened in vfio's
//! no-IOMMU mode, which taints the kernel; exporting a BAR as a DMA-buf
//! (`VFIO_DEVICE_FEATURE_DMA_BUF`) works the same as with an IOMMU. Such a
//! DMA-buf maps only peer to peer, for a PCI device that reaches the BAR,
//! and vfio-pci revokes it when the function's memory goes away: memory
//! decoding turned off ([`VfioFunction::set_memory_enabled`]), a reset, or
//! the function unbound.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::raw_ioctl;

/// `_IO(VFIO_TYPE, VFIO_BASE + n)`.
const fn vfio_io(n: u32) -> u32 {
    ((b';' as u32) << 8) | (100 + n)
}
const VFIO_SET_IOMMU: u32 = vfio_io(2);
const VFIO_GROUP_SET_CONTAINER: u32 = vfio_io(4);
const VFIO_GROUP_GET_DEVICE_FD: u32 = vfio_io(6);
const VFIO_DEVICE_FEATURE: u32 = vfio_io(17);
const VFIO_NOIOMMU_IOMMU: usize = 8;
const VFIO_DEVICE_FEATURE_GET: u32 = 1 << 16;
const VFIO_DEVICE_FEATURE_DMA_BUF: u32 = 11;
/// Region index of the PCI config space.
const VFIO_PCI_CONFIG_REGION_INDEX: u32 = 7;
const PCI_COMMAND: u64 = 4;
const PCI_COMMAND_MEMORY: u16 = 2;

const PCI_DEVICES: &str = "/sys/bus/pci/devices";
const NOIOMMU_PARAM: &str = "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode";

/// The address of the first PCI function with `vendor:device`, if any.
pub fn find_function(vendor: u16, device: u16) -> io::Result<Option<String>> {
    let id = |dir: &Path, f: &str| -> io::Result<String> {
        Ok(fs::read_to_string(dir.join(f))?.trim().to_string())
    };
    let mut first: Option<String> = None;
    for e in fs::read_dir(PCI_DEVICES)? {
        let dir = e?.path();
        if id(&dir, "vendor")? == format!("{vendor:#06x}")
            && id(&dir, "device")? == format!("{device:#06x}")
        {
            let name = file_name(&dir);
            if first.as_ref().is_none_or(|f| name < *f) {
                first = Some(name);
            }
        }
    }
    Ok(first)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn open_rw(path: &str) -> io::Result<OwnedFd> {
    let f = fs::OpenOptions::new().read(true).write(true).open(path)?;
    Ok(OwnedFd::from(f))
}

/// A PCI function bound to vfio-pci and opened through its no-IOMMU group.
/// Closing it revokes the DMA-bufs it exported.
pub struct VfioFunction {
    device: OwnedFd,
    _group: OwnedFd,
    _container: OwnedFd,
}

impl VfioFunction {
    /// Binds PCI function `bdf` to vfio-pci (in no-IOMMU mode) and opens it.
    pub fn open(bdf: &str) -> io::Result<Self> {
        fs::write(NOIOMMU_PARAM, "1")
            .map_err(|e| io::Error::new(e.kind(), format!("{NOIOMMU_PARAM}: {e}")))?;
        let dev = Path::new(PCI_DEVICES).join(bdf);
        let driver = fs::read_link(dev.join("driver"))
            .ok()
            .map(|d| file_name(&d));
        if driver.as_deref() != Some("vfio-pci") {
            if driver.is_some() {
                fs::write(dev.join("driver/unbind"), bdf)?;
            }
            fs::write(dev.join("driver_override"), "vfio-pci")?;
            fs::write("/sys/bus/pci/drivers_probe", bdf)?;
        }
        let group = file_name(&fs::read_link(dev.join("iommu_group")).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{bdf} has no IOMMU group after binding to vfio-pci"),
            )
        })?);
        let container = open_rw("/dev/vfio/vfio")?;
        let group = open_rw(&format!("/dev/vfio/noiommu-{group}"))?;
        let mut cfd: libc::c_int = container.as_raw_fd();
        // SAFETY: VFIO_GROUP_SET_CONTAINER reads an int, the container's fd.
        unsafe {
            raw_ioctl(
                group.as_raw_fd(),
                VFIO_GROUP_SET_CONTAINER,
                (&raw mut cfd).cast(),
            )
        }?;
        let iommu = std::ptr::without_provenance_mut(VFIO_NOIOMMU_IOMMU);
        // SAFETY: VFIO_SET_IOMMU takes the IOMMU type as its argument.
        unsafe { raw_ioctl(container.as_raw_fd(), VFIO_SET_IOMMU, iommu) }?;
        let name = std::ffi::CString::new(bdf).map_err(io::Error::other)?;
        // SAFETY: VFIO_GROUP_GET_DEVICE_FD reads a NUL-terminated name.
        let fd = unsafe {
            raw_ioctl(
                group.as_raw_fd(),
                VFIO_GROUP_GET_DEVICE_FD,
                name.as_ptr().cast_mut().cast(),
            )
        }?;
        // SAFETY: the ioctl returned a new file descriptor that we own.
        let device = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(VfioFunction {
            device,
            _group: group,
            _container: container,
        })
    }

    /// Exports `len` bytes at `offset` of BAR `bar` as a DMA-buf.
    pub fn dmabuf(&self, bar: u32, offset: u64, len: u64) -> io::Result<OwnedFd> {
        // struct vfio_device_feature, then struct vfio_device_feature_dma_buf
        // with one struct vfio_region_dma_range.
        let mut buf = [0u8; 40];
        let words: [u32; 6] = [
            buf.len() as u32,
            VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF,
            bar,
            (libc::O_RDWR | libc::O_CLOEXEC) as u32,
            0,
            1,
        ];
        for (i, w) in words.iter().enumerate() {
            buf[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
        }
        buf[24..32].copy_from_slice(&offset.to_ne_bytes());
        buf[32..40].copy_from_slice(&len.to_ne_bytes());
        // SAFETY: VFIO_DEVICE_FEATURE reads and writes `argsz` (the first
        // word: `buf.len()`) bytes of `buf`.
        let fd = unsafe {
            raw_ioctl(
                self.device.as_raw_fd(),
                VFIO_DEVICE_FEATURE,
                buf.as_mut_ptr().cast(),
            )
        }?;
        // SAFETY: the ioctl returned a new file descriptor that we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// The function's open files, to keep it open (and its DMA-bufs valid)
    /// without the rest of `self`.
    pub fn into_fds(self) -> Vec<OwnedFd> {
        vec![self.device, self._group, self._container]
    }

    /// The device fd, whose region `i` is mapped at [`Self::region_offset`].
    pub fn fd(&self) -> RawFd {
        self.device.as_raw_fd()
    }

    /// Offset of region (BAR) `i` in the device fd, for `mmap` and `pread`.
    pub fn region_offset(i: u32) -> u64 {
        u64::from(i) << 40
    }

    /// Turns memory decoding of the function on or off, through vfio's
    /// config space emulation. Off revokes the function's DMA-bufs.
    pub fn set_memory_enabled(&self, on: bool) -> io::Result<()> {
        let off = Self::region_offset(VFIO_PCI_CONFIG_REGION_INDEX) + PCI_COMMAND;
        let mut cmd = [0u8; 2];
        let f = fs::File::from(self.device.try_clone()?);
        f.read_exact_at(&mut cmd, off)?;
        let mut v = u16::from_le_bytes(cmd);
        if on {
            v |= PCI_COMMAND_MEMORY;
        } else {
            v &= !PCI_COMMAND_MEMORY;
        }
        f.write_all_at(&v.to_le_bytes(), off)
    }
}
