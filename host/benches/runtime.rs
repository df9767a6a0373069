//! Benchmark of the plugin runtime and of one-shot scans.
//!
//! Prints:
//! - the time to instantiate a component and call a trivial scan, median
//!   and 99th percentile over many calls (target: median at most 1 ms);
//! - the time of `scanhost scan` on a real root filesystem beside the time
//!   `find` takes to list the same tree, and the scan's peak memory.
//!
//! The root filesystem is `SCANHOST_BENCH_ROOT`, or `/` when unset. Run
//! with `cargo bench -p scanhost --bench runtime`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scanhost::plugins::{Limits, Origin, Runtime};

mod measure;
use scanhost::target::Target;

const TRIVIAL_SCANS: usize = 2000;

fn main() {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-compile-cache");
    trivial_scan(&cache);
    root_scan(&cache);
}

fn trivial_scan(cache: &Path) {
    let runtime = Runtime::new(Limits::default(), Some(cache)).unwrap();
    let path = Path::new(env!("SCANHOST_TEST_PLUGINS")).join("testing_faults.wasm");
    let bytes = std::fs::read(&path).unwrap();
    let plugin = runtime.load(Origin::File(path), &bytes).unwrap();
    let root = tempfile::tempdir().unwrap();
    let target = Target::Host {
        root: root.path().to_path_buf(),
    };

    for _ in 0..100 {
        runtime.scan(&plugin, &target).unwrap();
    }
    let mut times: Vec<Duration> = (0..TRIVIAL_SCANS)
        .map(|_| {
            let started = Instant::now();
            runtime.scan(&plugin, &target).unwrap();
            started.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "trivial scan (fresh instance + call), {TRIVIAL_SCANS} calls: median {:?}, p99 {:?}",
        times[times.len() / 2],
        times[times.len() * 99 / 100]
    );
}

fn root_scan(cache: &Path) {
    let root = std::env::var_os("SCANHOST_BENCH_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));

    // A first run fills the compilation cache and the page cache.
    let (_, _, packages) = run_scan(&root, cache);

    let mut scans = Vec::new();
    let mut peak = 0;
    for _ in 0..5 {
        let (elapsed, rss, _) = run_scan(&root, cache);
        scans.push(elapsed);
        peak = peak.max(rss);
    }
    scans.sort();

    let mut finds = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let status = Command::new("find")
            .arg(&root)
            .args(["-xdev"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.code().is_some());
        finds.push(started.elapsed());
    }
    finds.sort();

    println!(
        "scanhost scan {}: {packages} packages, median {:?} over {} runs; \
         find -xdev over the same tree: median {:?}; peak RSS of scanhost {} MiB",
        root.display(),
        scans[scans.len() / 2],
        scans.len(),
        finds[finds.len() / 2],
        peak / 1024
    );
}

/// Runs one scan; returns its wall time, the peak resident set size of
/// the process in KiB, and the number of packages found.
// The child is reaped by wait4, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_scan(root: &Path, cache: &Path) -> (Duration, i64, usize) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scanhost"))
        .args(["--log", "warn", "scan"])
        .arg(root)
        .arg("--cache-dir")
        .arg(cache)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();

    let (success, peak_kib) = measure::reap(&child);
    let elapsed = started.elapsed();
    assert!(success, "scan of {} failed", root.display());

    let doc: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let packages = doc["components"]
        .as_array()
        .map(|c| c.iter().filter(|c| c["type"] == "library").count())
        .unwrap_or(0);
    (elapsed, peak_kib, packages)
}
