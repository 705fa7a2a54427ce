// SPDX-License-Identifier: GPL-2.0

//! Per-open contexts of `/dev/netgpu`.
//!
//! Every `open()` creates one [`Context`]; it lives until the last reference
//! to the file is dropped. Contexts are numbered in creation order; the
//! number names the context in dmesg lines and in `/proc/<pid>/fdinfo`.
//!
//! Locking: [`Context::state`] is a mutex taken by ioctls, poll() and
//! fdinfo; it is the outermost lock of netgpu, taken before socket locks.
//! Nothing copies to or from user memory under it (a fault takes the mm's
//! lock, under which mmap() runs), and mmap() does not take it. Socket
//! wakeups notify [`Context::events`] under the socket's wait queue lock
//! and take no lock of netgpu.
//!
//! Sockets are watched for poll() only once the context was polled: a
//! watch is an entry on the socket's wait queue, and with one queued every
//! wakeup of the socket (each skb TCP queues) takes that queue's lock and
//! notifies the context, which a context that only blocks in
//! `NETGPU_IOC_RECV` does not need.

use core::sync::atomic::{AtomicU64, Ordering};

use kernel::{
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    mm::virt::{flags as vm_flags, VmaNew},
    new_mutex, new_poll_condvar,
    prelude::*,
    seq_file::SeqFile,
    seq_print,
    sync::{
        poll::{PollCondVar, PollTable},
        Arc, Mutex, SetOnce,
    },
};

use super::{
    binding::Binding,
    ioctl,
    recv::Stats,
    region::{Memory, Region},
    ring::Rings,
    ringmem::{self, RingMem},
};
use crate::net::socket::{Socket, Watch};
use crate::uapi;

/// Source of context ids; the first context is 1.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The state of one open of `/dev/netgpu`.
#[pin_data]
pub(crate) struct Context {
    /// Unique id of this context, for dmesg and fdinfo.
    pub(crate) id: u64,
    /// Objects of the context.
    #[pin]
    pub(crate) state: Mutex<State>,
    /// The memory of the completion and refill rings, once set up: mmap()
    /// reaches it without [`Context::state`], which it could not take
    /// under the mm's lock.
    pub(crate) ring_mem: SetOnce<(Arc<RingMem>, Arc<RingMem>)>,
    /// Notified when an attached socket may have become readable; poll()
    /// waits on it.
    pub(crate) events: Arc<PollCondVar>,
}

/// A socket attached to a context.
pub(crate) struct Attached {
    /// Id of the socket in the context.
    pub(crate) id: u32,
    /// The socket.
    pub(crate) sock: Arc<Socket>,
    /// Notifies [`Context::events`] of the socket's readiness, once the
    /// context was polled ([`State::polled`]).
    pub(crate) watch: Option<Pin<KBox<Watch>>>,
    /// Whether the end-of-stream completion was posted.
    pub(crate) eof_posted: bool,
}

/// The objects of a context, under [`Context::state`].
#[derive(Default)]
pub(crate) struct State {
    /// Imported regions, in id order.
    pub(crate) regions: KVec<Arc<Region>>,
    /// The completion and refill rings, once set up.
    pub(crate) rings: Option<Rings>,
    /// Queues bound to regions.
    pub(crate) bindings: KVec<Arc<Binding>>,
    /// Attached sockets.
    pub(crate) sockets: KVec<Attached>,
    /// poll() was called on the context: every attached socket has a watch.
    pub(crate) polled: bool,
    /// Counters of the context.
    pub(crate) stats: Stats,
    /// Last id handed out, for any kind of object.
    last_id: u32,
}

impl State {
    /// The region named `id`.
    pub(crate) fn region(&self, id: u32) -> Option<&Arc<Region>> {
        self.regions.iter().find(|r| r.id == id)
    }

    /// Watches every attached socket for [`Context::events`], from now on.
    pub(crate) fn watch_sockets(&mut self, events: &Arc<PollCondVar>) -> Result {
        for a in self.sockets.iter_mut().filter(|a| a.watch.is_none()) {
            a.watch = Some(KBox::pin_init(
                Watch::new(a.sock.clone(), events.clone()),
                GFP_KERNEL,
            )?);
        }
        self.polled = true;
        Ok(())
    }

    /// The attached socket named `id`.
    pub(crate) fn socket(&mut self, id: u32) -> Option<&mut Attached> {
        self.sockets.iter_mut().find(|s| s.id == id)
    }

    /// Removes the binding named `id` from the context.
    pub(crate) fn take_binding(&mut self, id: u32) -> Option<Arc<Binding>> {
        let i = self.bindings.iter().position(|b| b.id == id)?;
        self.bindings.remove(i).ok()
    }

    /// A fresh id for a new object of the context.
    pub(crate) fn next_id(&mut self) -> Result<u32> {
        self.last_id = self.last_id.checked_add(1).ok_or(ENOSPC)?;
        Ok(self.last_id)
    }
}

