// SPDX-License-Identifier: GPL-2.0

//! Checks the Rust mirror (`uapi/netgpu.rs`) against the C header
//! (`uapi/linux/netgpu.h`): the C compiler reports the size of every
//! structure, the offset and size of every field, and the value of every
//! `#define` in the header; each must equal the Rust side's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use netgpu_uapi::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn header() -> String {
    std::fs::read_to_string(root().join("uapi/linux/netgpu.h")).expect("read netgpu.h")
}

/// (struct name, [(field name, declared type)]) for every struct in the header.
fn c_structs(h: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut cur: Option<(String, Vec<String>)> = None;
    for line in h.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("struct ") {
            if let Some(name) = rest.strip_suffix(" {") {
                cur = Some((name.to_string(), Vec::new()));
                continue;
            }
        }
        if line == "};" {
            out.extend(cur.take());
            continue;
        }
        if let Some((_, fields)) = cur.as_mut() {
            let decl = line.trim_end_matches(';');
            let name = decl.split_whitespace().last().expect("field");
            let name = name.split('[').next().unwrap_or(name);
            fields.push(name.to_string());
        }
    }
    out
}

/// Names of every object-like `#define NETGPU_*` in the header.
fn c_defines(h: &str) -> Vec<String> {
    h.lines()
        .filter_map(|l| l.strip_prefix("#define "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("NETGPU_") && !n.contains('('))
        .map(str::to_string)
        .collect()
}

/// The Rust value of a C `#define`; every define must be mirrored.
fn rust_define(name: &str) -> Option<u64> {
    Some(match name {
        "NETGPU_ABI_VERSION" => NETGPU_ABI_VERSION as u64,
        "NETGPU_IOC_TYPE" => NETGPU_IOC_TYPE as u64,
        "NETGPU_FEATURE_DMABUF" => NETGPU_FEATURE_DMABUF,
        "NETGPU_FEATURE_P2PDMA" => NETGPU_FEATURE_P2PDMA,
        "NETGPU_FEATURE_RINGS" => NETGPU_FEATURE_RINGS,
        "NETGPU_FEATURE_BIND_QUEUE" => NETGPU_FEATURE_BIND_QUEUE,
        "NETGPU_FEATURE_TCP_RECV" => NETGPU_FEATURE_TCP_RECV,
        "NETGPU_FEATURE_POLL" => NETGPU_FEATURE_POLL,
        "NETGPU_FEATURES_KNOWN" => NETGPU_FEATURES_KNOWN,
        "NETGPU_INFO_SIZE_VER0" => NETGPU_INFO_SIZE_VER0 as u64,
        "NETGPU_IOC_GET_INFO" => NETGPU_IOC_GET_INFO as u64,
        "NETGPU_IMPORT_DMABUF_SIZE_VER0" => NETGPU_IMPORT_DMABUF_SIZE_VER0 as u64,
        "NETGPU_MAX_REGIONS" => NETGPU_MAX_REGIONS as u64,
        "NETGPU_IOC_IMPORT_DMABUF" => NETGPU_IOC_IMPORT_DMABUF as u64,
        "NETGPU_IMPORT_P2PMEM_SIZE_VER0" => NETGPU_IMPORT_P2PMEM_SIZE_VER0 as u64,
        "NETGPU_IOC_IMPORT_P2PMEM" => NETGPU_IOC_IMPORT_P2PMEM as u64,
        "NETGPU_MAX_RING_ENTRIES" => NETGPU_MAX_RING_ENTRIES as u64,
        "NETGPU_MMAP_CQ" => NETGPU_MMAP_CQ,
        "NETGPU_MMAP_RQ" => NETGPU_MMAP_RQ,
        "NETGPU_CQE_COPY" => NETGPU_CQE_COPY as u64,
        "NETGPU_CQE_EOF" => NETGPU_CQE_EOF as u64,
        "NETGPU_SETUP_RINGS_SIZE_VER0" => NETGPU_SETUP_RINGS_SIZE_VER0 as u64,
        "NETGPU_IOC_SETUP_RINGS" => NETGPU_IOC_SETUP_RINGS as u64,
        "NETGPU_BIND_QUEUE_SIZE_VER0" => NETGPU_BIND_QUEUE_SIZE_VER0 as u64,
        "NETGPU_IOC_BIND_QUEUE" => NETGPU_IOC_BIND_QUEUE as u64,
        "NETGPU_UNBIND_QUEUE_SIZE_VER0" => NETGPU_UNBIND_QUEUE_SIZE_VER0 as u64,
        "NETGPU_IOC_UNBIND_QUEUE" => NETGPU_IOC_UNBIND_QUEUE as u64,
        "NETGPU_ATTACH_SOCKET_SIZE_VER0" => NETGPU_ATTACH_SOCKET_SIZE_VER0 as u64,
        "NETGPU_MAX_SOCKETS" => NETGPU_MAX_SOCKETS as u64,
        "NETGPU_IOC_ATTACH_SOCKET" => NETGPU_IOC_ATTACH_SOCKET as u64,
        "NETGPU_DETACH_SOCKET_SIZE_VER0" => NETGPU_DETACH_SOCKET_SIZE_VER0 as u64,
        "NETGPU_IOC_DETACH_SOCKET" => NETGPU_IOC_DETACH_SOCKET as u64,
        "NETGPU_RECV_NONBLOCK" => NETGPU_RECV_NONBLOCK as u64,
        "NETGPU_RECV_SIZE_VER0" => NETGPU_RECV_SIZE_VER0 as u64,
        "NETGPU_IOC_RECV" => NETGPU_IOC_RECV as u64,
        "NETGPU_STATS_SIZE_VER0" => NETGPU_STATS_SIZE_VER0 as u64,
        "NETGPU_IOC_GET_STATS" => NETGPU_IOC_GET_STATS as u64,
        _ => return None,
    })
}

/// The Rust layout of a C struct: (size, fields).
fn rust_struct(name: &str) -> Option<(usize, &'static [FieldLayout])> {
    Some(match name {
        "netgpu_info" => (NetgpuInfo::SIZE, NetgpuInfo::FIELDS),
        "netgpu_import_dmabuf" => (NetgpuImportDmabuf::SIZE, NetgpuImportDmabuf::FIELDS),
        "netgpu_import_p2pmem" => (NetgpuImportP2pmem::SIZE, NetgpuImportP2pmem::FIELDS),
        "netgpu_ring_offsets" => (NetgpuRingOffsets::SIZE, NetgpuRingOffsets::FIELDS),
        "netgpu_cqe" => (NetgpuCqe::SIZE, NetgpuCqe::FIELDS),
        "netgpu_rqe" => (NetgpuRqe::SIZE, NetgpuRqe::FIELDS),
        "netgpu_setup_rings" => (NetgpuSetupRings::SIZE, NetgpuSetupRings::FIELDS),
        "netgpu_bind_queue" => (NetgpuBindQueue::SIZE, NetgpuBindQueue::FIELDS),
        "netgpu_unbind_queue" => (NetgpuUnbindQueue::SIZE, NetgpuUnbindQueue::FIELDS),
        "netgpu_attach_socket" => (NetgpuAttachSocket::SIZE, NetgpuAttachSocket::FIELDS),
        "netgpu_detach_socket" => (NetgpuDetachSocket::SIZE, NetgpuDetachSocket::FIELDS),
        "netgpu_recv" => (NetgpuRecv::SIZE, NetgpuRecv::FIELDS),
        "netgpu_stats" => (NetgpuStats::SIZE, NetgpuStats::FIELDS),
        _ => return None,
    })
}

/// The header's layout facts, computed once for all tests.
fn c_facts() -> &'static BTreeMap<String, u64> {
    static FACTS: OnceLock<BTreeMap<String, u64>> = OnceLock::new();
    FACTS.get_or_init(compute_c_facts)
}

