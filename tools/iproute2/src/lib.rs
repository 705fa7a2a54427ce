// SPDX-License-Identifier: GPL-2.0

//! iproute2 plugin for netgpu-sim, so that
//!
//! ```text
//! IP_LIB_DIR=<dir> ip link add ngs0 numrxqueues 4 numtxqueues 4 type netgpu-sim \
//!     [dma-dev PCI_FUNCTION] peer name ngs1
//! ```
//!
//! works with a stock `ip`. For a link kind it has no built-in parser for, `ip` loads
//! `$IP_LIB_DIR/link_<kind>.so` and looks up the symbol `<kind>_link_util`. netgpu-sim's
//! peer attribute has the number and layout of veth's (`VETH_INFO_PEER`: an `ifinfomsg`
//! followed by link attributes), so the peer options are parsed by the `ip` binary's own
//! veth parser, found in the executable's dynamic symbol table. `dma-dev` (attribute 2, a
//! string) names the PCI function, bound to netgpu_sim, that the pair sits on.
//!
//! `tools/iproute2/install.sh` builds this crate and installs the library under the name
//! `ip` looks for.

use core::ffi::{c_char, c_int, c_void};
use core::ptr;

/// The head of iproute2's `struct link_util`. The fields after `print_help` are
/// optional callbacks that stay null.
#[repr(C)]
pub struct LinkUtil {
    next: *mut LinkUtil,
    id: *const c_char,
    maxattr: c_int,
    parse_opt:
        Option<unsafe extern "C" fn(*mut LinkUtil, c_int, *mut *mut c_char, *mut c_void) -> c_int>,
    print_opt: Option<unsafe extern "C" fn(*mut LinkUtil, *mut c_void, *mut *mut c_void)>,
    print_xstats: Option<unsafe extern "C" fn(*mut LinkUtil, *mut c_void, *mut c_void)>,
    print_help: Option<unsafe extern "C" fn(*mut LinkUtil, c_int, *mut *mut c_char, *mut c_void)>,
    rest: [*const c_void; 8],
}

// SAFETY: `ip` is single threaded; it only links the entry into its list.
unsafe impl Sync for LinkUtil {}

fn veth() -> Option<&'static LinkUtil> {
    // SAFETY: a lookup in the global symbol table of the process; `veth_link_util` is a
    // `struct link_util` in iproute2.
    unsafe {
        libc::dlsym(libc::RTLD_DEFAULT, c"veth_link_util".as_ptr())
            .cast::<LinkUtil>()
            .as_ref()
    }
}

/// `IFLA_INFO_DATA` attribute naming the pair's PCI function.
const INFO_DMA_DEV: c_int = 2;

/// iproute2's `addattr_l(n, maxlen, type, data, alen)`.
type AddAttr = unsafe extern "C" fn(*mut c_void, c_int, c_int, *const c_void, c_int) -> c_int;

fn addattr_l() -> Option<AddAttr> {
    // SAFETY: a lookup in the global symbol table of the process.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"addattr_l".as_ptr()) };
    // SAFETY: iproute2's `addattr_l` has this signature.
    (!f.is_null()).then(|| unsafe { core::mem::transmute::<*mut c_void, AddAttr>(f) })
}

unsafe extern "C" fn parse_opt(
    _lu: *mut LinkUtil,
    mut argc: c_int,
    mut argv: *mut *mut c_char,
    n: *mut c_void,
) -> c_int {
    // SAFETY: `argv` has `argc` valid C strings.
    let arg = |i: usize| unsafe { core::ffi::CStr::from_ptr(*argv.add(i)) };
    if argc >= 1 && arg(0) == c"dma-dev" {
        if argc < 2 {
            eprintln!("netgpu-sim: dma-dev needs a PCI function, e.g. 0000:03:00.0");
            return -1;
        }
        let Some(add) = addattr_l() else {
            eprintln!("netgpu-sim: this ip has no addattr_l to borrow");
            return -1;
        };
        let bdf = arg(1).to_bytes_with_nul();
        // SAFETY: `n` is the request `ip` is building (1024 bytes of room for
        // attributes, as its own parsers assume); `bdf` is a C string of that length.
        if unsafe {
            add(
                n,
                1024,
                INFO_DMA_DEV,
                bdf.as_ptr().cast(),
                bdf.len() as c_int,
            )
        } != 0
        {
            return -1;
        }
        argc -= 2;
        // SAFETY: skips the two arguments just parsed.
        argv = unsafe { argv.add(2) };
        if argc == 0 {
            return 0;
        }
    }
    match veth().and_then(|v| v.parse_opt.map(|f| (v, f))) {
        // SAFETY: same arguments `ip` passed us, to a parser for the same attribute layout.
        Some((v, f)) => unsafe { f(ptr::from_ref(v).cast_mut(), argc, argv, n) },
        None => {
            eprintln!("netgpu-sim: this ip has no veth parser to borrow");
            -1
        }
    }
}

unsafe extern "C" fn print_help(
    _lu: *mut LinkUtil,
    _argc: c_int,
    _argv: *mut *mut c_char,
    _f: *mut c_void,
) {
    eprintln!("Usage: ip link <options> type netgpu-sim [dma-dev PCI_FUNCTION] [peer <options>]");
}

/// The entry `ip` looks up: `<kind>_link_util`.
#[export_name = "netgpu-sim_link_util"]
pub static mut NETGPU_SIM_LINK_UTIL: LinkUtil = LinkUtil {
    next: ptr::null_mut(),
    id: c"netgpu-sim".as_ptr(),
    maxattr: 2,
    parse_opt: Some(parse_opt),
    print_opt: None,
    print_xstats: None,
    print_help: Some(print_help),
    rest: [ptr::null(); 8],
};
