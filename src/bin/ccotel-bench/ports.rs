//! Free loopback ports for a child process (a `ccotel serve`, rotel, a
//! backend) to bind. The benchmarks and the tests share this file.

use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;

/// A loopback port that is free now. It is drawn below the kernel's
/// ephemeral range: a port from that range, released for a child, can be
/// taken by any outgoing connection the benchmarks or tests open before the
/// child binds it, and the child then fails to listen.
pub fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let floor = 10_000u16;
    if low > floor + 1000 {
        for _ in 0..64 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            let port = floor + (h.finish() % u64::from(low - floor)) as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind a loopback port")
}
