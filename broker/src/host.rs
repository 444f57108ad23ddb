//! Facts about this host: its name, the default node id derived from it, listen addresses.

use std::net::{SocketAddr, ToSocketAddrs};

/// The OS host name (`/proc/sys/kernel/hostname`), or `localhost` when it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Upstream's default `--node-id`: crc32(md5(hostname)) % 1024 (`nsqd/options.go`).
pub fn default_node_id() -> u16 {
    use md5::{Digest, Md5};
    let digest = Md5::digest(hostname().as_bytes());
    (crc32fast::hash(&digest) % 1024) as u16
}

/// Resolves `host:port` (a name or an IP; `[::1]:0` for IPv6) to the address to bind.
pub fn resolve_listen_address(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    text.to_socket_addrs().ok()?.next()
}
