// SPDX-License-Identifier: GPL-2.0

//! netgpu-sim on a PCI function.
//!
//! By default a pair's DMA device is a faux device: it reaches system memory only. A pair
//! can instead sit on a PCI function bound to this driver (it has no ID table: bind a
//! function with `driver_override`) and named at creation:
//!
//! ```text
//! echo netgpu_sim > /sys/bus/pci/devices/0000:03:00.0/driver_override
//! echo 0000:03:00.0 > /sys/bus/pci/drivers_probe
//! ip link add ngs0 type netgpu-sim dma-dev 0000:03:00.0 peer name ngs1
//! ```
//!
//! The pair then maps memory for that function, as a PCI NIC does, and DMA-bufs of PCI
//! BARs (vfio-pci) map for it peer to peer where the PCI topology allows. The DMA engine
//! reaches such BARs through [`P2pWindows`]: the memory BARs of every function the pair's
//! function reaches peer to peer, mapped when the pair is created.
//!
//! A pair holds a reference on its function's `struct device`. Delete the pairs before
//! unbinding the function: the driver does not delete them on unbind.

use core::ffi::c_void;
use core::ptr;

use kernel::bindings;
use kernel::device::Core;
use kernel::dma::{Device as _, DmaMask};
use kernel::pci;
use kernel::prelude::*;
use kernel::sync::aref::ARef;

use crate::netdev::Skb;

/// The driver's name, for `driver_override`.
pub(crate) const DRIVER_NAME: &CStr = c"netgpu_sim";

/// The PCI driver: enables the function for DMA.
pub(crate) struct SimPci;

kernel::pci_device_table!(PCI_TABLE, <SimPci as pci::Driver>::IdInfo, []);

impl pci::Driver for SimPci {
    type IdInfo = ();
    type Data<'bound> = ();

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _id_info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pdev.enable_device_mem()?;
        pdev.set_master();
        // SAFETY: called in probe, before any DMA mapping for the function.
        unsafe { pdev.dma_set_mask_and_coherent(DmaMask::new::<64>())? };
        dev_info!(pdev, "netgpu-sim DMA function\n");
        Ok(())
    }
}

/// The `struct pci_dev` of `pdev`.
fn raw(pdev: &pci::Device) -> *mut bindings::pci_dev {
    // `pci::Device` is a transparent wrapper of `struct pci_dev`; the kernel crate's own
    // `as_raw` is not public.
    ptr::from_ref(pdev).cast_mut().cast()
}

/// The `struct device` of `pdev`, for the C API.
pub(crate) fn device_ptr(pdev: &pci::Device) -> *mut bindings::device {
    // SAFETY: `pdev` is a valid PCI device; this only computes a field address.
    unsafe { &raw mut (*raw(pdev)).dev }
}

/// The PCI function named `name`, if it is bound to this driver.
pub(crate) fn bound_function(name: &CStr) -> Result<ARef<pci::Device>> {
    // SAFETY: `pci_bus_type` is the registered PCI bus; `name` is a valid C string; the
    // match function compares device names. Returns a referenced device or null.
    let dev = unsafe {
        bindings::bus_find_device(
            &raw const bindings::pci_bus_type,
            ptr::null_mut(),
            name.as_char_ptr().cast(),
            Some(bindings::device_match_name),
        )
    };
    if dev.is_null() {
        return Err(ENODEV);
    }
    // SAFETY: `bus_find_device` returned a device with a reference we now own; it is on
    // the PCI bus, so it is the `dev` of a `struct pci_dev`, which `pci::Device` wraps.
    let pdev: ARef<pci::Device> = unsafe {
        let p = kernel::container_of!(dev, bindings::pci_dev, dev);
        ARef::from_raw(ptr::NonNull::new_unchecked(p.cast::<pci::Device>()))
    };
    // SAFETY: the device is alive (we hold a reference); `driver` is read once, and the
    // name of a registered driver is a static string.
    let ours = unsafe {
        let drv = (*dev).driver;
        !drv.is_null() && CStr::from_char_ptr((*drv).name) == DRIVER_NAME
    };
    if !ours {
        return Err(EBUSY);
    }
    Ok(pdev)
}

/// A memory BAR of another function, mapped for the DMA engine.
struct Window {
    start: u64,
    len: u64,
    va: *mut c_void,
}

