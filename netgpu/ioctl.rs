// SPDX-License-Identifier: GPL-2.0

//! ioctl dispatch of `/dev/netgpu` and the copy of extensible arguments.
//!
//! The rules (see `uapi/linux/netgpu.h`): the kernel dispatches on the
//! ioctl type and number; the direction bits must match the command; the
//! argument size comes from the command and may be larger or smaller than
//! the kernel's structure, within limits. Every rejected call gets one dmesg
//! line naming the context, the command and the reason.

use core::{cmp::min, sync::atomic::Ordering};

use kernel::{
    page::PAGE_SIZE,
    prelude::*,
    sync::Arc,
    uaccess::{UserPtr, UserSlice},
};

use super::{
    binding::{BindError, Binding},
    context::{Attached, Context},
    recv::{self, Recv},
    region::{size_ok, Memory, Region},
    ring::{self, Cq, Rings, Rq},
};
use crate::{
    dmabuf::DmaBuf,
    net::{
        netdev::{NetDevRef, QueueBusy},
        socket::{Socket, Watch},
    },
    p2pdma::{P2pMem, PinError},
    uapi::{
        self, ioc, NetgpuAttachSocket, NetgpuBindQueue, NetgpuDetachSocket, NetgpuImportDmabuf,
        NetgpuImportP2pmem, NetgpuInfo, NetgpuRecv, NetgpuSetupRings, NetgpuStats,
        NetgpuUnbindQueue, Wire,
    },
};

/// Longest argument accepted at all; longer ones fail with `E2BIG`.
const MAX_ARG_SIZE: usize = PAGE_SIZE;

/// Largest structure of the ABI, the size of the copy buffer.
const MAX_STRUCT_SIZE: usize = 256;

/// Features this build of the module implements (`NETGPU_FEATURE_*`).
pub(crate) const FEATURES: u64 = uapi::NETGPU_FEATURE_DMABUF
    | uapi::NETGPU_FEATURE_P2PDMA
    | uapi::NETGPU_FEATURE_RINGS
    | uapi::NETGPU_FEATURE_BIND_QUEUE
    | uapi::NETGPU_FEATURE_TCP_RECV
    | uapi::NETGPU_FEATURE_POLL;

/// A command of the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// `NETGPU_IOC_GET_INFO`.
    GetInfo,
    /// `NETGPU_IOC_IMPORT_DMABUF`.
    ImportDmabuf,
    /// `NETGPU_IOC_SETUP_RINGS`.
    SetupRings,
    /// `NETGPU_IOC_BIND_QUEUE`.
    BindQueue,
    /// `NETGPU_IOC_UNBIND_QUEUE`.
    UnbindQueue,
    /// `NETGPU_IOC_ATTACH_SOCKET`.
    AttachSocket,
    /// `NETGPU_IOC_DETACH_SOCKET`.
    DetachSocket,
    /// `NETGPU_IOC_RECV`.
    Recv,
    /// `NETGPU_IOC_GET_STATS`.
    GetStats,
    /// `NETGPU_IOC_IMPORT_P2PMEM`.
    ImportP2pmem,
}

impl Command {
    /// Name in dmesg lines.
    fn name(self) -> &'static str {
        match self {
            Command::GetInfo => "GET_INFO",
            Command::ImportDmabuf => "IMPORT_DMABUF",
            Command::SetupRings => "SETUP_RINGS",
            Command::BindQueue => "BIND_QUEUE",
            Command::UnbindQueue => "UNBIND_QUEUE",
            Command::AttachSocket => "ATTACH_SOCKET",
            Command::DetachSocket => "DETACH_SOCKET",
            Command::Recv => "RECV",
            Command::GetStats => "GET_STATS",
            Command::ImportP2pmem => "IMPORT_P2PMEM",
        }
    }
}

