//! What the benchmarks measure of the processes they start, and the agent
//! as they run it, shared by every benchmark.

// Each benchmark uses a part of this module.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

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

/// A field in KiB of `/proc/PID/status`.
pub fn proc_status_kib(pid: &str, field: &str) -> i64 {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {path}"))
}

/// A configuration file of the daemon, and the address of its API.
pub struct DaemonConfig {
    pub path: PathBuf,
    pub api: String,
}

/// Writes the configuration `NAME.toml` into `dir`: state in `dir/state`,
/// no host source, `workers` workers, and `sources`.
pub fn config(dir: &Path, name: &str, workers: usize, sources: &str) -> DaemonConfig {
    let path = dir.join(format!("{name}.toml"));
    let listen = format!("127.0.0.1:{}", free_port());
    let text = format!(
        r#"state_dir = "state"
[scan]
workers = {workers}
[sources.host]
enabled = false
{sources}
[api]
listen = "{listen}"
"#
    );
    std::fs::write(&path, text).unwrap();
    DaemonConfig {
        path,
        api: format!("http://{listen}"),
    }
}

/// A running `scanhost run`, stopped by its pid.
pub struct Daemon {
    /// Taken when the daemon was stopped and reaped.
    child: Option<Child>,
    pub api: String,
    log: PathBuf,
}

impl Daemon {
    /// Starts the daemon on `config` and waits until its API answers.
    pub fn start(config: &DaemonConfig) -> Daemon {
        let name = config.path.file_stem().unwrap().to_string_lossy();
        let log = config.path.with_file_name(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_scanhost"))
            .args(["--log", "info", "run", "--config"])
            .arg(&config.path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let daemon = Daemon {
            child: Some(child),
            api: config.api.clone(),
            log,
        };

        let started = Instant::now();
        while ureq::get(&format!("{}/healthz", daemon.api))
            .call()
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the API did not answer:\n{}",
                daemon.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    /// Sends SIGTERM and waits for the daemon to exit; returns its peak
    /// resident set size in KiB as `wait4` reports it, and as its VmHWM
    /// said just before the signal (a check on the first, which would also
    /// count a large peak of this process).
    // The child is reaped by wait4, which clippy cannot see.
    #[allow(clippy::zombie_processes)]
    pub fn stop(mut self) -> (i64, i64) {
        let child = self.child.take().unwrap();
        let pid = child.id() as libc::pid_t;
        let hwm_kib = proc_status_kib(&pid.to_string(), "VmHWM");
        // SAFETY: kill only sends a signal; the child is not reaped yet, so
        // its pid is still its own.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "cannot signal the daemon");

        let (success, peak_kib) = reap(&child);
        assert!(
            success,
            "the daemon did not stop cleanly:\n{}",
            self.log_tail()
        );
        (peak_kib, hwm_kib)
    }

    /// Waits until every image of `ids`, and only those, is Success with
    /// `packages` packages; panics on a failed scan or after `deadline`
    /// from `started`.
    pub fn wait_all_success(
        &self,
        ids: &[String],
        packages: usize,
        started: Instant,
        deadline: Duration,
    ) {
        let url = format!("{}/v1/workloads", self.api);
        let expected: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        loop {
            let workloads: Vec<Value> = ureq::get(&url)
                .call()
                .unwrap()
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_json()
                .unwrap();
            if let Some(failed) = workloads.iter().find(|w| w["status"] == "failed") {
                panic!("a scan failed: {failed}\n{}", self.log_tail());
            }
            let succeeded: BTreeSet<&str> = workloads
                .iter()
                .filter(|w| w["status"] == "success")
                .map(|w| {
                    assert_eq!(w["packages"], packages, "{w}");
                    w["id"].as_str().unwrap()
                })
                .collect();
            if succeeded.len() == ids.len() {
                assert_eq!(succeeded, expected);
                return;
            }
            assert!(
                started.elapsed() < deadline,
                "{} of {} images scanned after {deadline:?}:\n{}",
                succeeded.len(),
                ids.len(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of the daemon's log, for a failure message: the
    /// temporary directory that holds it goes with the failure.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Daemon {
    /// A daemon not stopped (the benchmark failed) is killed.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the agent on `sources` (in `dir`, with `workers` workers) after
/// a first start on `warm_up_sources` has filled its cache of compiled
/// plugins; returns it and when the timed start began.
pub fn timed_start(
    dir: &Path,
    workers: usize,
    warm_up_sources: &str,
    sources: &str,
) -> (Daemon, Instant) {
    Daemon::start(&config(dir, "warm-up", workers, warm_up_sources)).stop();
    let started = Instant::now();
    let daemon = Daemon::start(&config(dir, "scanhost", workers, sources));
    (daemon, started)
}