impl Context {
    /// Undoes everything the context did, when its file is released:
    /// unbinds its queues and takes back the buffers user space holds.
    /// Buffers still in flight keep their bindings and regions alive until
    /// their page pools release them.
    fn teardown(&self) {
        let (sockets, bindings, regions) = {
            let mut state = self.state.lock();
            (
                core::mem::take(&mut state.sockets),
                core::mem::take(&mut state.bindings),
                core::mem::take(&mut state.regions),
            )
        };
        drop(sockets);
        for b in bindings.iter() {
            b.unbind();
        }
        for r in regions.iter() {
            r.reclaim_user_buffers();
        }
    }
}

#[vtable]
impl MiscDevice for Context {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        KBox::try_pin_init(
            try_pin_init!(Context {
                id,
                state <- new_mutex!(State::default()),
                ring_mem: SetOnce::new(),
                events: Arc::pin_init(new_poll_condvar!("netgpu_context::events"), GFP_KERNEL)?,
            }),
            GFP_KERNEL,
        )
    }

    fn release(ctx: Pin<KBox<Self>>, _file: &File) {
        ctx.teardown();
    }

    fn ioctl(ctx: Pin<&Context>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        ioctl::dispatch(&ctx, cmd, arg)
    }

    /// Readable (`EPOLLIN`) while a `NETGPU_IOC_RECV` on some attached
    /// socket would not block, as poll() on that socket would say.
    fn poll(ctx: Pin<&Context>, file: &File, table: &PollTable<'_>) -> u32 {
        table.register_wait(file, &ctx.events);
        let mut state = ctx.state.lock();
        if !state.polled && state.watch_sockets(&ctx.events).is_err() {
            // Without the watches no wakeup would come: let the caller see it.
            return kernel::bindings::POLLERR;
        }
        if state.sockets.iter().any(|a| a.sock.readable()) {
            // EPOLLIN | EPOLLRDNORM
            kernel::bindings::POLLIN | kernel::bindings::POLLRDNORM
        } else {
            0
        }
    }

    fn mmap(ctx: Pin<&Context>, _file: &File, vma: &VmaNew) -> Result {
        if vma.flags() & vm_flags::SHARED == 0 || vma.executable() {
            pr_info!(
                "context {}: mmap: only shared, non-executable mappings (errno {})\n",
                ctx.id,
                EPERM.to_errno()
            );
            return Err(EPERM);
        }
        vma.try_clear_mayexec()?;
        vma.set_dontexpand();
        let offset = ringmem::mmap_offset(vma);
        let Some((cq, rq)) = ctx.ring_mem.as_ref() else {
            pr_info!(
                "context {}: mmap: no rings set up (errno {})\n",
                ctx.id,
                ENXIO.to_errno()
            );
            return Err(ENXIO);
        };
        let mem = match offset {
            uapi::NETGPU_MMAP_CQ => cq,
            uapi::NETGPU_MMAP_RQ => rq,
            _ => {
                pr_info!(
                    "context {}: mmap: offset {:#x} is no ring's (errno {})\n",
                    ctx.id,
                    offset,
                    EINVAL.to_errno()
                );
                return Err(EINVAL);
            }
        };
        mem.map(vma).inspect_err(|e| {
            pr_info!(
                "context {}: mmap: {} bytes at {:#x} do not fit the ring (errno {})\n",
                ctx.id,
                vma.end() - vma.start(),
                offset,
                e.to_errno()
            );
        })
    }

    fn show_fdinfo(ctx: Pin<&Context>, m: &SeqFile, _file: &File) {
        seq_print!(m, "netgpu-context:\t{}\n", ctx.id);
        seq_print!(m, "netgpu-abi:\t{}\n", uapi::NETGPU_ABI_VERSION);
        let state = ctx.state.lock();
        for r in state.regions.iter() {
            match &r.mem {
                Memory::DmaBuf(d) => seq_print!(
                    m,
                    "netgpu-region:\t{} dmabuf {} bytes {} free {}\n",
                    r.id,
                    r.size(),
                    d.exporter(),
                    r.free_count()
                ),
                Memory::P2p(_) => seq_print!(
                    m,
                    "netgpu-region:\t{} p2pdma {} bytes free {}\n",
                    r.id,
                    r.size(),
                    r.free_count()
                ),
            }
        }
        for a in state.sockets.iter() {
            seq_print!(
                m,
                "netgpu-socket:\t{}{}\n",
                a.id,
                if a.eof_posted { " eof" } else { "" }
            );
        }
        for b in state.bindings.iter() {
            seq_print!(
                m,
                "netgpu-binding:\t{} region {} ifindex {} queue {}{}\n",
                b.id,
                b.region.id,
                b.ifindex,
                b.queue,
                if b.installed() { "" } else { " unregistered" }
            );
        }
    }
}