/// Decodes an ioctl number into a command and the user argument's size.
///
/// Fails with `ENOTTY` for any number that is not netgpu's, including a
/// known command number with the wrong direction bits.
pub(crate) fn decode(cmd: u32) -> Result<(Command, usize)> {
    if ioc::ty(cmd) != uapi::NETGPU_IOC_TYPE {
        return Err(ENOTTY);
    }
    let (command, dir) = match ioc::nr(cmd) {
        0x00 => (Command::GetInfo, ioc::READ | ioc::WRITE),
        0x01 => (Command::ImportDmabuf, ioc::READ | ioc::WRITE),
        0x02 => (Command::SetupRings, ioc::READ | ioc::WRITE),
        0x03 => (Command::BindQueue, ioc::READ | ioc::WRITE),
        0x04 => (Command::UnbindQueue, ioc::WRITE),
        0x05 => (Command::AttachSocket, ioc::READ | ioc::WRITE),
        0x06 => (Command::DetachSocket, ioc::WRITE),
        0x07 => (Command::Recv, ioc::READ | ioc::WRITE),
        0x08 => (Command::GetStats, ioc::READ | ioc::WRITE),
        0x09 => (Command::ImportP2pmem, ioc::READ | ioc::WRITE),
        _ => return Err(ENOTTY),
    };
    if ioc::dir(cmd) != dir {
        return Err(ENOTTY);
    }
    Ok((command, ioc::size(cmd)))
}

/// How many bytes of a user argument of `user_size` bytes map to a
/// structure the kernel knows as `kernel_size` bytes, first published with
/// `min_size` bytes.
pub(crate) fn arg_len(user_size: usize, min_size: usize, kernel_size: usize) -> Result<usize> {
    if user_size < min_size {
        return Err(EINVAL);
    }
    if user_size > MAX_ARG_SIZE {
        return Err(E2BIG);
    }
    Ok(min(user_size, kernel_size))
}

/// One ioctl call: the context, the command and the user argument.
struct Call<'a> {
    ctx: &'a Context,
    command: Command,
    arg: UserPtr,
    size: usize,
}

impl Call<'_> {
    /// Logs why the call is rejected and returns `err` to be propagated.
    fn reject(&self, err: Error, why: core::fmt::Arguments<'_>) -> Error {
        pr_info!(
            "context {}: {}: {} (errno {})\n",
            self.ctx.id,
            self.command.name(),
            why,
            err.to_errno()
        );
        err
    }

    /// Copies in the argument as a `T` first published with `min_size`
    /// bytes; bytes past `T` must be zero.
    fn read<T: Wire>(&self, min_size: usize) -> Result<T> {
        const { assert!(T::SIZE <= MAX_STRUCT_SIZE) };
        let len = arg_len(self.size, min_size, T::SIZE).map_err(|e| {
            self.reject(e, format_args!("argument size {} not accepted", self.size))
        })?;
        let unreadable = |e| self.reject(e, format_args!("argument not readable"));
        let mut buf = [0u8; MAX_STRUCT_SIZE];
        let mut reader = UserSlice::new(self.arg, self.size).reader();
        reader.read_slice(&mut buf[..len]).map_err(unreadable)?;
        let mut tail = [0u8; 64];
        while !reader.is_empty() {
            let n = min(reader.len(), tail.len());
            reader.read_slice(&mut tail[..n]).map_err(unreadable)?;
            if tail[..n].iter().any(|&b| b != 0) {
                return Err(self.reject(E2BIG, format_args!("unknown trailing bytes not zero")));
            }
        }
        T::decode(&buf).ok_or(EINVAL)
    }

    /// Checks the fields every argument has: `flags` (those this command
    /// knows were taken out by the caller), `__pad` and `reserved` must be 0.
    fn check_zero(&self, flags: u32, pad: u32, reserved: &[u64]) -> Result {
        if flags != 0 {
            return Err(self.reject(EINVAL, format_args!("flags {flags:#x} not zero")));
        }
        if pad != 0 || reserved.iter().any(|&r| r != 0) {
            return Err(self.reject(EINVAL, format_args!("reserved fields not zero")));
        }
        Ok(())
    }

    /// Copies `v` out to the argument, truncated to the user's size.
    fn write<T: Wire>(&self, v: &T) -> Result {
        let mut buf = [0u8; MAX_STRUCT_SIZE];
        v.encode(&mut buf).ok_or(EINVAL)?;
        let len = min(self.size, T::SIZE);
        UserSlice::new(self.arg, len)
            .writer()
            .write_slice(&buf[..len])
            .map_err(|e| self.reject(e, format_args!("argument not writable")))
    }
}

