// SPDX-License-Identifier: GPL-2.0

//! A borrowed view of a received skb, for a `tcp_read_sock` actor.
//!
//! C header: [`include/linux/skbuff.h`](srctree/include/linux/skbuff.h).

use kernel::{bindings, prelude::*, types::Opaque};

use super::netmem::{NetIov, Netmem};

/// An skb on a socket's receive queue, borrowed for the duration of a
/// `tcp_read_sock` actor call.
///
/// # Invariants
///
/// A `&Skb` points to an skb that the socket lock keeps on the receive
/// queue (or on the frag list of one that is) and that nobody modifies
/// while the reference exists.
#[repr(transparent)]
pub(crate) struct Skb(Opaque<bindings::sk_buff>);

/// One page fragment of an skb.
pub(crate) struct Frag<'a> {
    netmem: Netmem,
    /// Offset of the fragment's data in its page or net_iov.
    pub(crate) off: u32,
    /// Length of the fragment.
    pub(crate) len: u32,
    _skb: core::marker::PhantomData<&'a Skb>,
}

impl<'a> Frag<'a> {
    /// The net_iov holding the fragment, if it is one (and not a page).
    pub(crate) fn net_iov(&self) -> Option<&'a NetIov> {
        if !self.netmem.is_net_iov() {
            return None;
        }
        // SAFETY: a net_iov netmem; the helper clears the tag bit. The skb
        // holds a reference to it for `'a`.
        let niov = unsafe { bindings::netmem_to_net_iov(self.netmem.0) };
        // SAFETY: `NetIov` is transparent over `struct net_iov`, alive for
        // `'a` (see above).
        Some(unsafe { &*niov.cast::<NetIov>() })
    }

    /// The fragment's netmem.
    pub(crate) fn netmem(&self) -> Netmem {
        self.netmem
    }
}

impl Skb {
    /// Wraps an skb an actor got.
    ///
    /// # Safety
    ///
    /// `skb` must satisfy the type invariant for `'a`.
    pub(crate) unsafe fn from_raw<'a>(skb: *mut bindings::sk_buff) -> &'a Self {
        // SAFETY: transparent; the caller guarantees validity.
        unsafe { &*skb.cast() }
    }

    fn raw(&self) -> *mut bindings::sk_buff {
        self.0.get()
    }

    fn shinfo(&self) -> *mut bindings::skb_shared_info {
        // SAFETY: the skb is alive; the helper computes a pointer into it.
        unsafe { bindings::skb_shinfo(self.raw()) }
    }

    /// Length of the data (linear part, fragments and frag list).
    pub(crate) fn len(&self) -> u32 {
        // SAFETY: the skb is alive and not modified (type invariant).
        unsafe { (*self.raw()).len }
    }

    /// Length of the linear part.
    pub(crate) fn headlen(&self) -> u32 {
        // SAFETY: as in `len`.
        unsafe { (*self.raw()).len - (*self.raw()).data_len }
    }

    /// The page fragments, in order.
    pub(crate) fn frags(&self) -> impl Iterator<Item = Frag<'_>> + '_ {
        let sh = self.shinfo();
        // SAFETY: the shared info of a live skb; `nr_frags` frags are valid.
        let n = unsafe { (*sh).nr_frags } as usize;
        (0..n).map(move |i| {
            // SAFETY: `i < nr_frags`, within the `frags` array.
            let f = unsafe { &(*sh).frags[i] };
            Frag {
                netmem: Netmem(f.netmem),
                off: f.offset,
                len: f.len,
                _skb: core::marker::PhantomData,
            }
        })
    }

    /// The skbs on the frag list (GRO), in order.
    pub(crate) fn frag_list(&self) -> impl Iterator<Item = &Skb> + '_ {
        // SAFETY: the shared info of a live skb.
        let mut next = unsafe { (*self.shinfo()).frag_list };
        core::iter::from_fn(move || {
            if next.is_null() {
                return None;
            }
            // SAFETY: members of a frag list live as long as its head.
            let s = unsafe { Skb::from_raw(next) };
            // SAFETY: as above.
            next = unsafe { (*next).__bindgen_anon_1.__bindgen_anon_1.next };
            Some(s)
        })
    }

    /// Copies `dst.len()` bytes from offset `off` of the skb's data, which
    /// must be readable by the CPU there, into `dst`.
    pub(crate) fn copy_to(&self, off: u32, dst: &mut [u8]) -> Result {
        let len = i32::try_from(dst.len()).map_err(|_| EINVAL)?;
        let off = i32::try_from(off).map_err(|_| EINVAL)?;
        // SAFETY: `dst` is valid for `len` bytes of writes; `skb_copy_bits()`
        // checks the source range and fails on fragments the CPU cannot read.
        let ret = unsafe { bindings::skb_copy_bits(self.raw(), off, dst.as_mut_ptr().cast(), len) };
        kernel::error::to_result(ret)
    }
}
