//! What the benchmarks measure of the processes they start, shared by
//! every benchmark.

// Each benchmark uses a part of this module.
#![allow(dead_code)]

use std::process::Child;

/// A free TCP port on 127.0.0.1 for a daemon to listen on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for `child`, which must not have been waited for, and returns
/// whether it exited with status 0 and its peak resident set size in KiB.
///
/// `wait4` rather than `Child::wait`, for the rusage of this child alone.
pub fn reap(child: &Child) -> (bool, i64) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the child has not been reaped, so its pid is still its own;
    // wait4 writes into the status and the rusage it is given.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert!(pid > 0, "wait4 failed");
    let success = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (success, usage.ru_maxrss)
}