/// Handles one ioctl on `ctx`.
pub(crate) fn dispatch(ctx: &Context, cmd: u32, arg: usize) -> Result<isize> {
    let (command, size) = decode(cmd).inspect_err(|_| {
        pr_info!("context {}: unknown ioctl {:#x}\n", ctx.id, cmd);
    })?;
    let call = Call {
        ctx,
        command,
        arg: UserPtr::from_addr(arg),
        size,
    };
    match command {
        Command::GetInfo => get_info(&call),
        Command::ImportDmabuf => import_dmabuf(&call),
        Command::SetupRings => setup_rings(&call),
        Command::BindQueue => bind_queue(&call),
        Command::UnbindQueue => unbind_queue(&call),
        Command::AttachSocket => attach_socket(&call),
        Command::DetachSocket => detach_socket(&call),
        Command::Recv => recv(&call),
        Command::GetStats => get_stats(&call),
        Command::ImportP2pmem => import_p2pmem(&call),
    }
}

/// The reply of `NETGPU_IOC_GET_INFO`.
pub(crate) fn info() -> NetgpuInfo {
    NetgpuInfo {
        abi_version: uapi::NETGPU_ABI_VERSION,
        features: FEATURES,
        page_size: PAGE_SIZE as u32,
        ..Default::default()
    }
}

fn get_info(call: &Call<'_>) -> Result<isize> {
    let req: NetgpuInfo = call.read(uapi::NETGPU_INFO_SIZE_VER0)?;
    call.check_zero(req.flags, req.__pad, &req.reserved)?;
    call.write(&info())?;
    Ok(0)
}

fn import_dmabuf(call: &Call<'_>) -> Result<isize> {
    let mut req: NetgpuImportDmabuf = call.read(uapi::NETGPU_IMPORT_DMABUF_SIZE_VER0)?;
    call.check_zero(req.flags, req.__pad, &req.reserved)?;
    let dmabuf = DmaBuf::get(req.fd).map_err(|e| {
        if e == EBADF {
            call.reject(e, format_args!("fd {} is not open", req.fd))
        } else {
            call.reject(e, format_args!("fd {} is not a DMA-buf", req.fd))
        }
    })?;
    let size = dmabuf.size();
    let mut state = call.ctx.state.lock();
    room_for_region(call, state.regions.len())?;
    let id = state.next_id()?;
    let region = Region::new(id, Memory::DmaBuf(dmabuf)).map_err(|e| {
        call.reject(
            e,
            format_args!("DMA-buf size {size} is not a nonzero multiple of the page size"),
        )
    })?;
    state
        .regions
        .push(Arc::pin_init(region, GFP_KERNEL)?, GFP_KERNEL)?;
    drop(state);
    req.region_id = id;
    req.size = size as u64;
    publish_region(call, &req, id)
}

/// Fails with `ENOSPC` if a context with `n` regions cannot take one more.
fn room_for_region(call: &Call<'_>, n: usize) -> Result {
    if n >= uapi::NETGPU_MAX_REGIONS as usize {
        return Err(call.reject(
            ENOSPC,
            format_args!("already {} regions", uapi::NETGPU_MAX_REGIONS),
        ));
    }
    Ok(())
}

/// Writes the reply of an import; a caller that cannot learn the new
/// region's id does not keep the region.
fn publish_region<T: Wire>(call: &Call<'_>, reply: &T, id: u32) -> Result<isize> {
    if let Err(e) = call.write(reply) {
        call.ctx.state.lock().regions.retain(|r| r.id != id);
        return Err(e);
    }
    Ok(0)
}

fn import_p2pmem(call: &Call<'_>) -> Result<isize> {
    let mut req: NetgpuImportP2pmem = call.read(uapi::NETGPU_IMPORT_P2PMEM_SIZE_VER0)?;
    call.check_zero(req.flags, 0, &req.reserved)?;
    let (addr, size) = match (usize::try_from(req.addr), usize::try_from(req.size)) {
        (Ok(a), Ok(s)) if a % PAGE_SIZE == 0 && size_ok(s) && a.checked_add(s).is_some() => (a, s),
        _ => {
            return Err(call.reject(
                EINVAL,
                format_args!(
                    "range {:#x}+{:#x} is not a nonzero page-aligned range",
                    req.addr, req.size
                ),
            ))
        }
    };
    // Checked before pinning too, which is slow; again under the lock.
    room_for_region(call, call.ctx.state.lock().regions.len())?;
    // Pinned without the context's lock: pinning faults pages in.
    let mem = P2pMem::new(addr, size).map_err(|e| match e {
        PinError::Pin(e) => call.reject(e, format_args!("cannot pin {addr:#x}+{size:#x}")),
        PinError::Changed => call.reject(
            EAGAIN,
            format_args!("the mapping of {addr:#x}+{size:#x} changed while it was pinned"),
        ),
        PinError::NotP2p(i) => call.reject(
            EINVAL,
            format_args!(
                "page at {:#x} is not PCI P2PDMA memory",
                addr + i * PAGE_SIZE
            ),
        ),
    })?;
    let mut state = call.ctx.state.lock();
    room_for_region(call, state.regions.len())?;
    let id = state.next_id()?;
    let region = Region::new(id, Memory::P2p(mem))?;
    state
        .regions
        .push(Arc::pin_init(region, GFP_KERNEL)?, GFP_KERNEL)?;
    drop(state);
    req.region_id = id;
    publish_region(call, &req, id)
}

