// SPDX-License-Identifier: GPL-2.0

//! TCP sockets attached to a context, and the `tcp_read_sock` glue.
//!
//! C headers: [`include/net/sock.h`](srctree/include/net/sock.h),
//! [`include/net/tcp.h`](srctree/include/net/tcp.h).

use core::ptr::NonNull;

use kernel::{
    bindings,
    fs::{File, LocalFile},
    prelude::*,
    sync::aref::ARef,
};

use super::skb::Skb;

/// A receiver of stream data from `tcp_read_sock`.
pub(crate) trait Receiver {
    /// Takes up to `len` bytes of `skb` from `offset`; returns how many it
    /// took. Taking fewer ends the read; an error ends it with nothing
    /// taken from this call.
    fn recv(&mut self, skb: &Skb, offset: u32, len: usize) -> Result<usize>;
}

/// A connected TCP socket, held through its file.
///
/// # Invariants
///
/// `sk` is the `struct sock` of the socket `file` is, alive while `file`
/// is; the socket is plain TCP, received with `tcp_recvmsg`.
pub(crate) struct Socket {
    /// Keeps the socket alive.
    file: ARef<File>,
    sock: NonNull<bindings::socket>,
    sk: NonNull<bindings::sock>,
}

// SAFETY: the socket is used only under its own lock or through atomic reads.
unsafe impl Send for Socket {}
// SAFETY: see `Send`.
unsafe impl Sync for Socket {}

impl Socket {
    /// The TCP socket open as `fd` in the calling task.
    ///
    /// Fails with `EBADF` (not open), `ENOTSOCK`, `EOPNOTSUPP` (not plain
    /// TCP) or `EINVAL` (listening).
    pub(crate) fn from_fd(fd: i32) -> Result<Self> {
        let fd = u32::try_from(fd).map_err(|_| EBADF)?;
        let file = LocalFile::fget(fd).map_err(|_| EBADF)?;
        // SAFETY: an ioctl on netgpu's own file is not inside an
        // `fdget_pos()` region of this fd, and the reference is only used to
        // keep the socket alive, never for file position.
        let file: ARef<File> = unsafe { LocalFile::assume_no_fdget_pos(file) };
        // SAFETY: the file is alive; returns NULL unless it is a socket.
        let sock = unsafe { bindings::sock_from_file(file.as_ptr()) };
        if sock.is_null() {
            return Err(ENOTSOCK);
        }
        // SAFETY: a socket file's socket is alive with the file.
        let sk = NonNull::new(unsafe { (*sock).sk }).ok_or(ENOTSOCK)?;
        let sock = NonNull::new(sock).ok_or(ENOTSOCK)?;
        let sk_raw = sk.as_ptr();
        // SAFETY: the sock is alive; `sk_prot`, which a ULP (TLS) may
        // replace, is read once. Only fields in `struct sock_common` are
        // read: with a GCC-built kernel bindgen's layout of the rest of
        // `struct sock` is off (checked on 7.3: `sk_protocol` 64 bytes).
        unsafe {
            // Plain TCP over IPv4 or IPv6 receives with `tcp_recvmsg`, which
            // `tcp_prot` names (it is not exported itself); a ULP (TLS) or
            // sockmap replaces the proto and its receive path.
            let prot = core::ptr::read_volatile(&(*sk_raw).__sk_common.skc_prot);
            let recvmsg = (*prot).recvmsg.map(|f| f as usize);
            let tcp_recvmsg = bindings::tcp_prot.recvmsg.map(|f| f as usize);
            if recvmsg.is_none() || recvmsg != tcp_recvmsg {
                return Err(EOPNOTSUPP);
            }
            if u32::from((*sk_raw).__sk_common.skc_state) == bindings::TCP_LISTEN {
                return Err(EINVAL);
            }
        }
        // INVARIANT: checked above.
        Ok(Socket { file, sock, sk })
    }

    /// Whether this is the socket open as `other`.
    pub(crate) fn same(&self, other: &Socket) -> bool {
        self.sk == other.sk
    }

    /// Takes the socket lock.
    pub(crate) fn lock(&self) -> SockLock<'_> {
        // SAFETY: the sock is alive.
        unsafe { bindings::lock_sock_nested(self.sk.as_ptr(), 0) };
        SockLock(self)
    }

    /// The receive timeout (`SO_RCVTIMEO`), in jiffies.
    pub(crate) fn rcvtimeo(&self) -> i64 {
        // SAFETY: the sock is alive; a racy read of a `long` is harmless.
        unsafe { core::ptr::read_volatile(&(*self.sk.as_ptr()).sk_rcvtimeo) as i64 }
    }
}