/// Compiles and runs a C program that prints the header's layout facts.
fn compute_c_facts() -> BTreeMap<String, u64> {
    let h = header();
    let mut prog = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/netgpu.h>\nint main(void)\n{\n",
    );
    for (s, fields) in c_structs(&h) {
        prog += &format!("\tprintf(\"sizeof {s} %zu\\n\", sizeof(struct {s}));\n");
        for f in fields {
            prog += &format!(
                "\tprintf(\"offsetof {s}.{f} %zu\\n\", offsetof(struct {s}, {f}));\n\
                 \tprintf(\"sizeof {s}.{f} %zu\\n\", sizeof(((struct {s} *)0)->{f}));\n"
            );
        }
    }
    for d in c_defines(&h) {
        prog += &format!("\tprintf(\"define {d} %llu\\n\", (unsigned long long)({d}));\n");
    }
    prog += "\treturn 0;\n}\n";

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join("netgpu_layout.c");
    let bin = dir.join("netgpu_layout");
    std::fs::write(&src, prog).expect("write C program");
    let st = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Werror", "-Wpadded", "-I"])
        .arg(root().join("uapi"))
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("run cc");
    assert!(
        st.success(),
        "the C header does not compile cleanly (-Wpadded: no implicit padding)"
    );
    let out = Command::new(&bin).output().expect("run layout program");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("key value");
            (k.to_string(), v.parse().expect("number"))
        })
        .collect()
}