fn setup_rings(call: &Call<'_>) -> Result<isize> {
    let mut req: NetgpuSetupRings = call.read(uapi::NETGPU_SETUP_RINGS_SIZE_VER0)?;
    call.check_zero(req.flags, req.__pad, &req.reserved)?;
    for (name, n) in [("cq", req.cq_entries), ("rq", req.rq_entries)] {
        if !ring::entries_ok(n) {
            return Err(call.reject(
                EINVAL,
                format_args!(
                    "{name}_entries {n} is not a power of two up to {}",
                    uapi::NETGPU_MAX_RING_ENTRIES
                ),
            ));
        }
    }
    let mut state = call.ctx.state.lock();
    if state.rings.is_some() {
        return Err(call.reject(EBUSY, format_args!("rings already set up")));
    }
    let rings = Rings {
        cq: Cq::new(req.cq_entries)?,
        rq: Rq::new(req.rq_entries)?,
    };
    req.cq = rings.cq.offsets();
    req.rq = rings.rq.offsets();
    // The memory is set once, for mmap(); the state's rings follow it.
    if !call
        .ctx
        .ring_mem
        .populate((rings.cq.mem().clone(), rings.rq.mem().clone()))
    {
        return Err(call.reject(EBUSY, format_args!("rings already set up")));
    }
    state.rings = Some(rings);
    drop(state);
    call.write(&req)?;
    Ok(0)
}

fn bind_queue(call: &Call<'_>) -> Result<isize> {
    let mut req: NetgpuBindQueue = call.read(uapi::NETGPU_BIND_QUEUE_SIZE_VER0)?;
    call.check_zero(req.flags, req.__pad, &req.reserved)?;
    let (ifindex, q) = (req.ifindex, req.queue);
    let region = call.ctx.state.lock().region(req.region_id).cloned();
    let region =
        region.ok_or_else(|| call.reject(ENOENT, format_args!("no region {}", req.region_id)))?;
    let dev = i32::try_from(ifindex)
        .map_err(|_| ENODEV)
        .and_then(NetDevRef::get_in_current_netns)
        .map_err(|e| {
            call.reject(
                e,
                format_args!("no device with ifindex {ifindex} in the caller's network namespace"),
            )
        })?;
    if !dev.caller_is_admin() {
        return Err(call.reject(
            EPERM,
            format_args!("CAP_NET_ADMIN needed in the user namespace of ifindex {ifindex}"),
        ));
    }
    let dma = {
        let l = dev.lock();
        if !l.has_queue_api() {
            return Err(call.reject(
                EOPNOTSUPP,
                format_args!("ifindex {ifindex} has no queue management API"),
            ));
        }
        let (hds, thresh) = l.hds();
        if !hds {
            return Err(call.reject(
                EINVAL,
                format_args!("tcp-data-split is off on ifindex {ifindex}"),
            ));
        }
        if thresh != 0 {
            return Err(call.reject(
                EINVAL,
                format_args!("hds-thresh is {thresh} on ifindex {ifindex}, not 0"),
            ));
        }
        let n = l.rx_queues();
        if q >= n {
            return Err(call.reject(
                ERANGE,
                format_args!("queue {q} out of range: ifindex {ifindex} has {n} RX queues"),
            ));
        }
        match l.rxq_busy(q) {
            Some(QueueBusy::Provider) => Err("has a memory provider"),
            Some(QueueBusy::Xsk) => Err("is used by AF_XDP"),
            Some(QueueBusy::Leased) => Err("is leased"),
            None => Ok(()),
        }
        .map_err(|why| call.reject(EBUSY, format_args!("queue {q} of ifindex {ifindex} {why}")))?;
        if l.xdp_attached() {
            return Err(call.reject(
                EEXIST,
                format_args!("an XDP program is attached to ifindex {ifindex}"),
            ));
        }
        l.dma_dev(q).ok_or_else(|| {
            call.reject(
                ENXIO,
                format_args!("queue {q} of ifindex {ifindex} has no DMA device"),
            )
        })?
    };
    let id = call.ctx.state.lock().next_id()?;
    let rid = region.id;
    let b = Binding::bind(id, call.ctx.id, region, dev, q, dma).map_err(|e| match e {
        BindError::RegionBound => call.reject(EBUSY, format_args!("region {rid} is bound")),
        BindError::Map(e) => call.reject(
            e,
            format_args!("the DMA device of ifindex {ifindex} cannot map region {rid}"),
        ),
        BindError::Install(e) => call.reject(
            e,
            format_args!("region {rid} cannot be bound to queue {q} of ifindex {ifindex}"),
        ),
    })?;
    if let Err(e) = call.ctx.state.lock().bindings.push(b.clone(), GFP_KERNEL) {
        b.unbind();
        return Err(e.into());
    }
    req.binding_id = id;
    if let Err(e) = call.write(&req) {
        call.ctx.state.lock().take_binding(id);
        b.unbind();
        return Err(e);
    }
    Ok(0)
}

