//! Real servers for Bosun's tests (DESIGN.md §7): each starts on free loopback ports in a
//! temporary directory and is stopped, with everything it started, when dropped.
//!
//! The binaries come from Debian's packages, which `scripts/test.sh` installs; a missing binary
//! fails the test with what to install, it never skips it.

pub mod etcd;
pub mod postgres;

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}
