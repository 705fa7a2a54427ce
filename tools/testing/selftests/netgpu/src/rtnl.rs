// SPDX-License-Identifier: GPL-2.0

//! A minimal rtnetlink client: `RTM_NEWLINK` with attributes built by hand,
//! answered with the exact errno and extended ack message, which `ip`
//! turns into text.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `NLMSGERR_ATTR_MSG` of `include/uapi/linux/netlink.h`: the extended
/// ack's message.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// One netlink attribute: header, payload, padding to 4 bytes.
pub fn attr(ty: u16, payload: &[u8]) -> Vec<u8> {
    let len = 4 + payload.len();
    let mut a = Vec::with_capacity(len.next_multiple_of(4));
    a.extend_from_slice(&(len as u16).to_ne_bytes());
    a.extend_from_slice(&ty.to_ne_bytes());
    a.extend_from_slice(payload);
    a.resize(len.next_multiple_of(4), 0);
    a
}

/// A string attribute, NUL-terminated.
pub fn attr_str(ty: u16, s: &str) -> Vec<u8> {
    let mut p = s.as_bytes().to_vec();
    p.push(0);
    attr(ty, &p)
}

/// A nested attribute holding `parts`.
pub fn nested(ty: u16, parts: &[Vec<u8>]) -> Vec<u8> {
    attr(ty, &parts.concat())
}

/// Creates link `name` of `kind` with `data` as its `IFLA_INFO_DATA`
/// payload. `Ok(Err((errno, message)))` is the kernel's refusal: a positive
/// errno and the extended ack message, empty if it sent none.
pub fn newlink(name: &str, kind: &str, data: &[Vec<u8>]) -> io::Result<Result<(), (i32, String)>> {
    // SAFETY: plain socket creation; the fd is owned right after.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    for opt in [libc::NETLINK_EXT_ACK, libc::NETLINK_CAP_ACK] {
        let on: libc::c_int = 1;
        // SAFETY: `on` is a valid int option value of the size passed.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_NETLINK,
                opt,
                (&raw const on).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let linkinfo = nested(
        libc::IFLA_LINKINFO,
        &[
            attr_str(libc::IFLA_INFO_KIND, kind),
            nested(libc::IFLA_INFO_DATA, data),
        ],
    );
    let body = [
        vec![0u8; 16], // struct ifinfomsg, all zero
        attr_str(libc::IFLA_IFNAME, name),
        linkinfo,
    ]
    .concat();
    let flags = libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL;
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&(flags as u16).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
    msg.extend_from_slice(&body);
    // SAFETY: `msg` is valid for reads of its length; the socket is
    // unconnected, so the message goes to the kernel.
    let n = unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 8192];
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    parse_ack(&buf[..n as usize]).ok_or_else(|| io::Error::other("malformed netlink ack"))
}

/// The `NLMSG_ERROR` answer in `b`: its errno and extended ack message.
fn parse_ack(b: &[u8]) -> Option<Result<(), (i32, String)>> {
    let u16_at = |o: usize| Some(u16::from_ne_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let len = u32::from_ne_bytes(b.get(0..4)?.try_into().ok()?) as usize;
    if u16_at(4)? != libc::NLMSG_ERROR as u16 || len > b.len() {
        return None;
    }
    let error = i32::from_ne_bytes(b.get(16..20)?.try_into().ok()?);
    if error == 0 {
        return Some(Ok(()));
    }
    let mut msg = String::new();
    // With NETLINK_CAP_ACK the request's header, not its body, follows the
    // errno; then the extended ack attributes, if flagged.
    if u16_at(6)? & libc::NLM_F_ACK_TLVS as u16 != 0 {
        let mut o = 36;
        while o + 4 <= len {
            let alen = usize::from(u16_at(o)?);
            if alen < 4 || o + alen > len {
                break;
            }
            if u16_at(o + 2)? == NLMSGERR_ATTR_MSG {
                let s = &b[o + 4..o + alen];
                let s = s.split(|&c| c == 0).next().unwrap_or(s);
                msg = String::from_utf8_lossy(s).into_owned();
            }
            o += alen.next_multiple_of(4);
        }
    }
    Some(Err((-error, msg)))
}