fn unbind_queue(call: &Call<'_>) -> Result<isize> {
    let req: NetgpuUnbindQueue = call.read(uapi::NETGPU_UNBIND_QUEUE_SIZE_VER0)?;
    call.check_zero(req.flags, 0, &req.reserved)?;
    let b = call.ctx.state.lock().take_binding(req.binding_id);
    let b = b.ok_or_else(|| call.reject(ENOENT, format_args!("no binding {}", req.binding_id)))?;
    b.unbind();
    Ok(0)
}

fn attach_socket(call: &Call<'_>) -> Result<isize> {
    let mut req: NetgpuAttachSocket = call.read(uapi::NETGPU_ATTACH_SOCKET_SIZE_VER0)?;
    call.check_zero(req.flags, req.__pad, &req.reserved)?;
    let fd = req.fd;
    let sock = Socket::from_fd(fd).map_err(|e| {
        let why = if e == EBADF {
            "is not open"
        } else if e == ENOTSOCK {
            "is not a socket"
        } else if e == EOPNOTSUPP {
            "is not a plain TCP socket"
        } else {
            "is a listening socket"
        };
        call.reject(e, format_args!("fd {fd} {why}"))
    })?;
    let mut state = call.ctx.state.lock();
    if let Some(a) = state.sockets.iter().find(|a| a.sock.same(&sock)) {
        let id = a.id;
        return Err(call.reject(EBUSY, format_args!("fd {fd} is attached as socket {id}")));
    }
    if state.sockets.len() >= uapi::NETGPU_MAX_SOCKETS as usize {
        return Err(call.reject(
            ENOSPC,
            format_args!("already {} sockets", uapi::NETGPU_MAX_SOCKETS),
        ));
    }
    let id = state.next_id()?;
    let sock = Arc::new(sock, GFP_KERNEL)?;
    let watch = if state.polled {
        Some(KBox::pin_init(
            Watch::new(sock.clone(), call.ctx.events.clone()),
            GFP_KERNEL,
        )?)
    } else {
        None
    };
    state.sockets.push(
        Attached {
            id,
            sock,
            watch,
            eof_posted: false,
        },
        GFP_KERNEL,
    )?;
    // Data may have come before the watch.
    call.ctx.events.notify_all();
    drop(state);
    req.socket_id = id;
    if let Err(e) = call.write(&req) {
        call.ctx.state.lock().sockets.retain(|a| a.id != id);
        return Err(e);
    }
    Ok(0)
}

fn detach_socket(call: &Call<'_>) -> Result<isize> {
    let req: NetgpuDetachSocket = call.read(uapi::NETGPU_DETACH_SOCKET_SIZE_VER0)?;
    call.check_zero(req.flags, 0, &req.reserved)?;
    let mut state = call.ctx.state.lock();
    let i = state.sockets.iter().position(|a| a.id == req.socket_id);
    let i = i.ok_or_else(|| call.reject(ENOENT, format_args!("no socket {}", req.socket_id)))?;
    let a = state.sockets.remove(i)?;
    drop(state);
    drop(a);
    Ok(0)
}

