// SPDX-License-Identifier: GPL-2.0

//! `netgpu`: command-line front end of `/dev/netgpu`.
//!
//! Usage: `netgpu info [--device PATH]`

use std::process::ExitCode;

use netgpu_uapi::*;

const FEATURE_NAMES: &[(u64, &str)] = &[
    (NETGPU_FEATURE_DMABUF, "dmabuf"),
    (NETGPU_FEATURE_P2PDMA, "p2pdma"),
    (NETGPU_FEATURE_RINGS, "rings"),
    (NETGPU_FEATURE_BIND_QUEUE, "bind-queue"),
    (NETGPU_FEATURE_TCP_RECV, "tcp-recv"),
    (NETGPU_FEATURE_POLL, "poll"),
];

fn usage() -> ExitCode {
    eprintln!("usage: netgpu info [--device PATH]");
    ExitCode::from(2)
}

fn info(device: &str) -> ExitCode {
    let info = match Netgpu::open_path(device).and_then(|n| n.info()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("netgpu: {device}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let names: Vec<&str> = FEATURE_NAMES
        .iter()
        .filter(|(bit, _)| info.features & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    println!("device:      {device}");
    println!("abi version: {}", info.abi_version);
    println!("page size:   {}", info.page_size);
    println!(
        "features:    {:#x} ({})",
        info.features,
        if names.is_empty() {
            "none yet".to_string()
        } else {
            names.join(", ")
        }
    );
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut device = DEVICE.to_string();
    let mut cmd = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--device" => match it.next() {
                Some(d) => device = d.clone(),
                None => return usage(),
            },
            "info" if cmd.is_none() => cmd = Some("info"),
            _ => return usage(),
        }
    }
    match cmd {
        Some("info") => info(&device),
        _ => usage(),
    }
}
