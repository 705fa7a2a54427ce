// SPDX-License-Identifier: GPL-2.0

//! TCP sockets attached to a context, the `tcp_read_sock` glue, and
//! watches on their wait queues.
//!
//! C headers: [`include/net/sock.h`](srctree/include/net/sock.h),
//! [`include/net/tcp.h`](srctree/include/net/tcp.h),
//! [`include/linux/wait.h`](srctree/include/linux/wait.h).

use core::{
    ffi::{c_int, c_uint, c_void},
    ptr::NonNull,
};

use kernel::{
    bindings,
    fs::{File, LocalFile},
    prelude::*,
    sync::{aref::ARef, poll::PollCondVar, Arc},
    types::Opaque,
};
use pin_init::pin_init_from_closure;

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

    /// The `EPOLL*` events ready on the socket now, as `poll()` on it
    /// would return them.
    pub(crate) fn poll(&self) -> u32 {
        // SAFETY: the socket and its file are alive; without a poll table
        // `tcp_poll()` only reports, without locks.
        unsafe {
            bindings::tcp_poll(
                self.file.as_ptr(),
                self.sock.as_ptr(),
                core::ptr::null_mut(),
            )
        }
    }

    /// Whether a receive would not block: data, the end of the stream or
    /// an error is pending.
    pub(crate) fn readable(&self) -> bool {
        self.poll() & READABLE != 0
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
        // `Socket::from_fd`).
        self.0.poll() & bindings::POLLRDHUP != 0
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

/// The `EPOLL*` events that make a socket readable. bindgen cannot expand
/// the `EPOLL*` constants; the `POLL*` ones have the same values.
const READABLE: u32 = bindings::POLLIN
    | bindings::POLLPRI
    | bindings::POLLERR
    | bindings::POLLHUP
    | bindings::POLLRDNORM
    | bindings::POLLRDHUP;

/// A wait queue entry on a socket that notifies a [`PollCondVar`] whenever
/// the socket may have become readable (data, end of stream, an error, a
/// state change), as vhost watches its backend's sockets. It lets `poll()`
/// on one file report the readiness of many sockets, without that file's
/// waiters ever being queued on (and outliving) a socket's wait queue.
///
/// # Invariants
///
/// From initialisation until drop, `entry` is queued on `whead`, the wait
/// queue of `sock` (alive while `sock` is), and its `private` is the
/// address of `cv`'s condition variable.
#[pin_data(PinnedDrop)]
pub(crate) struct Watch {
    #[pin]
    entry: Opaque<bindings::wait_queue_entry>,
    whead: NonNull<bindings::wait_queue_head>,
    sock: Arc<Socket>,
    cv: Arc<PollCondVar>,
}

// SAFETY: `whead` is only used to dequeue `entry`, which the wait queue's
// own lock serialises; the other fields are `Send`.
unsafe impl Send for Watch {}
// SAFETY: `&Watch` gives no access to `entry` or `whead`.
unsafe impl Sync for Watch {}

/// The poll table `Watch::new` passes to `tcp_poll()`, which hands it to
/// [`queue_entry`] with the socket's wait queue.
#[repr(C)]
struct Registrar {
    /// First, so that the table's address is the registrar's.
    pt: bindings::poll_table_struct,
    entry: *mut bindings::wait_queue_entry,
    whead: *mut bindings::wait_queue_head,
}

impl Watch {
    /// Watches `sock` for readability, notifying `cv`.
    pub(crate) fn new(sock: Arc<Socket>, cv: Arc<PollCondVar>) -> impl PinInit<Self, Error> {
        let init = move |slot: *mut Self| {
            // SAFETY: `slot` is valid for writes and pinned.
            let entry = unsafe { Opaque::cast_into(&raw const (*slot).entry) };
            // SAFETY: `entry` is valid for writes; `init_wait_entry()`
            // initialises all of it, then the callback and its argument are
            // set. `cv` points to the condition variable the watch keeps.
            unsafe {
                bindings::init_wait_entry(entry, 0);
                (*entry).func = Some(wake);
                (*entry).private = Arc::as_ptr(&cv).cast_mut().cast();
            }
            let mut reg = Registrar {
                pt: bindings::poll_table_struct {
                    _qproc: Some(queue_entry),
                    _key: !0,
                },
                entry,
                whead: core::ptr::null_mut(),
            };
            // SAFETY: the socket and its file are alive; `reg` outlives the
            // call and `queue_entry` expects it.
            unsafe { bindings::tcp_poll(sock.file.as_ptr(), sock.sock.as_ptr(), &mut reg.pt) };
            // `tcp_poll()` always waits on the socket's queue.
            let whead = NonNull::new(reg.whead).ok_or(EINVAL)?;
            // SAFETY: `slot` is valid for writes; the entry is queued on
            // `whead` and `cv`, whose address it holds, moves in with it.
            // INVARIANT: see above.
            unsafe {
                (&raw mut (*slot).whead).write(whead);
                (&raw mut (*slot).sock).write(sock);
                (&raw mut (*slot).cv).write(cv);
            }
            Ok(())
        };
        // SAFETY: `init` initialises every field or, failing, leaves nothing
        // queued or owned behind; it does not move `slot`.
        unsafe { pin_init_from_closure(init) }
    }
}

#[pinned_drop]
impl PinnedDrop for Watch {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: by the type invariants the entry is queued on `whead`,
        // alive with `sock`. Once dequeued, under the queue's lock, no
        // wakeup runs `wake` for it any more, so `cv` may go.
        unsafe { bindings::remove_wait_queue(self.whead.as_ptr(), self.entry.get()) };
    }
}

/// The `poll_queue_proc` of [`Registrar`]: queues the watch's entry on the
/// socket's wait queue.
///
/// # Safety
///
/// `pt` is the table of a live [`Registrar`], `whead` a live wait queue.
unsafe extern "C" fn queue_entry(
    _file: *mut bindings::file,
    whead: *mut bindings::wait_queue_head,
    pt: *mut bindings::poll_table_struct,
) {
    // SAFETY: `pt` is the first field of a `Registrar` (`repr(C)`).
    let reg = unsafe { &mut *pt.cast::<Registrar>() };
    if !reg.whead.is_null() {
        // TCP has one wait queue; a second would not be watched.
        return;
    }
    reg.whead = whead;
    // SAFETY: the entry is initialised and not queued; `whead` is alive.
    unsafe { bindings::add_wait_queue(whead, reg.entry) };
}

/// The wake function of a [`Watch`]'s entry, called with the socket's wait
/// queue lock held, possibly in softirq context.
///
/// # Safety
///
/// `entry` is the entry of a live [`Watch`].
unsafe extern "C" fn wake(
    entry: *mut bindings::wait_queue_entry,
    _mode: c_uint,
    _sync: c_int,
    key: *mut c_void,
) -> c_int {
    // The key is the `EPOLL*` mask of the wakeup, or 0 for any event.
    let mask = key as usize as u32;
    if mask != 0 && mask & READABLE == 0 {
        return 0;
    }
    // SAFETY: by the invariants of `Watch`, `private` is the condition
    // variable the watch holds while its entry is queued.
    let cv = unsafe { &*(*entry).private.cast::<PollCondVar>() };
    cv.notify_all();
    0
}