fn recv(call: &Call<'_>) -> Result<isize> {
    let mut req: NetgpuRecv = call.read(uapi::NETGPU_RECV_SIZE_VER0)?;
    call.check_zero(
        req.flags & !uapi::NETGPU_RECV_NONBLOCK,
        req.__pad,
        &req.reserved,
    )?;
    let nonblock = req.flags & uapi::NETGPU_RECV_NONBLOCK != 0;
    let id = req.socket_id;
    let max = usize::try_from(req.max_bytes).unwrap_or(usize::MAX);
    let sock = {
        let mut state = call.ctx.state.lock();
        if state.rings.is_none() {
            return Err(call.reject(ENXIO, format_args!("no rings set up")));
        }
        // With bytes to receive, the loop below takes the refill ring back.
        if max == 0 {
            recv::drain_refill(&mut state);
        }
        let sock = state.socket(id).map(|a| a.sock.clone());
        sock.ok_or_else(|| call.reject(ENOENT, format_args!("no socket {id}")))?
    };
    if max == 0 {
        req.bytes = 0;
        req.completions = 0;
        call.write(&req)?;
        return Ok(0);
    }
    let mut timeo = if nonblock { 0 } else { sock.rcvtimeo() };
    loop {
        let mut state = call.ctx.state.lock();
        recv::drain_refill(&mut state);
        let eof_posted = state.socket(id).is_none_or(|a| a.eof_posted);
        let mut r = Recv::new(call.ctx.id, id, &mut state);
        let (res, err, ended, closed) = {
            let mut sl = sock.lock();
            let res = sl.read(&mut r, max);
            (
                res,
                sl.error(),
                sl.rcv_shutdown() && !sl.has_data(),
                sl.closed(),
            )
        };
        let mut eof_now = false;
        if r.bytes == 0 && r.stop.is_none() && res.is_ok() && ended && !eof_posted {
            eof_now = r.post_eof().is_ok();
        }
        let (bytes, completions, stop) = r.finish();
        if eof_now {
            if let Some(a) = state.socket(id) {
                a.eof_posted = true;
            }
        }
        drop(state);
        if bytes > 0 || completions > 0 {
            req.bytes = bytes;
            req.completions = completions;
            call.write(&req)?;
            return Ok(0);
        }
        if let Some(e) = stop.or(res.err()) {
            let why = if e == ENOSPC {
                "completion ring full"
            } else if e == ENOBUFS {
                "no free buffer to copy payload into"
            } else if e == EACCES {
                "payload in memory of another context or provider"
            } else if e == ENXIO {
                "region not mappable by the CPU for the copy fallback"
            } else {
                "receive failed"
            };
            return Err(call.reject(e, format_args!("socket {id}: {why}")));
        }
        if let Some(e) = err {
            return Err(e);
        }
        if ended {
            req.bytes = 0;
            req.completions = 0;
            call.write(&req)?;
            return Ok(0);
        }
        if closed {
            return Err(ENOTCONN);
        }
        if nonblock || timeo <= 0 {
            return Err(EAGAIN);
        }
        let mut sl = sock.lock();
        if !sl.has_data() && !sl.rcv_shutdown() && sl.error().is_none() {
            sl.wait(&mut timeo)?;
        }
    }
}

fn get_stats(call: &Call<'_>) -> Result<isize> {
    let mut req: NetgpuStats = call.read(uapi::NETGPU_STATS_SIZE_VER0)?;
    call.check_zero(req.flags, 0, &[])?;
    let state = call.ctx.state.lock();
    let id = req.binding_id;
    let out = if id == 0 {
        let s = state.stats;
        let alloc_failures = state
            .bindings
            .iter()
            .map(|b| b.alloc_failures.load(Ordering::Relaxed))
            .sum();
        NetgpuStats {
            binding_id: 0,
            flags: 0,
            zc_bytes: s.zc_bytes,
            copy_bytes: s.copy_bytes,
            refill_errors: s.refill_errors,
            alloc_failures,
            cq_overflows: s.cq_overflows,
            foreign_frags: s.foreign_frags,
            reserved: [0; 4],
        }
    } else {
        let b = state.bindings.iter().find(|b| b.id == id);
        let b = b.ok_or_else(|| call.reject(ENOENT, format_args!("no binding {id}")))?;
        NetgpuStats {
            binding_id: id,
            zc_bytes: b.zc_bytes.load(Ordering::Relaxed),
            alloc_failures: b.alloc_failures.load(Ordering::Relaxed),
            ..Default::default()
        }
    };
    drop(state);
    req = out;
    call.write(&req)?;
    Ok(0)
}