/// A socket with its lock held.
pub(crate) struct SockLock<'a>(&'a Socket);

impl SockLock<'_> {
    fn sk(&self) -> *mut bindings::sock {
        self.0.sk.as_ptr()
    }

    /// Reads up to `max` bytes through `r` with `tcp_read_sock`; returns the
    /// bytes taken or the error of the first call.
    pub(crate) fn read<R: Receiver>(&mut self, r: &mut R, max: usize) -> Result<usize> {
        // SAFETY: all-zero is a valid descriptor.
        let mut desc: bindings::read_descriptor_t = unsafe { core::mem::zeroed() };
        desc.count = max;
        desc.arg.data = core::ptr::from_mut::<R>(r).cast();
        // SAFETY: the socket is locked; `desc` and `r` outlive the call and
        // the actor only uses `r` through `desc`.
        let ret = unsafe { bindings::tcp_read_sock(self.sk(), &mut desc, Some(actor::<R>)) };
        if ret < 0 {
            Err(Error::from_errno(ret))
        } else {
            Ok(ret as usize)
        }
    }

    /// The socket's pending error, if any.
    pub(crate) fn error(&self) -> Option<Error> {
        // SAFETY: the sock is locked and alive.
        let e = unsafe { core::ptr::read_volatile(&(*self.sk()).sk_err) };
        (e > 0).then(|| Error::from_errno(-e))
    }

    /// Whether the peer will send no more data.
    pub(crate) fn rcv_shutdown(&self) -> bool {
        // `tcp_poll()` reads `sk_shutdown`, which Rust cannot (see
        // `Socket::from_fd`); without a poll table it only reports.
        // SAFETY: the socket and its file are alive.
        let mask = unsafe {
            bindings::tcp_poll(
                self.0.file.as_ptr(),
                self.0.sock.as_ptr(),
                core::ptr::null_mut(),
            )
        };
        // EPOLLRDHUP, which bindgen cannot expand, has the value of POLLRDHUP.
        mask & bindings::POLLRDHUP != 0
    }

    /// Whether the connection is closed (or never was open).
    pub(crate) fn closed(&self) -> bool {
        // SAFETY: the sock is locked and alive.
        let s = unsafe { core::ptr::read_volatile(&(*self.sk()).__sk_common.skc_state) };
        u32::from(s) == bindings::TCP_CLOSE
    }

    /// Whether data is queued.
    pub(crate) fn has_data(&self) -> bool {
        // SAFETY: the sock is locked and alive.
        unsafe { core::ptr::read_volatile(&(*self.sk()).sk_receive_queue.qlen) != 0 }
    }

    /// Waits, with the lock dropped meanwhile, until data arrives, the
    /// socket changes state, `timeo` jiffies pass or a signal comes.
    /// Returns `EINTR` on a signal.
    pub(crate) fn wait(&mut self, timeo: &mut i64) -> Result {
        let mut t = *timeo as isize;
        // SAFETY: the socket is locked, as `sk_wait_data()` requires.
        unsafe { bindings::sk_wait_data(self.sk(), &mut t, core::ptr::null()) };
        *timeo = t as i64;
        // SAFETY: `current` is the running task.
        if unsafe { bindings::signal_pending(bindings::get_current()) } != 0 {
            return Err(EINTR);
        }
        Ok(())
    }
}

impl Drop for SockLock<'_> {
    fn drop(&mut self) {
        // SAFETY: locked in `Socket::lock`.
        unsafe { bindings::release_sock(self.sk()) };
    }
}

/// # Safety
///
/// Called by `tcp_read_sock()` with the descriptor set up in [`SockLock::read`].
unsafe extern "C" fn actor<R: Receiver>(
    desc: *mut bindings::read_descriptor_t,
    skb: *mut bindings::sk_buff,
    offset: core::ffi::c_uint,
    len: usize,
) -> core::ffi::c_int {
    // SAFETY: `tcp_read_sock` passes the descriptor set up in `read`.
    let desc = unsafe { &mut *desc };
    let len = len.min(desc.count);
    if len == 0 {
        return 0;
    }
    // SAFETY: `arg.data` is the `R` of `read`, exclusively ours meanwhile.
    let r = unsafe { &mut *desc.arg.data.cast::<R>() };
    // SAFETY: the skb is on the locked socket's receive queue.
    let skb = unsafe { Skb::from_raw(skb) };
    match r.recv(skb, offset, len.min(i32::MAX as usize)) {
        Ok(n) => {
            desc.count -= n;
            n as core::ffi::c_int
        }
        Err(e) => e.to_errno(),
    }
}