/// The memory BARs a PCI function reaches peer to peer (`pci_p2pdma_distance_many`), mapped
/// uncached like the BAR owner's own mappings.
///
/// # Invariants
///
/// Each window's `va` maps `len` bytes of MMIO at CPU physical address `start`, until drop.
pub(crate) struct P2pWindows(KVec<Window>);

// SAFETY: the mappings are only written through `memcpy_toio`, from any CPU.
unsafe impl Send for P2pWindows {}
// SAFETY: see above.
unsafe impl Sync for P2pWindows {}

impl P2pWindows {
    /// No windows: a faux DMA device reaches no BAR.
    pub(crate) fn none() -> Self {
        P2pWindows(KVec::new())
    }

    /// Maps the memory BARs of every other function `client` reaches peer to peer.
    pub(crate) fn of(client: &pci::Device) -> Result<Self> {
        let me = raw(client);
        let mut w = P2pWindows(KVec::new());
        let mut from: *mut bindings::pci_dev = ptr::null_mut();
        loop {
            // SAFETY: iterates the PCI devices; drops the reference on `from` and returns
            // the next device with a reference, or null at the end.
            from = unsafe { bindings::pci_get_device(!0, !0, from) };
            if from.is_null() {
                break;
            }
            if from == me {
                continue;
            }
            if let Err(e) = w.add_function(from, me) {
                // SAFETY: the reference `pci_get_device` returned.
                unsafe { bindings::pci_dev_put(from) };
                return Err(e);
            }
        }
        Ok(w)
    }

    fn add_function(
        &mut self,
        provider: *mut bindings::pci_dev,
        client: *mut bindings::pci_dev,
    ) -> Result {
        // SAFETY: both devices are referenced; `clients` is an array of one device.
        let dist = unsafe {
            let mut clients = [&raw mut (*client).dev];
            bindings::pci_p2pdma_distance_many(provider, clients.as_mut_ptr(), 1, false)
        };
        // SAFETY: `provider` is referenced; bridges forward, they hold no memory of their own.
        if dist < 0 || unsafe { !(*provider).subordinate.is_null() } {
            return Ok(());
        }
        for bar in 0..bindings::PCI_STD_NUM_BARS as usize {
            // SAFETY: `provider` is referenced; its standard resources are plain data.
            let (start, end, flags) = unsafe {
                let r = &(*provider).resource[bar];
                (r.start, r.end, r.flags)
            };
            if flags & bindings::IORESOURCE_MEM as usize == 0 || end <= start {
                continue;
            }
            let len = end - start + 1;
            // SAFETY: maps an assigned memory BAR, uncached (the mode its driver uses).
            let va = unsafe { bindings::ioremap(start, len as usize) };
            if va.is_null() {
                return Err(ENOMEM);
            }
            let win = Window { start, len, va };
            if let Err(e) = self.0.push(win, GFP_KERNEL) {
                // SAFETY: mapped above, not stored.
                unsafe { bindings::iounmap(va) };
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// The window holding `len` bytes at physical address `phys`.
    fn find(&self, phys: u64, len: usize) -> Option<&Window> {
        self.0
            .iter()
            .find(|w| phys >= w.start && phys + len as u64 <= w.start + w.len)
    }

    /// Whether `len` bytes at physical address `phys` are in a window.
    pub(crate) fn covers(&self, phys: u64, len: usize) -> bool {
        self.find(phys, len).is_some()
    }

    /// Writes `len` bytes of `wire` from `off` to physical address `phys` of a window.
    pub(crate) fn write(&self, phys: u64, wire: &Skb, off: usize, len: usize) -> Result {
        let w = self.find(phys, len).ok_or(EFAULT)?;
        let mut chunk = [0u8; 256];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk.len());
            wire.copy_bits(off + done, &mut chunk[..n])?;
            // SAFETY: `phys + done + n` is inside the window (checked above), which `va`
            // maps by the type invariant.
            unsafe {
                bindings::memcpy_toio(
                    w.va.add((phys - w.start) as usize + done),
                    chunk.as_ptr().cast(),
                    n,
                )
            };
            done += n;
        }
        Ok(())
    }
}

impl Drop for P2pWindows {
    fn drop(&mut self) {
        for w in self.0.iter() {
            // SAFETY: mapped by `add_function`, unmapped once.
            unsafe { bindings::iounmap(w.va) };
        }
    }
}