#[kunit_tests(netgpu_ioctl)]
mod tests {
    use super::*;

    #[test]
    fn decode_get_info() {
        assert_eq!(
            decode(uapi::NETGPU_IOC_GET_INFO),
            Ok((Command::GetInfo, uapi::NETGPU_INFO_SIZE_VER0))
        );
    }

    #[test]
    fn decode_import_p2pmem() {
        assert_eq!(
            decode(uapi::NETGPU_IOC_IMPORT_P2PMEM),
            Ok((Command::ImportP2pmem, uapi::NETGPU_IMPORT_P2PMEM_SIZE_VER0))
        );
    }

    #[test]
    fn decode_rejects_foreign_numbers() {
        let t = uapi::NETGPU_IOC_TYPE;
        let rw = ioc::READ | ioc::WRITE;
        // Wrong type, same number and size.
        assert_eq!(decode(ioc::ioc(rw, t + 1, 0, 56)), Err(ENOTTY));
        // Unknown number.
        assert_eq!(decode(ioc::ioc(rw, t, 0x1f, 56)), Err(ENOTTY));
        // Known number, wrong direction.
        assert_eq!(decode(ioc::ioc(ioc::READ, t, 0, 56)), Err(ENOTTY));
        assert_eq!(decode(ioc::ioc(ioc::NONE, t, 0, 0)), Err(ENOTTY));
    }

    #[test]
    fn decode_keeps_user_size() {
        let rw = ioc::READ | ioc::WRITE;
        let cmd = ioc::ioc(rw, uapi::NETGPU_IOC_TYPE, 0, 200);
        assert_eq!(decode(cmd), Ok((Command::GetInfo, 200)));
    }

    #[test]
    fn arg_len_rules() {
        assert_eq!(arg_len(55, 56, 56), Err(EINVAL));
        assert_eq!(arg_len(0, 56, 56), Err(EINVAL));
        assert_eq!(arg_len(56, 56, 56), Ok(56));
        // Older, shorter structures than the kernel's are read in part.
        assert_eq!(arg_len(56, 56, 64), Ok(56));
        // Newer, longer ones: the kernel reads what it knows.
        assert_eq!(arg_len(128, 56, 64), Ok(64));
        assert_eq!(arg_len(MAX_ARG_SIZE, 56, 64), Ok(64));
        assert_eq!(arg_len(MAX_ARG_SIZE + 1, 56, 64), Err(E2BIG));
    }

    #[test]
    fn info_wire_round_trip() {
        let v = NetgpuInfo {
            abi_version: 7,
            flags: 0x8000_0001,
            features: 0x0123_4567_89ab_cdef,
            page_size: 4096,
            __pad: 3,
            reserved: [1, 2, 3, u64::MAX],
        };
        let mut b = [0u8; 56];
        assert_eq!(v.encode(&mut b), Some(()));
        assert_eq!(NetgpuInfo::decode(&b), Some(v));
        // Field offsets are the C header's.
        assert_eq!(b[0..4], 7u32.to_ne_bytes());
        assert_eq!(b[8..16], 0x0123_4567_89ab_cdefu64.to_ne_bytes());
        assert_eq!(b[48..56], u64::MAX.to_ne_bytes());
        // Short buffers are refused, not read past.
        assert_eq!(NetgpuInfo::decode(&b[..55]), None);
        assert_eq!(v.encode(&mut b[..55]), None);
    }

    #[test]
    fn info_reply_is_sane() {
        let i = info();
        assert_eq!(i.abi_version, uapi::NETGPU_ABI_VERSION);
        assert_eq!(i.features & !uapi::NETGPU_FEATURES_KNOWN, 0);
        assert!(i.page_size.is_power_of_two());
        assert_eq!(i.page_size as usize, PAGE_SIZE);
        assert_eq!(i.flags, 0);
        assert_eq!(i.__pad, 0);
        assert_eq!(i.reserved, [0; 4]);
    }
}