#[test]
fn every_struct_matches_c() {
    let facts = c_facts();
    let structs = c_structs(&header());
    assert!(!structs.is_empty());
    for (s, c_fields) in structs {
        let (size, fields) =
            rust_struct(&s).unwrap_or_else(|| panic!("struct {s} has no Rust mirror"));
        assert_eq!(facts[&format!("sizeof {s}")], size as u64, "sizeof {s}");
        let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
        assert_eq!(names, c_fields, "fields of {s}");
        for (f, off, sz) in fields {
            assert_eq!(
                facts[&format!("offsetof {s}.{f}")],
                *off as u64,
                "offsetof {s}.{f}"
            );
            assert_eq!(
                facts[&format!("sizeof {s}.{f}")],
                *sz as u64,
                "sizeof {s}.{f}"
            );
        }
    }
}

#[test]
fn every_define_matches_c() {
    let facts = c_facts();
    let defines = c_defines(&header());
    assert!(defines.len() >= 10, "too few defines parsed: {defines:?}");
    for d in defines {
        let rust = rust_define(&d).unwrap_or_else(|| panic!("#define {d} has no Rust mirror"));
        assert_eq!(facts[&format!("define {d}")], rust, "{d}");
    }
}

#[test]
fn ioctl_encoding_matches_c_macros() {
    // The Rust _IOC_* decoders invert the C encoding.
    let cmd = NETGPU_IOC_GET_INFO;
    assert_eq!(ioc::ty(cmd), NETGPU_IOC_TYPE);
    assert_eq!(ioc::nr(cmd), 0);
    assert_eq!(ioc::dir(cmd), ioc::READ | ioc::WRITE);
    assert_eq!(ioc::size(cmd), NetgpuInfo::SIZE);
    // _IOWR(0xE6, 0, 56) computed by hand: dir 3 << 30 | 56 << 16 | 0xE6 << 8.
    assert_eq!(cmd, (3u32 << 30) | (56 << 16) | (0xE6 << 8));
}

#[test]
fn first_published_sizes_are_current_sizes() {
    // Version 1 of the ABI: nothing has grown yet.
    assert_eq!(NETGPU_INFO_SIZE_VER0, NetgpuInfo::SIZE);
    assert_eq!(NETGPU_IMPORT_DMABUF_SIZE_VER0, NetgpuImportDmabuf::SIZE);
    assert_eq!(NETGPU_IMPORT_P2PMEM_SIZE_VER0, NetgpuImportP2pmem::SIZE);
    assert_eq!(NETGPU_SETUP_RINGS_SIZE_VER0, NetgpuSetupRings::SIZE);
    assert_eq!(NETGPU_BIND_QUEUE_SIZE_VER0, NetgpuBindQueue::SIZE);
    assert_eq!(NETGPU_UNBIND_QUEUE_SIZE_VER0, NetgpuUnbindQueue::SIZE);
    assert_eq!(NETGPU_ATTACH_SOCKET_SIZE_VER0, NetgpuAttachSocket::SIZE);
    assert_eq!(NETGPU_DETACH_SOCKET_SIZE_VER0, NetgpuDetachSocket::SIZE);
    assert_eq!(NETGPU_RECV_SIZE_VER0, NetgpuRecv::SIZE);
    assert_eq!(NETGPU_STATS_SIZE_VER0, NetgpuStats::SIZE);
}
